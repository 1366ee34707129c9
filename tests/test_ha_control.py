"""HA control mechanisms against the products' own rules, each time computed here from the rule
(keepalived ``vrrp/vrrp.c``, ``vrrp/vrrp_track.c``; RFC 3768 §6.4.2; the RHEL 9 HA guide), not
read back from the model:

* weighted ``track_script``/``track_process``: the priority changes, the old master keeps
  advertising, a preempting backup discards the lowered adverts and takes over Master_Down_Interval
  after the last advert it accepted; a weight that does not bring the master strictly below the
  backup, ``nopreempt``, or a priority-255 owner never moves the VIP;
* ``track_process``: event driven (``event_latency`` + ``terminate_delay``), blind to a hang;
* a clean stop of the HA daemon (``ha_stop``): priority 0, takeover after the backup's Skew_Time;
* ``garp_master_refresh``, ``use_vmac``, a cloud VIP moved by an API;
* pacemaker failback: location score against ``resource_stickiness``.
"""

from __future__ import annotations

import math
import textwrap

import pytest

from simsip import models
from simsip.config.loader import load_config_text
from simsip.engine.model import Model
from simsip.protocols import vrrp as rules
from tests.conftest import scenario

A = 1.0  # advert interval of every scenario here (VRRPv2)
ADVERT_PHASE = 0.5  # the initial master advertises at k + 0.5
CHECK_PHASE = 0.3  # the checks run at k + 0.3


def _mdi(prio: int) -> float:
    """RFC 3768: 3·A + (256 − p)/256."""
    return 3 * A + (256 - prio) / 256


def _skew(prio: int) -> float:
    return (256 - prio) / 256


def _cfg(pa: int, pb: int, check: dict | None = None, vrrp: dict | None = None, faults=None, **over):
    ha = {"vrrp": {"version": 2, "advert_int": "1s", "first_advert": f"{ADVERT_PHASE}s", **(vrrp or {})},
          "nodes": [{"name": "a", "priority": pa}, {"name": "b", "priority": pb}]}
    if check is not None:
        ha["health_check"] = {"kind": "socket", "interval": "1s", "fall": 1, "rise": 1,
                              "first_check": f"{CHECK_PHASE}s", **check}
    return scenario(duration="90s", fleets=[{"name": "f", "count": 20}], ha=ha,
                    faults=faults if faults is not None else [{"kind": "process_crash", "node": "a", "at": "20s"}],
                    **over)


def _masters(log, node: str) -> list[float]:
    return [t for t, n, st in log.vrrp if n == node and st == "master"]


# --------------------------------------------------------------------------- the rules themselves
def test_track_contribution_and_clamping_follow_vrrp_track_c():
    # w < 0 counts while failed, w > 0 while OK; reverse flips the sign (process_script_update_priority)
    assert [rules.track_contribution(-20, ok) for ok in (True, False)] == [0, -20]
    assert [rules.track_contribution(20, ok) for ok in (True, False)] == [20, 0]
    assert [rules.track_contribution(-20, ok, reverse=True) for ok in (True, False)] == [0, 20]
    assert [rules.track_contribution(20, ok, reverse=True) for ok in (True, False)] == [-20, 0]
    assert rules.track_contribution(0, False) == 0
    # the change on each transition is ±|w|·m, whatever the sign of w (the non-INIT branch)
    for w in (-30, 30):
        for rev in (False, True):
            m = -1 if rev else 1
            delta = rules.track_contribution(w, False, rev) - rules.track_contribution(w, True, rev)
            assert delta == -abs(w) * m
    # vrrp_set_effective_priority: total < 1 → 1, total ≥ 255 → 254, the owner keeps 255
    assert rules.effective_priority(100, -5) == 1
    assert rules.effective_priority(100, 300) == 254
    assert rules.effective_priority(254, 255) == 254
    assert rules.effective_priority(255, 100) == 255
    # RFC 3768 §6.4.2: a backup accepts an advert of priority >= its own; nopreempt accepts any
    assert rules.backup_accepts(100, 100) and not rules.backup_accepts(99, 100)
    assert rules.backup_accepts(1, 200, preempt=False)


