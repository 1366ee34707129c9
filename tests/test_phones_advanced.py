"""Phones as they really behave: TCP/TLS, keep-alives, DNS SRV failover, balancer, digest auth,
retry lock-step and its mitigations — each against a formula derived independently of the code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from simsip.api import simulate
from simsip.engine.model import Model
from tests.conftest import scenario

NODES = [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]
K = 30.0  # keep-alive interval
R = 270.0  # refresh interval: 90 % of 300 s


def _failover(phone: dict, n: int = 300, **kw):
    return scenario(
        duration="420s",
        fleets=[{"name": "f", "count": n, "phone": {"expires": "300s", "refresh": {"mode": "percent", "percent": 90}, **phone}}],
        ha={"vrrp": {"preempt": False}, "nodes": NODES},
        faults=[{"node": "master", "at": "100s"}],
        **kw,
    )


def test_tcp_keepalive_recovers_within_one_interval_udp_at_next_refresh():
    tcp = simulate(_failover({"transport": "tcp", "keepalive": {"kind": "crlf", "interval": "30s"},
                              "retry": {"transport_error_interval": "0s"}}))
    udp = simulate(_failover({}))
    rt, ru = tcp.recovery["recovery_time"], udp.recovery["recovery_time"]
    assert len(rt) == len(ru) == 300
    # TCP: the first ping after the fault (≤ K later) meets a reset or, before the VIP moves,
    # silence that TCP retransmits into the new master's reset: recovered within K (+ a round trip)
    assert rt.max() <= K + 0.5
    # UDP without keep-alives: at the next refresh, uniform over (0, R]
    assert ru.max() > 0.9 * R and abs(ru.mean() - R / 2) < 0.15 * R
    assert ru.mean() > 4 * rt.mean()
    # the mechanism: resets, not refreshes
    c = tcp.per_replication.iloc[0]
    assert c.get("n_transport_errors", 1) >= 0


def test_tcp_without_keepalive_waits_for_refresh_then_retry_rule():
    res = simulate(_failover({"transport": "tcp", "retry": {"interval": "30s"}}))
    r = res.recovery["recovery_time"]
    # the refresh meets a reset, then the fixed 30 s retry: recovery = u + 30 (+ RTTs), u ~ U(0, R)
    assert r.min() >= 30.0 and r.max() <= R + 30.0 + 1.0


def test_udp_options_keepalive_cannot_see_a_vip_move():
    """Over UDP the new master answers OPTIONS: no failover detection, recovery at refresh."""
    res = simulate(_failover({"keepalive": {"kind": "options", "interval": "30s"}}))
    assert res.recovery["recovery_time"].max() > 0.9 * R


def _first_success(cfg, node_name: str):
    m = Model(cfg)
    log = m.run()
    idx = m.topo.index(node_name)
    st = log.stores[log.store_of_node[idx]]
    first = {}
    for t, p in zip(st.t, st.phone):
        first.setdefault(p, t)
    return m, first


@pytest.mark.parametrize("transport,timer_f,counts", [("udp", 32.0, 3), ("tcp", 32.0, 3), ("udp", 16.0, 2)])
def test_dns_srv_failover_time_is_retry_counts_times_timer_f(transport, timer_f, counts):
    cfg = scenario(
        duration="200s",
        fleets=[{"name": "f", "count": 20, "start": "boot_storm", "boot_window": "0s", "server": "dns_srv",
                 "phone": {"transport": transport, "timers": {"timer_f": f"{timer_f}s"}, "failover": {"retry_counts": counts}}}],
        dns={"srv": [{"target": "a", "priority": 10}, {"target": "b", "priority": 20}]},
        ha={"nodes": NODES},
        faults=[{"node": "a", "at": "0s"}],
        registrar={"data": "shared", "workers": 4, "service_time": "1ms"},
    )
    m, first = _first_success(cfg, "b")
    assert len(first) == 20
    expect = counts * timer_f  # Polycom/Yealink: retry_counts attempts, each ended by Timer F
    rtt = 0.002 + 0.001 * (3 if transport == "tcp" else 1)
    for t in first.values():
        assert expect <= t <= expect + rtt + 0.01, (t, expect)


def test_dns_srv_reset_fails_over_in_round_trips_and_weights_split_load():
    # registrar process dead on a live node: each attempt is refused at once (TCP reset)
    cfg = scenario(
        duration="60s",
        fleets=[{"name": "f", "count": 10, "start": "boot_storm", "boot_window": "0s", "server": "dns_srv",
                 "phone": {"transport": "tcp", "failover": {"retry_counts": 3}}}],
        dns={"srv": [{"target": "a", "priority": 10}, {"target": "b", "priority": 20}]},
        ha={"nodes": NODES}, registrar={"data": "shared"},
        faults=[{"kind": "process_crash", "node": "a", "at": "0s"}],
    )
    m, first = _first_success(cfg, "b")
    assert len(first) == 10 and max(first.values()) < 0.05  # 3 × (SYN → RST) + connect + REGISTER
    # equal priority, weights 3:1 → 75 % of the phones start at a (RFC 2782)
    cfg = scenario(duration="30s", fleets=[{"name": "f", "count": 4000, "start": "boot_storm", "boot_window": "1s", "server": "dns_srv"}],
                   dns={"srv": [{"target": "a", "priority": 10, "weight": 3}, {"target": "b", "priority": 10, "weight": 1}]},
                   ha={"nodes": NODES}, registrar={"data": "shared", "workers": 8})
    log = Model(cfg).run()
    assert abs(log.counters["served_a"] / 4000 - 0.75) < 0.03


def test_digest_auth_doubles_transactions_exactly_and_nonce_is_per_node():
    base = dict(duration="600s", fleets=[{"name": "f", "count": 200, "phone": {"expires": "60s", "auth": {"nonce_reuse": False}}}])
    plain = Model(scenario(**base)).run().counters
    auth = Model(scenario(auth={"enabled": True}, **base)).run().counters
    ok0, ok1 = plain["transactions_succeeded"], auth["transactions_succeeded"]
    assert ok0 == ok1  # same refreshes
    assert plain["transactions_started"] - plain["transactions_open"] == ok0  # 1 per refresh
    assert auth["transactions_started"] - auth["transactions_open"] == 2 * ok1 + (auth["auth_challenges"] - ok1)
    assert abs(auth["auth_challenges"] - ok1) <= 200  # every refresh challenged (edges: open at the end)
    assert auth["served_a"] == ok1  # bindings saved once per refresh; the 401s are the other half of the load
    # nonce reuse: 1 transaction per refresh while the nonce is valid on the same node ...
    reuse = scenario(duration="600s", auth={"enabled": True}, ha={"vrrp": {"preempt": False}, "nodes": NODES},
                     fleets=[{"name": "f", "count": 200, "phone": {"expires": "60s"}}], faults=[{"node": "a", "at": "300s"}])
    c = Model(reuse).run().counters
    # ... and a failover invalidates it: exactly one challenge per phone, at its first REGISTER to b
    assert c["auth_challenges"] == 200
    assert c["transactions_started"] - c["transactions_open"] == c["transactions_succeeded"] + c["transactions_timed_out"] + 200


def _storm(spread: float = 0.0, n: int = 1000):
    return scenario(
        duration="80s",
        fleets=[{"name": "f", "count": n, "start": "boot_storm", "boot_window": "500ms",
                 "phone": {"expires": "3600s", "retry": {"interval": "30s", "spread": f"{spread}s"}}}],
        registrar={"workers": 1, "service_time": "10ms", "queue_limit": 50, "when_full": "reply_503"},
    )


def test_fixed_retry_lockstep_spike_and_jitter_flattens_it():
    res = simulate(_storm())
    ts = res.timeseries.set_index("time")
    rejected_first = int(ts.loc[0.0:1.0, "resp_503"].sum())
    assert rejected_first > 500
    spike = int(ts.loc[29.0:32.0, "register_tx"].max())
    # every phone rejected in the first window retries 30 s later in the same second
    assert abs(spike - rejected_first) <= 0.02 * rejected_first
    res2 = simulate(_storm(spread=10.0))
    ts2 = res2.timeseries.set_index("time")
    rej2 = int(ts2.loc[0.0:1.0, "resp_503"].sum())
    peak2 = int(ts2.loc[19.0:41.0, "register_tx"].max())
    expect = rej2 / 20.0  # uniform over [20, 40]: flattened by 2·spread / bin = 20
    assert expect <= peak2 <= 2.0 * expect, (peak2, expect)


def test_expires_range_flattens_the_refresh_spike():
    def run(rng):
        cfg = scenario(duration="320s", fleets=[{"name": "f", "count": 500, "start": "boot_storm", "boot_window": "200ms",
                                                  "phone": {"expires": "300s", "refresh": {"mode": "percent", "percent": 90}}}],
                       registrar={"workers": 8, "service_time": "0.1ms", "expires_range": rng})
        ts = simulate(cfg).timeseries.set_index("time")
        return int(ts.loc[150.0:, "register_tx"].max())
    sharp, flat = run(0), run(20)
    assert sharp == 500  # everyone refreshes at 270 s
    width = 0.9 * 300 * 0.20  # refresh uniform over [216, 270]: 54 one-second bins
    assert 500 / width <= flat <= 2.2 * 500 / width, flat


def test_startup_delay_and_restart_timer_spread_the_first_requests():
    cfg = scenario(duration="100s", fleets=[{"name": "f", "count": 2000, "start": "boot_storm", "boot_window": "0s",
                                             "phone": {"startup_delay": "60s"}}])
    tx = simulate(cfg).timeseries.set_index("time")["register_tx"]
    assert tx.loc[0:59].sum() == 2000 and tx.loc[0:59].max() < 2000 / 60 * 1.8
    # registrar dead (VIP stays): phones time out, then wait U(0, Restart-Timer) instead of 30 s
    cfg = scenario(duration="300s", restart_timer="120s",
                   fleets=[{"name": "f", "count": 400, "start": "boot_storm", "boot_window": "0s",
                            "phone": {"retry": {"interval": "30s", "honour_restart_timer": True}}}],
                   faults=[{"kind": "process_crash", "node": "a", "at": "0s"}])
    m = Model(cfg)
    begins = []
    ob = m.phones.begin

    def begin(p, gen):
        if gen == m.phones.gen[p]:
            begins.append((p, m.sim.now))
        ob(p, gen)

    m.phones.begin = begin
    m.run()
    per: dict[int, list[float]] = {}
    for p, t in begins:
        per.setdefault(p, []).append(t)
    waits = np.array([ts[1] - 32.0 for ts in per.values() if len(ts) > 1])  # after the first Timer F
    assert len(waits) == 400
    assert waits.min() >= 0 and waits.max() <= 120.0 and abs(waits.mean() - 60.0) < 8.0


def test_load_balancer_detects_by_probes_and_rate_limits():
    cfg = scenario(duration="200s", fleets=[{"name": "f", "count": 200, "server": "lb", "phone": {"expires": "60s"}}],
                   load_balancer={"probe_interval": "10s", "probe_timeout": "2s"}, registrar={"data": "shared"},
                   ha={"nodes": NODES}, faults=[{"node": "a", "at": "100s"}])
    m = Model(cfg)
    m.run()
    ev = m.phones.lb.events
    assert ev and ev[0][1] == "a" and ev[0][2] == "inactive"
    assert 100.0 + 2.0 <= ev[0][0] <= 100.0 + 10.0 + 2.0 + 1e-9  # next probe + its timeout
    cfg = scenario(duration="30s", fleets=[{"name": "f", "count": 500, "server": "lb", "start": "boot_storm", "boot_window": "1s",
                                            "phone": {"retry": {"interval": "60s"}}}],
                   load_balancer={"max_register_forward": "100/s", "retry_after": "60s"}, ha={"nodes": NODES})
    m = Model(cfg)
    m.run()
    assert m.phones.lb.forwarded <= 100 * 2 + 1 and m.phones.lb.limited >= 500 - 200


PHONES = sorted((Path(__file__).resolve().parents[1] / "models" / "phones").glob("*.yaml"))


def _leaves(d, prefix=""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


@pytest.mark.parametrize("path", PHONES, ids=[p.stem for p in PHONES])
def test_every_phone_profile_loads_runs_and_cites_sources(path):
    doc = yaml.safe_load(path.read_text())
    sources = doc.get("sources", {})
    missing = [k for k in _leaves(doc["phone"]) if k not in sources and k.split(".")[0] not in sources]
    assert not missing, f"{path.name}: no source for {missing}"
    from simsip.config.loader import load_config_text

    text = (f"name: t\nduration: 200s\nfleets: [{{name: f, count: 50, profile: {path.stem}}}]\n"
            "faults: [{node: master, at: 50s}]\noutput: {report: false}\n")
    cfg = load_config_text(text)
    res = simulate(cfg)
    assert res.per_replication["phones_affected"].iloc[0] >= 0


# ----------------------------------------------------------------------------- libre's reset handling
def _starts(cfg, monkeypatch):
    """Run one replication and record every REGISTER transaction's start (phone, time)."""
    from simsip.engine import phones

    starts: list[tuple[int, float]] = []
    orig = phones.PhoneBank.begin

    def spy(self, p, gen):
        if gen == self.gen[p]:
            starts.append((p, self.sim.env._now))
        return orig(self, p, gen)

    monkeypatch.setattr(phones.PhoneBank, "begin", spy)
    m = Model(cfg)
    log = m.run()
    return m, log, starts


