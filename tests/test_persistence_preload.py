"""Kamailio usrloc's start-up preload (db_mode 1/2) against the product's rule.

Kamailio 5.6.3 (``git show 5.6.3:<path>`` of github.com/kamailio/kamailio):

* ``src/modules/usrloc/usrloc_mod.c`` ``child_init``: the process of rank ``PROC_SIPINIT`` (the first
  UDP worker) runs ``preload_udomain`` (``udomain.c``: one SELECT of the table, ``fetch_rows`` rows a
  batch, per row ``dbrow2info``, ``lock_udomain``, ``mem_insert_urecord``/``mem_insert_ucontact``);
* ``src/main.c`` ``main_loop`` binds the UDP sockets (``udp_init``) before it forks the workers and
  does not wait for the first one (``wait_worker1_mode`` 0): the other workers read and answer at once.

So with ``preload: first_worker`` a restarted node answers from ``start_time`` on, its first worker
is busy for ``n / load_rate``, and the loaded bindings are in memory at ``start + n / load_rate``;
``preload: blocking`` (the generic rule) answers nothing before the load's end.
"""

from __future__ import annotations

import numpy as np
import yaml

from simsip.config.loader import load_config_text
from simsip.engine.model import Model
from simsip.models import profile_values

NODES = [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]
N, E = 600, 600.0
CRASH, DOWN, START, RATE = 100.0, 100.0, 1.0, 20.0  # 600 contacts at 20/s: a 30 s preload


def _cfg(preload="first_worker", workers=8, profile="kamailio-db-mode-1", **reg):
    doc = {"name": "preload", "seed": 11, "duration": "260s", "replications": 1,
           "fleets": [{"name": "u", "count": N,
                       "phone": {"expires": f"{E:g}s", "refresh": {"mode": "percent", "percent": 50}}}],
           "registrar": {"profile": profile, "workers": workers, "preload": preload,
                         "start_time": {"dist": "constant", "mean": f"{START:g}s"},
                         "load_rate": f"{RATE:g}/s", "load_doubling": None,  # a constant rate unless a test sets it
                         "service_time": {"dist": "constant", "mean": "1ms"}, **reg},
           "ha": {"nodes": NODES, "vrrp": {"version": 2, "advert_int": "1s", "preempt": True}},
           "network": {"delay": "1ms"}, "output": {"resolution": "1s", "report": False},
           "engine": {"compact_records": False},
           "faults": [{"kind": "node_crash", "node": "a", "at": f"{CRASH:g}s", "repair_after": f"{DOWN:g}s"}]}
    return load_config_text(yaml.safe_dump(doc), "test_persistence_preload")


def _saves_a(log):
    st = log.stores[0]
    return np.frombuffer(st.t, dtype=np.float64), np.frombuffer(st.phone, dtype=np.int64)


BOOT = CRASH + DOWN
ANSWERS = BOOT + START          # the sockets are read from here on (first_worker)
LOADED = ANSWERS + N / RATE     # the preload's end: start + n / rate


def test_preload_ends_at_start_plus_n_over_rate_and_the_other_workers_answer_meanwhile():
    log = Model(_cfg()).run()
    t, phones = _saves_a(log)
    # REGISTERs that reached node a during the preload were saved by the other workers at once
    during = (t >= ANSWERS) & (t < LOADED)
    assert np.count_nonzero(during) >= 3, t[t > BOOT][:20]
    assert not np.any((t > BOOT) & (t < ANSWERS))  # nothing before start_time
    # the load's saves: every other phone at the instant the preload ends (start + n / rate), not
    # before; a phone that registered meanwhile keeps its newer binding (D + start + n/rate < E − R:
    # every stored contact is still valid)
    fresh = set(phones[during].tolist())
    loaded = set(phones[t == LOADED].tolist())
    assert log.counters["loaded_a"] == len(loaded) == N - len(fresh)
    assert loaded | fresh == set(range(N))


def test_blocking_preload_answers_nothing_before_its_end():
    log = Model(_cfg(preload="blocking")).run()
    assert log.counters["loaded_a"] == N  # nobody could register on node a before the load's end
    t, _ = _saves_a(log)
    assert not np.any((t > BOOT) & (t < LOADED))  # negative control: the old rule, ready = start + n/rate
    assert np.count_nonzero(t == LOADED) == N


def test_one_worker_holds_the_requests_until_its_preload_is_done():
    """children=1: the only worker does the preload; what reaches the bound socket meanwhile waits
    in the queue and is served after it (not lost as with a process that is not up)."""
    log = Model(_cfg(workers=1)).run()
    t, _ = _saves_a(log)
    assert not np.any((t > BOOT) & (t < LOADED))
    first_after = np.sort(t[t > LOADED])[:3]
    assert first_after.size and first_after[0] < LOADED + 0.01  # queued REGISTERs served right after the load


def test_a_crash_during_the_preload_loads_nothing():
    cfg = _cfg()
    doc = yaml.safe_load(yaml.safe_dump(cfg.model_dump(mode="json")))
    crash2 = {"kind": "process_crash", "node": "a", "at": f"{ANSWERS + 2:g}s"}
    doc["faults"] = [f for f in doc["faults"]] + [crash2]
    again = Model(load_config_text(yaml.safe_dump(doc), "test_persistence_preload")).run()
    t, _ = _saves_a(again)
    assert not np.any(t == LOADED)  # the process died at ANSWERS + 2, before its load ended


def test_kamailio_profiles_carry_the_measured_first_worker_rule():
    for name in ("registrars/kamailio-db-mode-1", "registrars/kamailio-db-mode-2"):
        vals = {v.path: v for v in profile_values(name)}
        assert vals["preload"].value == "first_worker", name
        for key in ("load_rate", "start_time.mean", "preload"):
            src = vals[key].source or ""
            assert "measured" in src.lower() and "assumption" not in src.lower(), (name, key)


def test_load_time_grows_with_the_table_as_the_slot_walk_does():
    from simsip.engine.registrar import load_time

    assert load_time(1000, 100.0) == 10.0
    assert load_time(1000, 100.0, 1000.0) == 20.0  # at load_doubling contacts the cost per contact doubles
    assert load_time(0, 100.0, 10.0) == 0.0
    # the engine uses it: 600 contacts at 20/s doubling at 1200 → a 45 s preload
    log = Model(_cfg(load_doubling=1200)).run()
    t, phones = _saves_a(log)
    end = ANSWERS + 45.0
    assert not np.any(t == LOADED) and np.count_nonzero(t == end) == log.counters["loaded_a"] > N // 2