def test_schema_rejects_what_keepalived_does_not_mean():
    with pytest.raises(Exception, match="reverse with weight 0"):
        _cfg(101, 100, check={"reverse": True})
    with pytest.raises(Exception, match="adjusts a VRRP priority"):
        scenario(ha={"kind": "heartbeat", "health_check": {"weight": -10}})
    with pytest.raises(Exception, match="greater than or equal to -253"):
        _cfg(101, 100, check={"weight": -254})  # keepalived: -253..253 for a track_script


# --------------------------------------------------------------------------- weighted checks
@pytest.mark.parametrize("weight_zero_control", [False, True])
def test_weighted_failure_takes_over_mdi_after_the_last_accepted_advert(weight_zero_control):
    """A 101, B 100, weight −20: A advertises 81 from the failed check on; B (preempt) discards
    those adverts, so it takes over MDI(100) after the last advert it accepted. Weight 0 instead:
    FAULT, a priority-0 advert, B takes over after only Skew_Time(100)."""
    weight = 0 if weight_zero_control else -20
    cfg = _cfg(101, 100, check={"weight": weight})
    log = Model(cfg).run()
    crash = 20.0
    detect = crash + CHECK_PHASE  # the first check after the crash fails (fall 1)
    (takeover,) = _masters(log, "b")
    if weight_zero_control:
        assert takeover == pytest.approx(detect + _skew(100), abs=1e-9)
        return
    assert (detect, "a", "priority 81") in log.checks
    last_accepted = max(t for t, n in log.adverts if n == 0 and t < detect)
    assert last_accepted == pytest.approx(19.5)
    assert takeover == pytest.approx(last_accepted + _mdi(100), abs=1e-9)
    # the old master really kept advertising (at 81) until B's higher advert made it step down
    assert any(n == 0 and detect < t < takeover for t, n in log.adverts)
    assert (takeover, "a", "backup") in log.vrrp
    # negative controls: neither the weight-0 time nor "never" is what happened
    assert abs(takeover - (detect + _skew(100))) > 2.0


def test_positive_weight_and_skew_from_the_effective_priority():
    """A 101, B 100, both +10 while healthy (111 / 110). A's check fails: A drops to 101 < 110, B
    takes over MDI after the last advert it accepted — with the skew of its *effective* 110."""
    cfg = _cfg(101, 100, check={"weight": 10})
    log = Model(cfg).run()
    (takeover,) = _masters(log, "b")
    assert takeover == pytest.approx(19.5 + _mdi(110), abs=1e-9)
    assert takeover != pytest.approx(19.5 + _mdi(100), abs=1e-6)


@pytest.mark.parametrize("pa,weight,moves", [(150, -30, False), (150, -50, False), (150, -51, True), (254, -200, True)])
def test_vip_moves_only_if_the_weight_brings_the_master_strictly_below(pa, weight, moves):
    """RFC 3768 §6.4.2: a backup accepts adverts of priority >= its own — an equal one too."""
    cfg = _cfg(pa, 100, check={"weight": weight})
    log = Model(cfg).run()
    lowered = rules.effective_priority(pa, pa + weight)
    assert (lowered < 100) == moves
    if moves:
        (takeover,) = _masters(log, "b")
        assert takeover == pytest.approx(19.5 + _mdi(100), abs=1e-9)
    else:
        assert _masters(log, "b") == []
        assert all(n in (0, -1) for _, n in log.serving)  # nobody else ever serves


def test_nopreempt_with_a_weight_never_moves_the_vip():
    """acassen/keepalived#2483, #2599: a nopreempt backup accepts lower-priority adverts."""
    cfg = _cfg(101, 100, check={"weight": -50}, vrrp={"preempt": False})
    log = Model(cfg).run()
    assert _masters(log, "b") == []
    # control: the same weight with preempt moves it
    assert _masters(Model(_cfg(101, 100, check={"weight": -50})).run(), "b")


def test_priority_255_owner_ignores_a_weighted_check():
    cfg = _cfg(255, 100, check={"weight": -200})
    log = Model(cfg).run()
    assert _masters(log, "b") == []
    assert not any(msg.startswith("priority") for _, n, msg in log.checks if n == "a")


def test_reverse_raises_the_priority_on_failure():
    cfg = _cfg(101, 100, check={"weight": -20, "reverse": True})
    log = Model(cfg).run()
    assert (20.0 + CHECK_PHASE, "a", "priority 121") in log.checks
    assert _masters(log, "b") == []