def _libre_failwait_1(u: float) -> float:
    """libre re src/sipreg/reg.c failwait(failc=1): min(1800, 30·2^1) s × (500 + rand % 501)/1000."""
    return min(1800.0, 30.0 * 2 ** 1) * (0.5 + 0.5 * u)


def _baresip_tcp(n: int, reset: str, fault: str = "node_crash"):
    """baresip's profile (loaded from models/phones) over TCP, expires 60 s, a fault at 30 s."""
    from simsip.config.loader import load_config_text

    doc = {"name": "libre-reset", "seed": 7, "duration": "200s",
           "fleets": [{"name": "b", "count": n, "profile": "baresip",
                       "phone": {"transport": "tcp", "expires": "60s", "transport_reset": reset}}],
           "registrar": {"data": "none", "workers": 4, "service_time": "1ms", "min_expires": "10s"},
           "ha": {"nodes": NODES, "vrrp": {"version": 2, "advert_int": "1s"}},
           "network": {"delay": "1ms"}, "output": {"resolution": "1s", "report": False},
           "faults": [{"kind": fault, "node": "master", "at": "30s"}],
           "engine": {"compact_records": False}}  # the tests read each 200 OK's time from the records
    cfg = load_config_text(yaml.safe_dump(doc), "libre-reset")
    assert cfg.fleets[0].phone.retry.mode == "backoff" and cfg.fleets[0].phone.retry.exponent_offset == 1
    return cfg


