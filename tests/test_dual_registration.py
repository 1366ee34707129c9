"""Dual registration (Cisco MPP "Dual Registration", Yealink/Polycom two servers) and where an
incoming call looks a phone up (``calls.lookup``): each against a formula derived without the code."""

from __future__ import annotations

import pydantic
import pytest

from simsip.api import simulate
from simsip.engine.model import Model
from tests.conftest import scenario

NODES = [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]
SRV = {"srv": [{"target": "a", "priority": 10}, {"target": "b", "priority": 20}]}
N = 300
R = 270.0  # refresh: 90 % of 300 s
T0 = 100.0


def _phone(**kw):
    return {"expires": "300s", "refresh": {"mode": "percent", "percent": 90}, **kw}


def _crash(server: str, lookup: str, dual: bool = False, phone: dict | None = None, n: int = N, **kw):
    return scenario(
        duration="420s",
        fleets=[{"name": "f", "count": n, "server": server, "phases": "even",
                 "phone": _phone(failover={"dual_registration": dual, **((phone or {}).pop("failover", {}))}, **(phone or {}))}],
        dns=SRV,
        ha={"vrrp": {"preempt": False}, "nodes": NODES},
        calls={"lookup": lookup},
        faults=[{"node": "a", "at": f"{T0}s"}],
        **kw,
    )


def test_dual_registration_to_both_nodes_loses_nothing_when_one_crashes():
    """No replication: node b holds every phone's second registration, so a call proxy that
    queries every registrar finds each phone throughout; one registration via the VIP waits for
    the next refresh at b: ≈ N·R/2 phone-seconds (+ N × the VIP move)."""
    dual = simulate(_crash("dns_srv", "any_node", dual=True)).per_replication.iloc[0]
    single = simulate(_crash("vip", "vip")).per_replication.iloc[0]
    assert dual["unreachable_phone_seconds"] == pytest.approx(0.0, abs=1e-6)
    expect = N * R / 2
    assert abs(single["unreachable_phone_seconds"] - expect) < 0.1 * expect
    # the same dual fleet judged at the VIP only loses the VIP move (b serves and holds every phone)
    at_vip = simulate(_crash("dns_srv", "vip", dual=True)).per_replication.iloc[0]
    assert 0 < at_vip["unreachable_phone_seconds"] < N * 5.0


def test_dual_registration_doubles_steady_register_load_exactly():
    def counters(dual: bool):
        cfg = scenario(
            duration=f"{2 * R}s",
            fleets=[{"name": "f", "count": N, "server": "dns_srv", "phases": "even",
                     "phone": _phone(failover={"dual_registration": dual})}],
            dns=SRV, ha={"nodes": NODES}, calls={"lookup": "any_node"},
        )
        return Model(cfg).run().counters

    one, two = counters(False), counters(True)
    # 2·N/R: every registration refreshes once per R, the second one at the other node
    assert one["transactions_succeeded"] == 2 * N  # N/R over 2R
    assert two["transactions_succeeded"] == 2 * one["transactions_succeeded"]
    assert one["served_a"] == 2 * N and one["served_b"] == 0
    assert two["served_a"] == two["served_b"] == 2 * N


@pytest.mark.parametrize("timer_f,counts", [(16.0, 2), (32.0, 3)])
def test_dns_lookup_follows_the_phones_failover_time(timer_f, counts):
    """Calls resolve the same SRV records: after the primary dies they go to b, where a phone is
    found once its next refresh has failed ``retry_counts`` × Timer F on a and succeeded on b."""
    cfg = _crash("dns_srv", "dns", phone={"timers": {"timer_f": f"{timer_f}s"}, "failover": {"retry_counts": counts}},
                 n=200, registrar={"workers": 4, "service_time": "1ms"})
    res = simulate(cfg)
    rec = res.recovery[res.recovery["cause"] == "fault"].set_index("phone")["recovery_time"]
    assert len(rec) == 200
    n = 200
    for k, rt in rec.items():
        u = (int(k) + 0.5) / n  # even phases: phone k last refreshed u·R before t=0
        nxt = (1.0 - u) * R
        while nxt < T0:
            nxt += R + 0.003  # each success comes ~3 ms (two delays + service) after its refresh
        expect = nxt - T0 + counts * timer_f  # the failover time of the profile: retry_counts × Timer F
        if T0 + expect > 420.0:  # recovers after the end of the run
            assert rt != rt, (k, rt, expect)  # NaN: not recovered
            continue
        assert expect - 0.02 <= rt <= expect + 0.03, (k, rt, expect)
    # the availability log says when node a stopped
    log = Model(cfg).run()
    assert (T0, 0, False) in log.availability and (0.0, 1, True) in log.availability


def test_dual_registration_needs_two_dns_targets():
    with pytest.raises(pydantic.ValidationError, match="dual registration"):
        scenario(fleets=[{"name": "f", "count": 10, "phone": {"failover": {"dual_registration": True}}}])
    with pytest.raises(pydantic.ValidationError, match="lookup dns"):
        scenario(calls={"lookup": "dns"})
