"""Closed forms of simsip.analytic: hand values, then agreement with the simulator (within CI)."""

from __future__ import annotations

import math

import pytest

from simsip import analytic as A
from simsip.api import simulate
from simsip.metrics import ci95
from tests.conftest import scenario


def test_vrrp_hand_values():
    assert A.vrrp_skew(2, 100, 1.0) == pytest.approx(156 / 256)
    assert A.master_down_interval(2, 100, 1.0) == pytest.approx(3.609375)
    # VRRPv3 scales the skew with the advert interval (RFC 5798)
    assert A.vrrp_skew(3, 100, 0.5) == pytest.approx(156 * 0.5 / 256)
    assert A.master_down_interval(3, 100, 0.5) == pytest.approx(1.5 + 0.3046875)
    assert A.expected_takeover(3.609375, 1.0) == pytest.approx(3.109375)
    assert A.expected_recovery_shared(3.609375, 1.0) == pytest.approx(3.109375)
    with pytest.raises(ValueError):
        A.vrrp_skew(4, 100, 1.0)


def test_timer_e_and_load_hand_values():
    assert A.timer_e_schedule() == (0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5)
    assert A.timer_e_schedule(timer_f=16.0) == (0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5)
    assert A.timer_e_schedule(max_retransmissions=2) == (0.0, 0.5, 1.5)
    assert A.steady_register_rate(1000, 54.0) == pytest.approx(18.518518, rel=1e-6)


def test_erlang_c_hand_values():
    assert A.erlang_c(1, 0.7) == pytest.approx(0.7)  # M/M/1: P(wait) = rho
    # M/M/1: W_q = rho / (mu - lambda)
    assert A.erlang_c_wait(1, 0.002, 350.0) == pytest.approx(0.7 / (500 - 350))
    # c = 2, a = 1: C = 1/3 (textbook value)
    assert A.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert A.erlang_c_wait(2, 1.0, 3.0) == math.inf


def test_no_replication_loss_hand_limits():
    # a takeover far shorter than the refresh interval: E[recovery] -> R/2 (+ the small retransmission wait)
    r = A.expected_recovery_none(R=1000.0, mdi=0.0301, advert_int=0.01)
    assert r == pytest.approx(500.0, rel=1e-3)
    # longer takeover, longer loss
    assert A.expected_recovery_none(30.0, 6.6, 2.0) > A.expected_recovery_none(30.0, 3.6, 1.0)


def _crash(data: str, n: int = 300, reps: int = 20):
    return scenario(
        duration="100s", replications=reps,
        fleets=[{"name": "f", "count": n, "phone": {"expires": "60s", "refresh": {"mode": "percent", "percent": 50}}}],
        registrar={"workers": 8, "service_time": {"dist": "exponential", "mean": "1ms"}, "data": data, "min_expires": "10s"},
        ha={"vrrp": {"version": 2, "advert_int": "1s"}, "nodes": [{"name": "a", "priority": 200}, {"name": "b", "priority": 100}]},
        faults=[{"node": "master", "at": "50s"}],
    )


@pytest.mark.parametrize("data", ["none", "shared"])
def test_screen_agrees_with_simulator(data):
    cfg = _crash(data)
    est = A.screen(cfg)
    per = simulate(cfg).per_replication
    for fig, slack in (("steady_register_rate", 0.0), ("vip_move_time", 0.0), ("unreachable_phone_seconds", 0.01),
                       ("recovery_mean", 0.01)):
        ci = ci95(per[fig].tolist())
        tol = slack * abs(est[fig])
        assert ci["ci_low"] - tol <= est[fig] <= ci["ci_high"] + tol, (fig, est[fig], ci)
    # quantiles within 10 %; the storm peak (expected busiest bin + one Poisson sd) is a rougher screen: 20 %
    assert est["recovery_p99"] == pytest.approx(per["recovery_p99"].mean(), rel=0.1)
    assert est["peak_register_rate"] == pytest.approx(per["peak_register_rate"].mean(), rel=0.2)


def test_not_screenable():
    cfg = scenario(faults=[{"kind": "partition", "at": "10s"}])
    with pytest.raises(A.NotScreenable):
        A.screen(cfg)