@pytest.mark.parametrize("reset", ["unnoticed", "error"])
def test_libre_reset_on_an_established_connection_waits_timer_f_then_failwait(reset, monkeypatch):
    """libre (models/phones/baresip.yaml transport_reset): the new master resets the refresh sent over the
    old connection; conn_close tells only requests still queued for a connection, so the REGISTER
    ends at Timer F (64·T1 = 32 s after it was sent) and the next one starts failwait(1) later, exactly.
    The old rule (``error``: the reset ends it at once) is the negative control: it retries 32 s sooner."""
    from simsip.rng import PerPhoneStream

    n = 12
    cfg = _baresip_tcp(n, reset)
    m, log, starts = _starts(cfg, monkeypatch)
    rnd = PerPhoneStream(cfg.seed, 0, "phones.retry", n)
    u = [rnd.random(p) for p in range(n)]  # each phone's first retry draw (no failure before the crash)
    by: dict[int, list[float]] = {}
    for p, t in starts:
        by.setdefault(p, []).append(t)
    t_f = cfg.fleets[0].phone.timers.timeout
    assert t_f == 32.0
    checked = 0
    for p, ts in by.items():
        after = [t for t in ts if t > 30.0]
        if len(after) < 2:
            continue
        t_reset, t_next = after[0], after[1]  # the refresh that meets the new master, then its retry
        want = t_reset + t_f + _libre_failwait_1(u[p])
        if reset == "unnoticed":
            assert t_next == pytest.approx(want, abs=1e-9), (p, t_reset, t_next, want)
        else:
            # the reset (a round trip later; TCP's retransmissions first while the VIP is still moving)
            # ends it, failwait follows: Timer F's 32 s are missing
            assert want - t_f < t_next < want - t_f + 5.0, (p, t_reset, t_next, want)
        checked += 1
    assert checked >= n - 2  # refreshes every 54 s: all but the last phones' retries fall inside 200 s
    c = log.counters
    if reset == "unnoticed":
        assert c["transport_errors"] == 0 and c["connections_opened"] >= checked
    else:
        assert c["transport_errors"] >= checked