def test_failback_after_a_weighted_check_recovers():
    """The check passes again after the registrar restarts: A (101) in BACKUP discards B's 100
    adverts and preempts MDI(101) after the last one it accepted (B's before A's recovery)."""
    cfg = _cfg(101, 100, check={"weight": -20},
               faults=[{"kind": "process_crash", "node": "a", "at": "20s", "repair_after": "20s"}])
    log = Model(cfg).run()
    (t_b,) = _masters(log, "b")
    up = min(t for t, i, ok in log.availability if i == 0 and ok and t >= 40.0)  # after its start_time
    recovered = math.ceil(up - CHECK_PHASE) + CHECK_PHASE  # the next check passes (rise 1)
    assert (recovered, "a", "priority 101") in log.checks
    last_b = max(t for t, n in log.adverts if n == 1 and t < recovered)
    a_back = [t for t in _masters(log, "a") if t > t_b]
    assert a_back == [pytest.approx(last_b + _mdi(101), abs=1e-9)]


def test_a_backups_own_priority_change_moves_its_down_timer():
    """vrrp_set_effective_priority: in BACKUP the down timer moves by the change of
    Master_Down_Interval. B's check fails at 20.3 s (its registrar died at 20 s) just as the
    master crashed (20 s): B's timer, armed by the 19.5 s advert, now ends at 19.5 + MDI(80)."""
    cfg = _cfg(101, 100, check={"weight": -20},
               faults=[{"kind": "process_crash", "node": "b", "at": "20s"},
                       {"kind": "node_crash", "node": "a", "at": "20s"}])
    log = Model(cfg).run()
    assert (20.0 + CHECK_PHASE, "b", "priority 80") in log.checks
    (takeover,) = _masters(log, "b")
    assert takeover == pytest.approx(19.5 + _mdi(80), abs=1e-9)
    assert takeover != pytest.approx(19.5 + _mdi(100), abs=1e-6)


def test_screening_uses_the_effective_priority():
    from simsip.analytic import NotScreenable, screen

    base = dict(ha={"vrrp": {"version": 2, "advert_int": "1s"},
                    "nodes": [{"name": "a", "priority": 101}, {"name": "b", "priority": 100}]},
                faults=[{"kind": "node_crash", "node": "master", "at": "60s"}])
    plain = screen(scenario(**base))
    base["ha"]["health_check"] = {"weight": 50}  # B passes at 150: its skew is (256-150)/256
    weighted = screen(scenario(**base))
    assert plain["vip_move_time"] - weighted["vip_move_time"] == pytest.approx(50 / 256, abs=1e-9)
    base["ha"]["vrrp"]["vip_move"] = "api"
    with pytest.raises(NotScreenable):
        screen(scenario(**base))


def test_preempt_delay_counts_from_the_first_lower_advert():
    """vrrp_state_backup: with preempt_delay D the backup accepts lower adverts for D from the first
    one it saw (the timer starts there), then discards them. A weighted failure at 20.3 s: the first
    lowered advert is the 20.5 s one, so the backup accepts up to 20.5 + D − 1 and takes over MDI
    after that — not MDI after the last advert before the failure, as a delay counted from
    start-up (long over) would give."""
    d = 10.0
    cfg = _cfg(101, 100, check={"weight": -20}, vrrp={"preempt_delay": f"{d}s"})
    log = Model(cfg).run()
    (takeover,) = _masters(log, "b")
    first_lowered = 20.5
    assert takeover == pytest.approx(first_lowered + d - 1.0 + _mdi(100), abs=1e-9)
    # control: without the delay, MDI after the last full-priority advert (19.5 s)
    (plain,) = _masters(Model(_cfg(101, 100, check={"weight": -20})).run(), "b")
    assert plain == pytest.approx(19.5 + _mdi(100), abs=1e-9)


# --------------------------------------------------------------------------- track_process
@pytest.mark.parametrize("weight,terminate_delay", [(0, 0.0), (0, 0.5), (-20, 0.0)])
def test_track_process_is_event_driven(weight, terminate_delay):
    cfg = _cfg(101, 100, check={"kind": "process", "weight": weight, "terminate_delay": f"{terminate_delay}s",
                                "event_latency": "20ms"})
    log = Model(cfg).run()
    seen = 20.0 + 0.02 + terminate_delay
    (takeover,) = _masters(log, "b")
    if weight == 0:
        assert (seen, "a", "fault") in log.vrrp
        assert takeover == pytest.approx(seen + _skew(100), abs=1e-9)
    else:
        assert (seen, "a", "priority 81") in log.checks
        last = max(t for t, n in log.adverts if n == 0 and t < seen)
        assert takeover == pytest.approx(last + _mdi(100), abs=1e-9)


