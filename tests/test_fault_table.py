"""The fault table is the one declaration of fault kinds: the schema, the engine, the lab and the
report all take their kinds from it, and each kind's behaviour is what its words say."""

from __future__ import annotations

import typing

import pytest

from simsip import faults as fault_table
from simsip.config.schema import Fault, RandomFault
from simsip.engine.model import Model
from simsip.lab.spec import FAULT_KINDS as LAB_FAULT_KINDS
from conftest import scenario

NODES = [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]


def test_schema_choices_are_the_table():
    assert typing.get_args(Fault.model_fields["kind"].annotation) == fault_table.NAMES
    assert typing.get_args(RandomFault.model_fields["kind"].annotation) == fault_table.RANDOM_NAMES
    assert set(LAB_FAULT_KINDS) == {k.lab for k in fault_table.KINDS if k.lab}


def test_every_kind_is_complete():
    for k in fault_table.KINDS:
        assert k.help and k.words and callable(k.apply) and callable(k.repair), k.name
        assert (k.lab is None) == (k.lab_apply is None) == (k.lab_repair is None), k.name
        assert k.lab is not None or k.lab_why != "", k.name
        for p in k.params:  # every field apply reads is a field of a fault
            assert p in Fault.model_fields, (k.name, p)


class _Recorder:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *a: self.calls.append((name, a))


@pytest.mark.parametrize("k", fault_table.KINDS, ids=lambda k: k.name)
def test_apply_and_repair_name_real_node_actions(k):
    """Each kind's apply/repair call methods that the engine's node actions really have."""
    from simsip.engine.nodes import NodeActions

    rec = _Recorder()
    k.apply(rec, 0, 1.0, **{p: 0.5 for p in k.params})  # the fault's own fields (partial_sync: fraction)
    k.repair(rec, 0, 2.0)
    assert rec.calls
    for name, _ in rec.calls:
        assert callable(getattr(NodeActions, name, None)), f"{k.name}: NodeActions.{name} missing"


def test_lab_realisations_match_the_lab_actions():
    from simsip.lab.runner import Lab

    expected = {"node_crash": ("crash_node", "reboot_node"), "process_crash": ("kill_registrar", "start_registrar_again"),
                "restart": ("stop_registrar", "finish_restart"), "ha_stop": ("stop_keepalived", "start_keepalived_again")}
    for lab_name, (a, r) in expected.items():
        rec = _Recorder()
        k = fault_table.by_lab(lab_name)
        k.lab_apply(rec, "a", None)
        k.lab_repair(rec, "a", None)
        assert [c[0] for c in rec.calls] == [a, r]
        assert callable(getattr(Lab, a)) and callable(getattr(Lab, r))


def test_database_fault_without_a_shared_store_is_a_located_error():
    with pytest.raises(Exception) as e:
        scenario(faults=[{"kind": "db_crash", "at": "10s"}])
    assert "faults[0].kind" in str(e.value) and "shared registration store" in str(e.value)
    with pytest.raises(Exception) as e:
        scenario(registrar={"data": "shared"}, faults=[{"kind": "db_replica_down", "at": "10s"}])
    assert "needs a replica" in str(e.value)
    scenario(registrar={"data": "shared"}, database={"replication": "async"},
             faults=[{"kind": "db_replica_down", "at": "10s"}])


@pytest.mark.parametrize("kind,serving_after", [
    ("node_crash", "b"), ("link_down", "b"), ("process_crash", "a"), ("process_hang", "a"), ("phone_link_down", None),
    ("ha_stop", "b"),
])
def test_each_kind_does_what_its_words_say(kind, serving_after):
    """Without a health check: a crash or link loss moves the VIP; a process fault leaves the VIP on
    a node that serves nobody (a crashed process) or still looks served (a hung one); a phone-link
    cut leaves the VIP in place but nobody is served through it."""
    cfg = scenario(duration="60s", ha={"nodes": NODES}, faults=[{"kind": kind, "node": "a", "at": "10s"}])
    log = Model(cfg).run()
    final = log.serving[-1][1]
    last = log.node_names[final] if final >= 0 else None
    if kind == "process_hang":
        assert last == "a"  # the process runs: calls still reach a (and time out there)
    elif kind == "process_crash":
        assert last is None
    else:
        assert last == serving_after
    owners = [st for t, n, st in log.vrrp if n == "b" and st == "master"]
    assert bool(owners) == (kind in ("node_crash", "link_down", "ha_stop"))
