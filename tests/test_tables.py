"""The declared result tables: conform(), and the simulator and a trace producing the same tables."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from simsip import tables
from simsip.tables import FAULTS, OUTAGES, RECOVERY, RESULT_TABLES, TIMESERIES, VIP, TableError

from tests.conftest import scenario

ROOT = Path(__file__).resolve().parents[1]


# --- conform -------------------------------------------------------------------------------------
def test_conform_orders_columns_and_casts_dtypes():
    df = pd.DataFrame({"node": ["b", None], "time": ["1.5", 2], "replication": [0.0, 1.0]})
    out = VIP.conform(df)
    assert list(out.columns) == ["replication", "time", "node"]
    assert out["replication"].dtype == np.int64 and out["time"].dtype == np.float64
    assert out["node"].tolist() == ["b", ""]  # text: missing is ""
    VIP.check(out)
    with pytest.raises(TableError, match="out of declared order"):
        VIP.check(out[["time", "replication", "node"]])


def test_conform_names_a_missing_or_undeclared_column():
    df = pd.DataFrame({"replication": [0], "time": [0.0], "node": ["a"]})
    with pytest.raises(TableError, match=r"vip table: missing column\(s\) \['node'\]"):
        VIP.conform(df.drop(columns="node"))
    with pytest.raises(TableError, match=r"undeclared column\(s\) \['colour'\]"):
        VIP.conform(df.assign(colour="red"))
    with pytest.raises(TableError, match="integer column but holds missing values"):
        VIP.conform(df.assign(replication=[math.nan]))


def test_families_keep_their_members_in_producer_order_and_place_them_where_declared():
    n = 3
    cols = {"vip_node": ["a"] * n, "bindings_b": [1] * n, "bindings_a": [2] * n, "register_rx_b": [0] * n,
            "replication": [0] * n, "time": [0.0, 1.0, 2.0], "registered": [1] * n, "reachable": [1] * n,
            "register_tx": [0] * n, "resp_2xx": [0] * n, "resp_4xx": [0] * n, "resp_503": [0] * n,
            "retransmissions": [0] * n, "timeouts": [0] * n, "vrrp_masters": [1] * n}
    out = TIMESERIES.conform(pd.DataFrame(cols))
    assert list(out.columns) == ["replication", "time", "registered", "reachable", "register_tx", "register_rx_b",
                                 "resp_2xx", "resp_4xx", "resp_503", "retransmissions", "timeouts", "vrrp_masters",
                                 "bindings_b", "bindings_a", "vip_node"]
    assert TIMESERIES.members(out, "bindings_") == ["bindings_b", "bindings_a"]
    assert TIMESERIES.dtype("register_rx_zz") == "int64"
    with pytest.raises(KeyError):
        TIMESERIES.dtype("register_rx_")  # a family member needs a name after the prefix


def test_empty_tables_have_the_declared_columns_and_dtypes():
    for t in RESULT_TABLES:
        e = t.empty()
        assert list(e.columns) == list(t.required) and len(e) == 0
        t.check(e)


def test_read_table_round_trips_a_csv(tmp_path):
    df = OUTAGES.conform({"replication": [0, 0], "phone": ["7", "12"], "fleet": ["desk", ""],
                          "start": [1.0, 2.0], "end": [3.0, math.nan], "duration": [2.0, 5.0]})
    df.to_csv(tmp_path / "outages.csv", index=False)
    back = tables.read_table(tmp_path, OUTAGES)
    pd.testing.assert_frame_equal(back, df)
    assert len(tables.read_table(tmp_path, RECOVERY)) == 0  # absent: the empty declared table


# --- the simulator and a trace produce the same tables ------------------------------------------
@pytest.fixture(scope="module")
def simulated():
    from simsip.api import simulate

    cfg = scenario(duration="3min", faults=[{"kind": "node_crash", "node": "master", "at": "60s", "repair_after": "60s"}])
    return simulate(cfg)


def _lab_trace(name: str):
    from simsip.trace import import_trace, trace_metrics

    imp = import_trace(ROOT / "examples" / "lab" / name)
    meta = imp.meta["meta.json"]
    nodes = {k: v for k, v in meta["addresses"].items() if k in ("a", "b")}
    return trace_metrics(imp.events, vip=meta["vip"], faults=imp.faults(), registrar_nodes=nodes)


def _synthetic_trace(tmp_path):
    """Two phones registering through a master crash (inferred reachability), from trace_builders."""
    from simsip.trace import import_trace, trace_metrics

    from trace_builders import NODE_A, NODE_B, PHONE_IP, T0, VIP as VIP_IP, ether, register, register_ok, udp, vrrp_frames, write_pcap

    frames = []
    for aor, starts in (("ph1", (0, 30, 60)), ("ph2", (10, 40, 70))):
        for k, t in enumerate(starts):
            cid, br = f"cid-{aor}", f"z9hG4bK-{aor}-{k}"
            frames.append((T0 + t, ether(udp(PHONE_IP, 5060, VIP_IP, 5060, register(aor, PHONE_IP, cid, k + 1, br, 60)))))
            frames.append((T0 + t + 0.002, ether(udp(VIP_IP, 5060, PHONE_IP, 5060, register_ok(aor, PHONE_IP, cid, k + 1, br, 60)))))
    frames += vrrp_frames(NODE_A, 0.0, 45.0, 1.0, priority=200) + vrrp_frames(NODE_B, 48.6, 80.0, 1.0, priority=100)
    imp = import_trace(write_pcap(tmp_path / "failover.pcap", sorted(frames)))
    return trace_metrics(imp.events, vip=VIP_IP, faults=[45.0], registrar_nodes={"a": NODE_A, "b": NODE_B})


@pytest.mark.parametrize("source", ["split-brain", "udp-none", "synthetic"])
def test_simulation_and_trace_yield_the_same_tables(simulated, source, tmp_path):
    trace = _synthetic_trace(tmp_path) if source == "synthetic" else _lab_trace(source)
    for t in (OUTAGES, RECOVERY, FAULTS, VIP):
        sim, tr = getattr(simulated, t.name), getattr(trace, t.name)
        assert len(sim) and len(tr), t.name  # compare real rows, not two empty frames
        assert list(sim.columns) == list(tr.columns) == list(t.required), t.name
        assert sim.dtypes.to_dict() == tr.dtypes.to_dict(), t.name
        t.check(sim)
        t.check(tr)
    sim, tr = simulated.timeseries, trace.timeseries
    TIMESERIES.check(sim)
    TIMESERIES.check(tr)
    required = list(TIMESERIES.required)
    assert [c for c in sim.columns if c in required] == [c for c in tr.columns if c in required] == required
    assert sim[required].dtypes.to_dict() == tr[required].dtypes.to_dict()
    # per-node traffic is named after the registrars in both
    assert {"register_rx_a", "register_rx_b"} <= set(sim.columns) and "register_rx_a" in tr.columns
    if source == "split-brain":  # faults.json records the repair: both causes, in both
        assert set(trace.faults["cause"]) == set(simulated.faults["cause"]) == {"fault", "repair"}


# --- docs ----------------------------------------------------------------------------------------
def test_design_doc_table_section_is_generated_from_the_declarations():
    from simsip.docs import DESIGN_PATH, design_doc, design_tables_block

    text = DESIGN_PATH.read_text(encoding="utf-8")
    assert design_tables_block() in text, "docs/design.md is out of date: regenerate with `python -m simsip.docs --write`"
    assert design_doc(text) == text
    for t in tables.TABLES.values():  # every declared column is documented with its type
        for e in t.entries:
            assert f"| `{e.label}` | {tables._DOC_TYPE[e.dtype]} |" in text, (t.name, e.label)