def test_track_process_does_not_see_a_hang():
    cfg = _cfg(101, 100, check={"kind": "process"}, faults=[{"kind": "process_hang", "node": "a", "at": "20s"}])
    assert _masters(Model(cfg).run(), "b") == []
    # control: an OPTIONS check (kind sip) does
    cfg = _cfg(101, 100, check={"kind": "sip"}, faults=[{"kind": "process_hang", "node": "a", "at": "20s"}])
    assert _masters(Model(cfg).run(), "b")


# --------------------------------------------------------------------------- graceful stop
def test_keepalived_sigterm_takes_over_after_skew_and_preempts_back():
    cfg = _cfg(101, 100, faults=[{"kind": "ha_stop", "node": "master", "at": "20s", "repair_after": "10s"}])
    log = Model(cfg).run()
    (t_b,) = _masters(log, "b")
    assert t_b == pytest.approx(20.0 + _skew(100), abs=1e-9)  # priority 0 → Skew_Time
    assert (20.0, "a", "down") in log.vrrp
    # repaired: keepalived starts as BACKUP at 30 s, discards B's lower adverts, preempts MDI(101) later
    back = [t for t in _masters(log, "a") if t > 20.0]
    assert back == [pytest.approx(30.0 + _mdi(101), abs=1e-9)]
    # the registrar ran all along: it was never unavailable
    assert all(up for _, i, up in log.availability if i == 0)
    # control: a node crash (no priority-0 advert) takes MDI after the last advert instead
    crash = Model(_cfg(101, 100, faults=[{"kind": "node_crash", "node": "master", "at": "20s"}])).run()
    assert _masters(crash, "b")[0] == pytest.approx(19.5 + _mdi(100), abs=1e-9)


def test_heartbeat_and_pacemaker_clean_stop():
    hb = scenario(duration="90s", fleets=[{"name": "f", "count": 20}],
                  ha={"kind": "heartbeat", "heartbeat": {"keepalive": "1s", "deadtime": "10s", "takeover_time": "500ms"},
                      "nodes": [{"name": "a", "priority": 101}, {"name": "b", "priority": 100}]},
                  faults=[{"kind": "ha_stop", "node": "master", "at": "20s"}])
    log = Model(hb).run()
    assert _masters(log, "b") == [pytest.approx(20.5)]  # handed over at once, not after deadtime
    assert not any("dead" in msg for _, _, msg in log.checks)
    pm = scenario(duration="90s", fleets=[{"name": "f", "count": 20}],
                  ha={"kind": "pacemaker", "pacemaker": {"stop_time": "1s", "ip_start_time": "200ms"},
                      "nodes": [{"name": "a", "priority": 101}, {"name": "b", "priority": 100}]},
                  faults=[{"kind": "ha_stop", "node": "master", "at": "20s"}])
    log = Model(pm).run()
    assert _masters(log, "b") == [pytest.approx(21.2)]  # stop, then start elsewhere
    assert not any("fence" in msg for _, _, msg in log.checks)  # a clean leave is not fenced


def test_pacemaker_started_again_before_its_clean_stop_finished_rejoins_after_it():
    pm = scenario(duration="90s", fleets=[{"name": "f", "count": 20}],
                  ha={"kind": "pacemaker", "pacemaker": {"stop_time": "2s", "ip_start_time": "0s"},
                      "nodes": [{"name": "a", "priority": 101}, {"name": "b", "priority": 100}]},
                  faults=[{"kind": "ha_stop", "node": "a", "at": "20s", "repair_after": "500ms"}])
    log = Model(pm).run()
    assert (22.0, "a", "down") in log.vrrp and (22.0, "a", "backup") in log.vrrp  # left, then rejoined
    assert _masters(log, "b") == [22.0]
    assert [t for t in _masters(log, "a") if t > 0]  # and took the resources back (stickiness 0)