@pytest.mark.parametrize("reset", ["unnoticed", "error"])
def test_libre_refused_connection_is_told_at_once_and_a_closed_idle_one_waits_for_the_refresh(reset, monkeypatch):
    """The registrar process dies on a live node that keeps the VIP: its kernel closes the phones'
    connections (FIN) and refuses new ones (RST to the SYN). libre notices no close of an idle
    connection (no request on it: the phone waits for its refresh) but tells a request queued for
    a connection being set up at once (conn_close → qent->transph): the refresh's refused SYN fails
    immediately and the next REGISTER follows after failwait(1) alone. Negative control (``error``):
    the FIN itself makes every phone re-register, before its refresh."""
    from simsip.rng import PerPhoneStream

    n = 12
    cfg = _baresip_tcp(n, reset, fault="process_crash")
    m, log, starts = _starts(cfg, monkeypatch)
    rnd = PerPhoneStream(cfg.seed, 0, "phones.retry", n)
    u = [rnd.random(p) for p in range(n)]
    by: dict[int, list[float]] = {}
    for p, t in starts:
        by.setdefault(p, []).append(t)
    t_ok = np.frombuffer(log.ph_t, dtype=np.float64)
    p_ok = np.frombuffer(log.ph_p, dtype=np.int64)
    v_ok = np.frombuffer(log.ph_v, dtype=np.float64)
    rtt = 2 * 0.001  # SYN out, RST back
    checked = 0
    for p, ts in by.items():
        ok = t_ok[(p_ok == p) & (v_ok > 0) & (t_ok < 30.0)]
        if not ok.size:
            continue  # its equilibrium refresh comes after the crash: no success to count from
        refresh = float(ok.max()) + 54.0  # 90 % of the granted 60 s
        after = [t for t in ts if t >= 30.0]
        if reset == "unnoticed":
            # no re-registration at the FIN: the first REGISTER after the crash is the regular refresh
            assert after[0] == pytest.approx(refresh, abs=1e-9), (p, refresh, after[0])
            if len(after) > 1:  # refused at once, then failwait(1)
                assert after[1] == pytest.approx(after[0] + rtt + _libre_failwait_1(u[p]), abs=1e-9)
        else:  # the FIN (a one-way delay after the crash) starts the retry rule, the refresh is dropped
            assert after[0] == pytest.approx(30.0 + 0.001 + _libre_failwait_1(u[p]), abs=1e-6)
            assert after[0] != pytest.approx(refresh, abs=0.01)
        checked += 1
    assert checked >= 3
    assert log.counters["connections_closed_by_peer"] == n
    if reset == "unnoticed":
        assert log.counters["transport_errors"] >= checked


