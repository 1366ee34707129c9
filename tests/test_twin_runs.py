"""The fast paths are an exact optimisation: every cell of the scenario matrix gives identical records
with ``engine.fast_paths: false`` (the plain event-by-event engine), in the style of Ciw's
exact-vs-fast twin runs. Negative controls break the horizon on purpose and must make the twins
differ, so the comparison can fail."""

from __future__ import annotations

import numpy as np
import pytest

from simsip.engine import core
from simsip.engine.model import Model
from twin_matrix import FAULTS, HA_STACKS, MIXES, canonical, matrix, scenario_of

CELLS = list(matrix(True))
EXACT = dict(matrix(False))


def _twin(cid, fast_cfg, exact_cfg=None):
    fast = canonical(Model(fast_cfg).run())
    exact = canonical(Model(exact_cfg or EXACT[cid]).run())
    return fast, exact


def test_matrix_covers_every_stack_fault_and_mix():
    assert len(CELLS) == len(HA_STACKS) * len(FAULTS) * len(MIXES)


@pytest.mark.parametrize("cid,cfg", CELLS, ids=[c for c, _ in CELLS])
def test_fast_paths_give_identical_records(cid, cfg):
    fast, exact = _twin(cid, cfg)
    differ = [k for k in fast if fast[k] != exact[k]]
    assert not differ, f"{cid}: records differ in {differ}"


def test_fast_paths_do_apply_ahead():
    """The fast run really takes its shortcuts (fewer events), or the twin test proves nothing."""
    cid, cfg = next((c, s) for c, s in CELLS if c == "keepalived-node_crash-plain")
    counts = {}
    for name, scn in (("fast", cfg), ("exact", EXACT[cid])):
        m = Model(scn)
        n = 0
        for attr in ("call_at", "phone_at"):
            orig = getattr(m.sim, attr)

            def counting(*a, _orig=orig):
                nonlocal n
                n += 1
                return _orig(*a)

            setattr(m.sim, attr, counting)
        m.run()
        counts[name] = n
    assert counts["fast"] < 0.7 * counts["exact"], counts


CONTROL_CELLS = ["pacemaker-partition-plain", "keepalived-node_crash-plain", "cold-process_crash-plain",
                 "keepalived-db_crash-plain", "heartbeat-link_down-keepalives"]


@pytest.mark.parametrize("cid", CONTROL_CELLS)
def test_busy_cells_are_identical_too(cid):
    """The negative controls below run these larger, busier cells: with the real horizon they agree."""
    fast, exact = _twin(cid, scenario_of(cid, True, 20, slow=True), scenario_of(cid, False, 20, slow=True))
    assert [k for k in fast if fast[k] != exact[k]] == []


@pytest.mark.parametrize("cid", CONTROL_CELLS)
def test_negative_control_a_horizon_that_ignores_control_events_is_caught(cid, monkeypatch):
    """Fast paths that ignore the control plane (what simsip did before: only scheduled fault
    times bounded them) must produce different records."""
    monkeypatch.setattr(core.Horizon, "lower", lambda self, t: None)
    # 20x the phones and slow requests: a REGISTER is then in flight at almost every control event
    # (a 60-phone fleet has one in flight at a given instant with probability ~1 %, too rarely
    # for a broken fast path to show)
    fast, exact = _twin(cid, scenario_of(cid, True, 20, slow=True), scenario_of(cid, False, 20, slow=True))
    assert [k for k in fast if fast[k] != exact[k]], f"{cid}: a broken horizon went unnoticed"


BOUND_CELLS = ["keepalived-node_crash-tcp_nat", "keepalived-process_crash-tcp_nat", "keepalived-partition-tcp_nat",
               "heartbeat-process_crash-tcp_nat"]


def test_busy_connection_bound_cells_are_identical_and_a_broken_horizon_is_caught_in_them(monkeypatch):
    """NATed TCP/TLS phones and contact limits: the busy cells agree with the real horizon, and a
    horizon that ignores control events makes at least one of them differ — the connection records
    (opened, closed, which one each binding came over) included. (Whether a given cell shows it
    depends on its draws, hence several.)"""
    for cid in BOUND_CELLS:
        fast, exact = _twin(cid, scenario_of(cid, True, 20, slow=True), scenario_of(cid, False, 20, slow=True))
        assert [k for k in fast if fast[k] != exact[k]] == [], cid
    monkeypatch.setattr(core.Horizon, "lower", lambda self, t: None)
    caught = []
    for cid in BOUND_CELLS:
        fast, exact = _twin(cid, scenario_of(cid, True, 20, slow=True), scenario_of(cid, False, 20, slow=True))
        caught += [k for k in ("connections", "bound_saves") if fast[k] != exact[k]]
    assert caught, "a broken horizon went unnoticed in every connection-bound cell"


def test_negative_control_folding_arrivals_from_mixed_fleets_is_caught(monkeypatch):
    """Folding plain-fleet arrivals while a DNS fleet's arrive as events breaks first-come-first-served."""
    from simsip.engine import phones

    orig = phones.PhoneBank.start

    def start(self, *a, **k):
        orig(self, *a, **k)
        self.fold_arrivals = self.fast_paths and self.net.constant_delay

    monkeypatch.setattr(phones.PhoneBank, "start", start)
    cid = "keepalived-node_crash-dns_plus_plain"
    fast, exact = _twin(cid, scenario_of(cid, True, 10), scenario_of(cid, False, 10))
    assert fast["stores"] != exact["stores"] or fast["phones"] != exact["phones"]


def test_fenced_node_keeps_no_binding_saved_after_its_store_was_cleared():
    """Pacemaker partition with STONITH: once the loser is fenced, its store is empty and stays so
    until it is repaired (the defect: a completion applied ahead across the fence survived)."""
    for cid, cfg in CELLS:
        if not cid.startswith("pacemaker-partition"):
            continue
        log = Model(cfg).run()
        fenced = [(t, msg.split()[-1]) for t, who, msg in log.checks if msg.startswith("fenced ")]
        assert fenced, cid
        for t_f, node in fenced:
            i = log.node_names.index(node)
            st = log.stores[log.store_of_node[i]]
            if len(log.stores) == 1:
                continue  # a shared store is not the fenced node's memory
            back = min([t for t, name, kind in log.repairs if t > t_f] + [log.horizon])
            t = np.frombuffer(st.t, dtype=np.float64)
            assert not ((t > t_f) & (t < back)).any(), f"{cid}: a save on fenced {node} in ({t_f}, {back})"


def test_the_event_loop_refuses_an_event_in_the_past():
    """An effect applied ahead must never schedule behind the clock: the loop raises instead of
    silently running time backwards (what a held semi-sync reply once did to a phone's timer)."""
    from simsip.engine.core import Sim

    sim = Sim()
    seen = []
    sim.call_at(5.0, lambda: sim.call_at(1.0, seen.append, "late"))
    with pytest.raises(RuntimeError, match="in the past"):
        sim.run(until=10.0)
    assert seen == []


def test_simultaneous_phone_events_run_in_phone_order_whatever_the_scheduling_order():
    """The tie rule that keeps the twins identical when many phones act at one instant."""
    from simsip.engine.core import Sim

    seen = []
    sim = Sim()
    for p in (7, 3, 5):
        sim.phone_at(1.0, lambda q: seen.append(("phone", q)), p)
    sim.call_at(1.0, lambda: seen.append(("control", None)))
    sim.phone_at(1.0, lambda q: seen.append(("phone-again", q)), 3)
    sim.run(until=2.0)
    assert seen == [("control", None), ("phone", 3), ("phone-again", 3), ("phone", 5), ("phone", 7)]