# --------------------------------------------------------------------------- announcing the VIP
def test_garp_master_refresh_schedule():
    cfg = _cfg(101, 100, vrrp={"garp_master_refresh": "10s"}, faults=[{"kind": "node_crash", "node": "a", "at": "32s"}])
    log = Model(cfg).run()
    a = [t for t, n in log.garps if n == 0]
    assert a == [0.0, 15.0, 25.0]  # initial, then garp_master_delay + refresh, every refresh; none after the crash
    (t_b,) = _masters(log, "b")
    b = [t for t, n in log.garps if n == 1]
    expected = [t_b, t_b + 5.0] + [t_b + 15.0 + 10.0 * k for k in range(10) if t_b + 15.0 + 10.0 * k < 90.0]
    assert b == pytest.approx(expected)


@pytest.mark.parametrize("use_vmac", [False, True])
def test_use_vmac_makes_a_missed_garp_harmless(use_vmac):
    cfg = _cfg(101, 100, vrrp={"use_vmac": use_vmac}, faults=[{"kind": "node_crash", "node": "a", "at": "20s"}],
               network={"delay": "1ms", "arp": {"garp_loss": 1.0}})
    log = Model(cfg).run()
    (t_b,) = _masters(log, "b")
    served = min(t for t, n in log.serving if n == 1)
    if use_vmac:
        assert served == pytest.approx(t_b, abs=1e-9)
    else:  # every GARP lost: the ingress waits for its neighbour entry to fail (REACHABLE + probes)
        assert served > t_b + 5.0


def test_cloud_vip_moves_master_down_plus_api_latency():
    cfg = _cfg(101, 100, vrrp={"vip_move": "api", "api_latency": "4s"},
               faults=[{"kind": "node_crash", "node": "a", "at": "20s"}])
    log = Model(cfg).run()
    (t_b,) = _masters(log, "b")
    assert t_b == pytest.approx(19.5 + _mdi(100), abs=1e-9)
    served = min(t for t, n in log.serving if n == 1)
    assert served == pytest.approx(t_b + 4.0, abs=1e-9)
    assert [t for t, n in log.garps if n == 1] == [pytest.approx(t_b + 4.0)]  # no GARP has an effect


# --------------------------------------------------------------------------- pacemaker stickiness
@pytest.mark.parametrize("profile,fails_back", [("pacemaker", True), ("pacemaker-rhel9", False)])
def test_pacemaker_failback_follows_location_score_and_stickiness(profile, fails_back):
    cfg = load_config_text(textwrap.dedent(f"""\
        duration: 120s
        fleets: [{{name: f, count: 20}}]
        ha:
          profile: {profile}
          corosync: {{token: 1s}}
          pacemaker: {{fence_time: 2s}}
        output: {{report: false}}
        faults: [{{kind: node_crash, node: master, at: 20s, repair_after: 30s}}]
        """), "<pacemaker test>")
    pm = cfg.ha.pacemaker
    assert pm.fails_back == (pm.location_score > pm.resource_stickiness) == fails_back
    log = Model(cfg).run()
    first = cfg.ha.nodes[0].name
    back = [t for t in _masters(log, first) if t > 20.0]
    assert bool(back) == fails_back


def test_each_ha_profile_says_which_default_it_follows():
    """`simsip models show` lists every new knob with a source (or an assumption)."""
    want = {
        "ha/keepalived": ("vrrp.garp_master_refresh", "vrrp.use_vmac", "vrrp.vip_move"),
        "ha/keepalived-weighted-check": ("health_check.weight", "health_check.kind"),
        "ha/keepalived-track-process": ("health_check.kind", "health_check.terminate_delay"),
        "ha/keepalived-cloud-api": ("vrrp.vip_move", "vrrp.api_latency"),
        "ha/pacemaker": ("pacemaker.resource_stickiness", "pacemaker.location_score"),
        "ha/pacemaker-rhel9": ("pacemaker.resource_stickiness", "pacemaker.location_score"),
        "ha/heartbeat": ("heartbeat.auto_failback",),
    }
    for name, paths in want.items():
        vals = {v.path: v for v in models.profile_values(name)}
        for p in paths:
            mine = [v for path, v in vals.items() if path == p or path.startswith(p + ".")]
            assert mine, (name, p)
            assert all(not v.default and v.source for v in mine), (name, p)


