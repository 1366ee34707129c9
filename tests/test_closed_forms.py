"""The model against closed forms derived independently of its code.

No replication (``data: none``)
-------------------------------
N phones refresh every R seconds with phases uniform, so after a crash at t0 a phone's next
refresh comes at t0 + u, u ~ U(0, R). The backup takes the VIP at t0 + D, where
D = MDI − ψ and ψ ~ U(0, A) is the time since the master's last advert (A = advert interval).
The new master holds no binding, and the dead master's bindings route nothing, so every phone is
unreachable from t0 until its next REGISTER is saved on the new master:

* u ≥ D: the refresh reaches the new master: recovery = u + d + S (d one-way delay, S service).
* u < D: the refresh hits the dead node; Timer E retransmits at u + s_k,
  s_k ∈ {0, 0.5, 1.5, 3.5, 7.5, …}; the first copy arriving after the takeover is saved:
  recovery = u + s_k* + d + S with k* the first k with u + s_k + d ≥ D.

E[recovery] = E_ψ[(1/R)∫₀ᴿ r(u, D) du] + d + E[S], and the unreachable phone-seconds of the fault
are N·E[recovery] (every phone is out from t0 to its recovery). We integrate numerically.

Shared store (``data: shared``)
-------------------------------
The new master sees every binding at once: each phone is unreachable exactly from t0 to the
takeover, so unreachable phone-seconds = N·D per run and E[D] = MDI − A/2.

M/M/c (Erlang C)
----------------
Poisson arrivals λ to c workers with exponential service μ: P(wait) = C(c, a) with a = λ/μ and
W_q = C(c, a)/(cμ − λ).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from simsip.api import simulate
from simsip.engine.model import Model
from simsip.metrics import ci95
from tests.conftest import scenario

T1_SENDS = np.array([0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5])


def expected_recovery_none(R: float, mdi: float, advert: float, d: float, s: float) -> float:
    u = (np.arange(40_000) + 0.5) / 40_000 * R
    total = 0.0
    psis = (np.arange(400) + 0.5) / 400 * advert
    for psi in psis:
        D = mdi - psi
        r = np.where(u + d >= D, u, np.nan)
        late = np.isnan(r)
        # first retransmission whose arrival is after the takeover
        cand = u[late, None] + T1_SENDS[None, :]
        ok = cand + d >= D
        k = ok.argmax(axis=1)
        r[late] = cand[np.arange(cand.shape[0]), k]
        total += r.mean()
    return total / psis.size + d + s


def _crash_scenario(data: str, n: int, reps: int, advert: str = "1s", prio: int = 100):
    return scenario(
        duration="100s",
        replications=reps,
        fleets=[{"name": "f", "count": n, "phone": {"expires": "60s", "refresh": {"mode": "percent", "percent": 50}}}],
        registrar={"workers": 8, "service_time": {"dist": "exponential", "mean": "1ms"}, "data": data, "min_expires": "10s"},
        ha={"vrrp": {"version": 2, "advert_int": advert}, "nodes": [{"name": "a", "priority": 200}, {"name": "b", "priority": prio}]},
        faults=[{"node": "master", "at": "50s"}],
    )


def test_no_replication_recovery_matches_closed_form():
    cfg = _crash_scenario("none", n=400, reps=12)
    res = simulate(cfg)
    R, A = 30.0, 1.0
    mdi = 3 * A + (256 - 100) / 256
    exp_rec = expected_recovery_none(R, mdi, A, 0.001, 0.001)
    means = res.per_replication["recovery_mean"].tolist()
    ci = ci95(means)
    assert ci["ci_low"] - 0.02 <= exp_rec <= ci["ci_high"] + 0.02, (exp_rec, ci)
    # unreachable phone-seconds of the fault = N · E[recovery]
    loss = ci95(res.per_replication["unreachable_phone_seconds"].tolist())
    assert loss["ci_low"] - 10 <= 400 * exp_rec <= loss["ci_high"] + 10, (400 * exp_rec, loss)
    # every phone was affected and recovered within one refresh interval (+ retransmission slack)
    assert (res.per_replication["phones_affected"] == 400).all()
    assert res.recovery["recovery_time"].max() <= R + 0.01


def test_no_replication_other_timers():
    """Same closed form at another refresh interval and advert interval (VRRPv2 skew)."""
    cfg = _crash_scenario("none", n=200, reps=30, advert="2s", prio=50)
    cfg = cfg.model_copy(update={"fleets": (cfg.fleets[0].model_copy(update={"phone": cfg.fleets[0].phone.model_copy(
        update={"refresh": cfg.fleets[0].phone.refresh.model_copy(update={"percent": 25.0})})}),)})
    res = simulate(cfg)
    R, A = 15.0, 2.0
    mdi = 3 * A + (256 - 50) / 256
    exp_rec = expected_recovery_none(R, mdi, A, 0.001, 0.001)
    ci = ci95(res.per_replication["recovery_mean"].tolist())
    assert ci["ci_low"] - 0.02 <= exp_rec <= ci["ci_high"] + 0.02, (exp_rec, ci)


def test_shared_store_loses_only_the_vip_move():
    n = 300
    res = simulate(_crash_scenario("shared", n=n, reps=12))
    per = res.per_replication
    # per run: every phone is out exactly for the VIP move
    assert np.allclose(per["unreachable_phone_seconds"], n * per["vip_move_time"], rtol=1e-9, atol=1e-6)
    rec = res.recovery
    vm = res.faults.set_index("replication")["vip_move_time"]
    assert np.allclose(rec["recovery_time"].to_numpy(), vm.loc[rec["replication"]].to_numpy())
    # and the VIP move itself averages MDI − A/2
    mdi = 3 + (256 - 100) / 256
    ci = ci95(per["vip_move_time"].tolist())
    assert ci["ci_low"] - 1e-6 <= mdi - 0.5 <= ci["ci_high"] + 1e-6, ci


def erlang_c(c: int, a: float) -> float:
    s = sum(a**k / math.factorial(k) for k in range(c))
    top = a**c / math.factorial(c) * c / (c - a)
    return top / (s + top)


@pytest.mark.parametrize("c,rho", [(1, 0.7), (4, 0.85)])
def test_registrar_queue_matches_erlang_c(c, rho):
    mean_s = 0.002
    mu = 1 / mean_s
    lam = rho * c * mu
    cfg = scenario(
        duration="200s",
        fleets=[{"name": "f", "count": 1}],
        registrar={"workers": c, "service_time": {"dist": "exponential", "mean": "2ms"}, "queue_limit": 10_000_000},
    )
    m = Model(cfg)
    reg = m.registrars[0]
    reg.record_waits = True
    gen = np.random.default_rng(123)
    arrivals = np.cumsum(gen.exponential(1 / lam, size=int(lam * 150)))
    for t in arrivals.tolist():
        m.sim.call_at(float(t), reg.receive, 0, -99, 60.0)  # a stray transaction: the reply is ignored
    m.run()
    w = np.asarray(reg.waits[len(reg.waits) // 10:])  # drop warm-up
    # batch means for the confidence interval
    batches = np.array_split(w, 30)
    ci = ci95([float(b.mean()) for b in batches])
    expected = erlang_c(c, lam / mu) / (c * mu - lam)
    assert ci["ci_low"] <= expected <= ci["ci_high"], (expected, ci)
    pwait = ci95([float((b > 0).mean()) for b in batches])
    assert pwait["ci_low"] <= erlang_c(c, lam / mu) <= pwait["ci_high"]
