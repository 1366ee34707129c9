"""Asterisk persistence across a restart, against the products' rules.

* PJSIP (sorcery astdb, ``location.c``): a contact is stored with its absolute expiration time and
  loaded again at start; with phones' last refresh s uniform in (c − R, c] before a crash at c and
  the process answering again at ``ready`` = c + D + start_time, a contact is still valid iff
  s + E > ready: a fraction (E − D − start)/R of the phones (all of them when D + start < E − R).
* PJSIP ``prune_on_boot``: contacts rewritten to a reliable connection's source address are deleted
  at load (``ast_sip_location_prune_boot_contacts``): TCP/TLS phones load nothing.
* chan_sip (``reg_source_db``): every peer in astdb is re-armed for expire + 10 s from the load,
  however old the entry: an outage longer than E still restores everyone, each valid until
  ready + E + 10 exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

import yaml

from simsip.api import simulate
from simsip.config.loader import load_config_text
from simsip.engine.model import Model

NODES = [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}]
N, E, R = 600, 600.0, 300.0  # expires 600 s, refresh at 50 %


def _cfg(profile="asterisk-pjsip", down="100s", preempt=True, fleets=None, duration="700s", replications=1,
         raw_records=False, **reg):
    """A keepalived pair running the registrar profile (merged as from YAML); node a crashes at 100 s.
    ``raw_records``: every save a row of the store log (the tests that read the saves themselves)."""
    fleets = fleets or [{"name": "u", "count": N, "phone": {"expires": f"{E:g}s", "refresh": {"mode": "percent", "percent": 50}}}]
    doc = {"name": "persist", "seed": 7, "duration": duration, "replications": replications, "fleets": fleets,
           "registrar": {"profile": profile, **reg},
           "ha": {"nodes": NODES, "vrrp": {"version": 2, "advert_int": "1s", "preempt": preempt}},
           "network": {"delay": "1ms"}, "output": {"resolution": "1s", "report": False},
           "faults": [{"kind": "node_crash", "node": "a", "at": "100s", "repair_after": down}]}
    if raw_records:
        doc["engine"] = {"compact_records": False}
    return load_config_text(yaml.safe_dump(doc), "test_persistence")


def _failback(res):
    v = res.vip
    back = v[(v["node"] == "a") & (v["time"] > 0)]
    return float(back["time"].iloc[0]) if len(back) else None


def _reachable_after(res, t):
    ts = res.timeseries
    return int(ts[ts["time"] >= t]["reachable"].iloc[0])


def test_pjsip_contacts_survive_a_restart_and_the_failback_finds_them():
    res = simulate(_cfg())
    tf = _failback(res)
    assert tf is not None
    # D + start = 102 s < E − R = 300 s: every pre-crash contact is still valid at the failback
    assert res.per_replication["n_loaded_a"].iloc[0] == N
    assert _reachable_after(res, tf) == N
    # negative control: the same pair with contacts in memory starts empty and fails back to nobody
    mem = simulate(_cfg(persistence="memory"))
    tm = _failback(mem)
    assert mem.per_replication["n_loaded_a"].iloc[0] == 0
    assert _reachable_after(mem, tm) < 0.05 * N  # only the phones that refreshed in that second


def test_pjsip_nopreempt_keeps_the_vip_on_the_backup():
    res = simulate(_cfg(preempt=False))
    assert _failback(res) is None
    assert res.per_replication["n_loaded_a"].iloc[0] == N  # loaded, but it does not serve


def test_pjsip_loads_the_fraction_still_unexpired():
    down, start = 400.0, 2.0
    res = simulate(_cfg(down=f"{down:g}s", duration="560s"))
    loaded = res.per_replication["n_loaded_a"].iloc[0]
    p = (E - down - start) / R  # P(s + E > c + D + start), s uniform in (c − R, c]
    sd = np.sqrt(N * p * (1 - p))
    assert abs(loaded - N * p) < 4 * sd + 2, (loaded, N * p)  # + the ≤1 s of unflushed saves
    # negative control: a fresh expiry (chan_sip's rule) would have restored everyone
    fresh = simulate(_cfg(down=f"{down:g}s", duration="560s", restore_expiry="fresh"))
    assert fresh.per_replication["n_loaded_a"].iloc[0] == N


def test_pjsip_prunes_reliable_contacts_at_boot():
    half = N // 2
    ph = {"expires": f"{E:g}s", "refresh": {"mode": "percent", "percent": 50}}
    fleets = [{"name": "u", "count": half, "phone": ph}, {"name": "t", "count": half, "phone": {**ph, "transport": "tcp"}}]
    m = Model(_cfg(fleets=fleets, duration="300s", raw_records=True))
    log = m.run()
    assert log.counters["pruned_a"] == half
    assert log.counters["loaded_a"] == half
    st = log.stores[0]  # the load's saves, all at the instant the process answers: UDP phones only
    t = np.frombuffer(st.t, dtype=np.float64)
    phones = np.frombuffer(st.phone, dtype=np.int64)
    ready = t[t > 200.0].min()
    assert sorted(phones[t == ready].tolist()) == list(range(half))
    # negative control: without the rule the TCP contacts load too
    off = Model(_cfg(fleets=fleets, duration="300s", prune_reliable_on_boot=False)).run()
    assert off.counters["loaded_a"] == N


def test_chansip_restores_every_peer_with_a_fresh_expiry():
    down = 700.0  # longer than E: every stored expiry has passed
    m = Model(_cfg(profile="asterisk-chansip", down=f"{down:g}s", duration="900s", raw_records=True))
    log = m.run()
    assert log.counters["loaded_a"] == N
    # the restore saves: all at the same instant, each valid for the granted E + 10 s from it
    st = log.stores[0]
    t = np.frombuffer(st.t, dtype=np.float64)
    until = np.frombuffer(st.until, dtype=np.float64)
    ready = t[t > 100 + down].min()
    sel = t == ready
    assert sel.sum() == N
    assert np.allclose(until[sel] - ready, E + 10.0)
    # negative control: PJSIP's absolute expiry restores nobody after such an outage
    pj = Model(_cfg(profile="asterisk-chansip", down=f"{down:g}s", duration="900s", restore_expiry="absolute")).run()
    assert pj.counters["loaded_a"] == 0


def test_chansip_does_not_restore_what_expired_while_it_ran():
    m = Model(_cfg(profile="asterisk-chansip", duration="300s"))
    reg = m.registrars[0]
    m.run()
    reg.stopped_at = 1e9  # pretend the process ran until after every stored expiry
    assert reg._loadable(2e9, False) == []
    reg.stopped_at = 100.0
    assert len(reg._loadable(2e9, False)) == N


def test_pjsip_tells_the_phone_the_remaining_lifetime():
    """res_pjsip_registrar.c:310: the 200's Contact expires is the whole seconds left after the
    save, E − 1; the phone believes it for E − 1 and refreshes at 50 % of that."""
    log = Model(_cfg(duration="200s", down="1000s", raw_records=True)).run()  # node a crashes at 100 s
    v = np.array(log.ph_v, dtype=np.float64)
    t = np.array(log.ph_t, dtype=np.float64)
    after = (t > 0) & (t < 100)  # 2xx received from the running node a
    assert after.sum() > 0.2 * N and np.allclose(v[after] - t[after], E - 1)
    # negative control: the grant itself
    g = Model(_cfg(duration="200s", down="1000s", reply_expires="granted", raw_records=True)).run()
    gv, gt = np.array(g.ph_v, dtype=np.float64), np.array(g.ph_t, dtype=np.float64)
    sel = (gt > 0) & (gt < 100)
    assert np.allclose(gv[sel] - gt[sel], E)


# --------------------------------------------------------------------------- whole-second expiry
@pytest.mark.parametrize("bulk", [True, False])
def test_usrloc_expiry_is_the_second_of_the_save_plus_the_grant(bulk):
    """Kamailio keeps a contact's expires as time_t (act_time + E, VALID_CONTACT: expires > now): every
    binding a whole-seconds registrar holds ends at floor(T + φ) − φ + E, T its save and φ the wall
    clock's phase, whichever path saved it (event, bulk or the equilibrium start); the exact clock
    (the negative control) keeps T + E, which is never a whole second of that clock."""
    from simsip.config.loader import load_config_text
    from simsip.engine.model import Model
    from simsip.rng import wall_clock_phase

    text = ("name: w\nduration: 200s\nseed: 5\nfleets: [{name: f, count: 40, phone: {expires: 60s}}]\n"
            f"registrar: {{profile: kamailio}}\nengine: {{bulk: {str(bulk).lower()}}}\n")
    m = Model(load_config_text(text, "w"))
    m.run()
    phi = wall_clock_phase(m.cfg.seed, 0)
    node = m.registrars[0]
    assert node.expiry_phase == phi and 0 <= phi < 1
    at, until = np.asarray(node.store.at), np.asarray(node.store.until)
    held = at > 0  # saved during the run (refreshed every 30 s)
    assert held.sum() == 40
    assert np.allclose(until[held], np.floor(at[held] + phi) - phi + 60.0)
    ends = until[held] + phi
    assert np.allclose(ends, np.round(ends))  # whole seconds of the wall clock
    exact = Model(load_config_text(text.replace("{profile: kamailio}", "{profile: kamailio, expiry_clock: exact}"), "w"))
    exact.run()
    ne = exact.registrars[0]
    assert ne.expiry_phase is None
    assert np.allclose(np.asarray(ne.store.until)[held], np.asarray(ne.store.at)[held] + 60.0)
    assert not np.allclose(np.asarray(ne.store.until)[held] + phi, np.round(np.asarray(ne.store.until)[held] + phi))
