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