# --------------------------------------------------------------------------- the lab
def test_the_lab_realises_ha_stop_and_refuses_what_it_cannot():
    from simsip.lab.bridge import LabUnsupported, spec_from_scenario

    base = dict(duration="90s", ha={"nodes": [{"name": "a", "priority": 101}, {"name": "b", "priority": 100}]},
                fleets=[{"name": "f", "count": 20, "phases": "even",
                         "phone": {"expires": "60s", "timers": {"max_retransmissions": 9}}}])
    spec = spec_from_scenario(scenario(**base, faults=[{"kind": "ha_stop", "node": "master", "at": "20s",
                                                          "repair_after": "10s"}]))
    assert [f.kind for f in spec.faults] == ["ha_stop"]
    assert (spec.track_interval, spec.track_weight, spec.track_reverse) == (None, 0, False)
    for extra, word in (({"vrrp": {"use_vmac": True}}, "use_vmac"),
                        ({"vrrp": {"garp_master_refresh": "10s"}}, "garp_master_refresh"),
                        ({"vrrp": {"vip_move": "api"}}, "vip_move")):
        ha = {**base["ha"], **extra}
        with pytest.raises(LabUnsupported, match=word):
            spec_from_scenario(scenario(**{**base, "ha": ha}))


@pytest.mark.parametrize("weight, reverse", [(-20, False), (-120, False), (30, False), (25, True)])
def test_the_lab_realises_weighted_checks_as_keepalived_weights(weight, reverse, tmp_path):
    """A weighted track_script (priority adjusted, no FAULT) becomes keepalived's vrrp_script
    ``weight W [reverse]``; a weight-0 check has no weight line (FAULT on failure)."""
    from simsip.lab.bridge import mapping_notes, spec_from_scenario
    from simsip.lab.configs import keepalived_conf

    cfg = scenario(duration="60s", ha={"nodes": [{"name": "a", "priority": 200}, {"name": "b", "priority": 150}],
                                       "vrrp": {"preempt": False},
                                       "health_check": {"kind": "socket", "interval": "2s", "fall": 2, "rise": 1,
                                                        "weight": weight, "reverse": reverse}},
                   fleets=[{"name": "f", "count": 20, "phases": "even",
                            "phone": {"expires": "60s", "timers": {"max_retransmissions": 9}}}],
                   faults=[{"kind": "process_crash", "node": "master", "at": "20s"}])
    spec = spec_from_scenario(cfg)
    assert (spec.track_interval, spec.track_fall, spec.track_weight, spec.track_reverse) == (2.0, 2, weight, reverse)
    assert not spec.preempt
    conf = keepalived_conf(spec, "a", tmp_path)
    want = f"    weight {weight}" + (" reverse" if reverse else "")
    assert want + "\n" in conf and "nopreempt" in conf and "chk_kamailio" in conf
    assert any("weight" in n for n in mapping_notes(cfg))
    unweighted = spec_from_scenario(cfg.model_copy(update={"ha": cfg.ha.model_copy(
        update={"health_check": cfg.ha.health_check.model_copy(update={"weight": 0, "reverse": False})})}))
    assert "    weight" not in keepalived_conf(unweighted, "a", tmp_path)


def _recorded_ha_stop(tmp_path):
    from simsip.io import unpacked_run
    from tests.conftest import ROOT

    return unpacked_run(ROOT / "examples" / "lab" / "ha-stop")


def test_recorded_lab_run_of_a_keepalived_sigterm_validates(tmp_path):
    """The real lab (keepalived 2.2.7): SIGTERM on the master, the backup (priority 100) is master
    0.61 s later — its Skew_Time — and the model, run on the lab's timeline, agrees."""
    import json

    from simsip.api import load_config
    from simsip.validate import validate
    from tests.conftest import ROOT

    run = _recorded_ha_stop(tmp_path)
    meta = json.loads((run / "meta.json").read_text())
    (fault,) = [f for f in json.loads((run / "faults.json").read_text()) if f["action"] == "fault"]
    b_master = next(t for t, st, _ in meta["transitions"]["b"] if st == "MASTER")
    assert b_master - fault["epoch"] == pytest.approx(_skew(100), abs=0.02)
    config = ROOT / "examples" / "lab" / "ha-stop" / "config.yaml"
    rep = validate(config, run, replications=20)
    assert rep.passed, f"out of tolerance: {rep.failures}\n{rep.table.to_string()}"
    # negative control: the same run against a model that crashes the node instead must fail
    cfg = load_config(config)
    crash = cfg.model_copy(update={"faults": (cfg.faults[0].model_copy(update={"kind": "node_crash"}),)})
    wrong = validate(crash, run, replications=5)
    assert not wrong.passed and any("VIP move" in f for f in wrong.failures)