@pytest.mark.parametrize("on_failure", ["backoff", "register"])
def test_libre_failed_keepalive_waits_failwait_before_registering(on_failure, monkeypatch):
    """libre's sipreg keepalive_handler (RFC 5626 outbound): a failed flow with no REGISTER pending makes
    the phone wait failwait(++failc) — 30-60 s for the first — before it registers; ``register`` (the
    negative control) registers at the failure."""
    from simsip.config.loader import load_config_text
    from simsip.engine import phones
    from simsip.rng import PerPhoneStream

    n = 12
    doc = {"name": "libre-ka", "seed": 5, "duration": "200s",
           "fleets": [{"name": "b", "count": n, "profile": "baresip",
                       "phone": {"transport": "tcp", "expires": "600s",
                                 "keepalive": {"kind": "crlf", "interval": "20s", "on_failure": on_failure}}}],
           "registrar": {"data": "none", "workers": 4, "service_time": "1ms", "min_expires": "10s"},
           "ha": {"nodes": NODES, "vrrp": {"version": 2, "advert_int": "1s"}},
           "network": {"delay": "1ms"}, "output": {"resolution": "1s", "report": False},
           "faults": [{"kind": "node_crash", "node": "master", "at": "30s"}]}
    cfg = load_config_text(yaml.safe_dump(doc), "libre-ka")
    failed: dict[int, float] = {}
    orig = phones.PhoneBank.flow_failed

    def spy(self, p, now):
        if self.tx[p] == phones.NO_TX:
            failed.setdefault(p, now)
        return orig(self, p, now)

    monkeypatch.setattr(phones.PhoneBank, "flow_failed", spy)
    m, log, starts = _starts(cfg, monkeypatch)
    rnd = PerPhoneStream(cfg.seed, 0, "phones.retry", n)
    u = [rnd.random(p) for p in range(n)]
    assert len(failed) >= n - 2  # the first ping after the crash meets the new master's reset (or silence)
    for p, t_f in failed.items():
        nxt = min(t for q, t in starts if q == p and t >= t_f)
        want = t_f + (_libre_failwait_1(u[p]) if on_failure == "backoff" else 0.0)
        assert nxt == pytest.approx(want, abs=1e-9), (p, t_f, nxt, want)
