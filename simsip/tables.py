"""The result tables, declared once: what a run (or an imported trace) hands back, column by column.

A failover study produces a handful of tidy tables, and the simulator (:mod:`simsip.metrics`) and
the trace importer (:mod:`simsip.trace`) produce *the same* tables so that a lab capture and a
model run can be laid side by side:

* ``timeseries`` — one row per replication and resolution step: phones registered and reachable,
  REGISTER traffic per node, who serves the VIP;
* ``outages`` — one row per interval during which a phone could not be called;
* ``recovery`` — per disturbance (a fault, or the repair that follows it), one row per phone that
  lost reachability in its window, with the time until it was reachable again;
* ``faults`` — one row per disturbance: what hit which node, how fast the HA stack reacted and
  moved the VIP;
* ``vip`` — the node serving the VIP from each moment on;
* ``events`` — the trace importer's packet-level table (one row per SIP message / VRRP advert).

Each :class:`Table` lists its columns in order; each :class:`Column` has a name, a pandas dtype, a
unit and one line of meaning. Columns that exist once per node (``register_rx_<node>``, …) are a
:class:`Family`. Some columns exist only when the source can know them (a per-node queue length is
in the model's records but not in a packet capture): they are declared with ``required=False`` and
a ``when`` saying when they are present. A value a source cannot know is NaN (floats) or ``""``
(text).

:meth:`Table.conform` turns a DataFrame into the declared table — columns in declared order, dtypes
cast — and raises :class:`TableError` naming a missing or an undeclared column. ``docs/design.md``'s
table section is generated from these declarations (:func:`markdown`, ``python -m simsip.docs
--write``) and a test checks the committed file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

__all__ = [
    "Column", "Family", "Table", "TableError", "TIMESERIES", "OUTAGES", "RECOVERY", "FAULTS", "VIP", "EVENTS",
    "RESULT_TABLES", "SIMULATION_TABLES", "TRUNK_OUTAGES", "TABLES", "markdown", "read_table",
]

_DTYPES = ("int64", "float64", "str", "bool", "Int64")
_DOC_TYPE = {"int64": "int", "float64": "float", "str": "str", "bool": "bool", "Int64": "int (nullable)"}


class TableError(ValueError):
    """A DataFrame that does not match its table's declaration."""


@dataclass(frozen=True)
class Column:
    """One column: name, pandas dtype, unit ('' if none) and what it means."""

    name: str
    dtype: str
    unit: str
    meaning: str
    required: bool = True
    when: str = ""  # for an optional column: when it is present

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"{self.name}: dtype {self.dtype!r} is not one of {_DTYPES}")

    @property
    def label(self) -> str:
        return self.name

    def matches(self, column: str) -> bool:
        return column == self.name


@dataclass(frozen=True)
class Family:
    """Columns that exist once per node (or store): ``prefix`` + the node's name.

    A table may hold any number of members, including none (a packet capture has no per-node
    queue lengths). Members keep the order in which the producer wrote them.
    """

    prefix: str
    placeholder: str  # what follows the prefix, for the docs: '<node>', '<store>'
    dtype: str
    unit: str
    meaning: str
    when: str = ""

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise ValueError(f"{self.prefix}: dtype {self.dtype!r} is not one of {_DTYPES}")

    required = False

    @property
    def name(self) -> str:
        return self.prefix + self.placeholder

    @property
    def label(self) -> str:
        return self.name

    def matches(self, column: str) -> bool:
        return column.startswith(self.prefix) and len(column) > len(self.prefix)


Entry = Column | Family


#: Table.empty's frames, built once per table
_EMPTY: dict = {}


@dataclass(frozen=True)
class Table:
    """A result table: its name, one line of meaning, what one row is, and its columns in order."""

    name: str
    meaning: str
    row: str
    entries: tuple[Entry, ...]

    # ------------------------------------------------------------------ lookups
    @property
    def columns(self) -> tuple[Column, ...]:
        """The fixed (non-family) columns, in order."""
        return tuple(e for e in self.entries if isinstance(e, Column))

    @property
    def required(self) -> tuple[str, ...]:
        """Names of the columns every table of this kind has, in order."""
        return tuple(c.name for c in self.columns if c.required)

    @property
    def families(self) -> tuple[Family, ...]:
        return tuple(e for e in self.entries if isinstance(e, Family))

    def entry(self, column: str) -> Entry:
        """The declaration a column falls under (exact names before families)."""
        for e in self.columns:
            if e.name == column:
                return e
        for f in self.families:
            if f.matches(column):
                return f
        raise KeyError(f"{self.name}: column {column!r} is not declared (simsip/tables.py)")

    def dtype(self, column: str) -> str:
        return self.entry(column).dtype

    def members(self, df: pd.DataFrame, family_prefix: str) -> list[str]:
        """The columns of ``df`` that belong to the family with this prefix."""
        fam = next(f for f in self.families if f.prefix == family_prefix)
        fixed = {c.name for c in self.columns}
        return [c for c in df.columns if c not in fixed and fam.matches(c)]

    # ------------------------------------------------------------------ building
    def empty(self) -> pd.DataFrame:
        """A table with no rows: the required columns with their dtypes (a copy of one built once:
        every replication of a sweep point leaves some tables empty)."""
        cached = _EMPTY.get(self)
        if cached is None:
            cached = _EMPTY[self] = pd.DataFrame({c.name: _cast(pd.Series([], dtype="float64"), c.dtype, self.name, c.name)
                                                  for c in self.columns if c.required})
        return cached.copy()

    def _layout(self, names: Iterable[str]) -> list[tuple[str, Entry]]:
        """(column, declaration) in declared order; raises on missing or undeclared columns."""
        names = list(names)
        present = set(names)
        missing = [c.name for c in self.columns if c.required and c.name not in present]
        if missing:
            raise TableError(f"{self.name} table: missing column(s) {missing} (declared in simsip/tables.py; "
                             f"have {names})")
        fixed = {c.name for c in self.columns}
        placed: dict[str, Entry] = {}
        unknown = []
        for n in names:
            if n in fixed:
                continue
            fam = next((f for f in self.families if f.matches(n)), None)
            if fam is None:
                unknown.append(n)
            else:
                placed[n] = fam
        if unknown:
            raise TableError(f"{self.name} table: undeclared column(s) {unknown}; declare them in "
                             f"simsip/tables.py ({self.name.upper()}) with a dtype, unit and meaning")
        out: list[tuple[str, Entry]] = []
        for e in self.entries:
            if isinstance(e, Column):
                if e.name in present:
                    out.append((e.name, e))
            else:
                out.extend((n, e) for n in names if placed.get(n) is e)
        return out

    def conform(self, df: pd.DataFrame | dict) -> pd.DataFrame:
        """``df`` as the declared table: columns in declared order, each cast to its dtype.

        Raises :class:`TableError` when a required column is missing, a column is not declared,
        or a value cannot take its column's dtype (e.g. NaN in an integer column).
        """
        cols = _series_of(df) if isinstance(df, dict) else None
        if cols is not None:
            n = len(next(iter(cols.values())))
        else:  # a frame, or a dict pandas must judge (lengths differ, scalars only)
            df = pd.DataFrame(df) if isinstance(df, dict) else df
            n = len(df)
            cols = {name: df[name].reset_index(drop=True) for name in df.columns}
        layout = self._layout(list(cols))
        data = {name: _cast(cols[name], e.dtype, self.name, name) for name, e in layout}
        return pd.DataFrame(data, index=pd.RangeIndex(n))

    def check(self, df: pd.DataFrame) -> None:
        """Raise :class:`TableError` unless ``df`` is already exactly the declared table."""
        layout = self._layout(df.columns)
        if [n for n, _ in layout] != list(df.columns):
            raise TableError(f"{self.name} table: columns out of declared order: {list(df.columns)}, "
                             f"declared {[n for n, _ in layout]}")
        for name, e in layout:
            want = _cast(pd.Series([], dtype="float64"), e.dtype, self.name, name).dtype
            if df[name].dtype != want:
                raise TableError(f"{self.name} table: column {name} has dtype {df[name].dtype}, declared {e.dtype}")

    # ------------------------------------------------------------------ docs
    def markdown(self, level: str = "###") -> str:
        """The table's heading, meaning and column table as Markdown."""
        return "\n".join([f"{level} `{self.name}`", "", f"{self.meaning} One row per {self.row}.", "",
                          self.columns_markdown()])

    def columns_markdown(self) -> str:
        lines = ["| column | type | unit | meaning |", "|---|---|---|---|"]
        for e in self.entries:
            meaning = e.meaning
            if isinstance(e, Family):
                meaning += " One column per " + e.placeholder.strip("<>") + (
                    f"; present {e.when}." if e.when else ".")
            elif not e.required:
                meaning += f" Only {e.when}." if e.when else " Optional."
            lines.append(f"| `{e.label}` | {_DOC_TYPE[e.dtype]} | {_cell(e.unit)} | {_cell(meaning)} |")
        return "\n".join(lines)


def _series_of(columns: dict) -> dict[str, pd.Series] | None:
    """A dict of columns as Series without an intermediate frame (one copy of the data, not two);
    scalars repeated to the arrays' length. None when it has no array or their lengths differ."""
    def scalar(v) -> bool:
        return isinstance(v, (str, bytes)) or not hasattr(v, "__len__")

    arrays = [v for v in columns.values() if not scalar(v)]
    if not arrays or any(len(v) != len(arrays[0]) for v in arrays):
        return None
    n = len(arrays[0])
    return {k: pd.Series([v] * n) if scalar(v) else (v.reset_index(drop=True) if isinstance(v, pd.Series) else pd.Series(v))
            for k, v in columns.items()}


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _cast(s: pd.Series, dtype: str, table: str, column: str) -> pd.Series:
    try:
        if dtype == "str":
            if pd.api.types.is_integer_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
                return s.astype("str")  # no missing values possible: skip the object detour
            if s.dtype == object or not pd.api.types.is_string_dtype(s.dtype):
                s = s.astype(object)
                s = s.where(s.notna(), "")
            else:
                s = s.fillna("")
            return s.astype("str")
        if dtype == "int64":
            if s.dtype != np.int64:
                if s.isna().any():
                    raise TableError(f"{table} table: column {column} is an integer column but holds missing values")
                if pd.api.types.is_float_dtype(s.dtype) and not np.all(np.mod(s.to_numpy(), 1) == 0):
                    raise TableError(f"{table} table: column {column} is an integer column but holds fractions")
                s = s.astype("int64")
            return s
        if dtype == "float64":
            return s if s.dtype == np.float64 else pd.to_numeric(s, errors="raise").astype("float64")
        if dtype == "bool":
            if s.dtype != bool:
                s = s.astype(object).where(s.notna(), False).astype(bool)
            return s
        if dtype == "Int64":
            return s.astype("Int64")
    except TableError:
        raise
    except (ValueError, TypeError) as exc:
        raise TableError(f"{table} table: column {column} cannot be {dtype}: {exc}") from None
    raise AssertionError(dtype)


# =============================================================================== declarations
_WHEN_MODEL = "in a simulation (a capture does not show it)"

TIMESERIES = Table(
    "timeseries",
    "Phones registered and reachable over time, REGISTER traffic and who serves the VIP.",
    "replication and resolution step (`output.resolution`; a trace's `resolution`)",
    (
        Column("replication", "int64", "", "Replication number (0 for a trace)."),
        Column("time", "float64", "s", "Start of the step: seconds since the start of the run (a trace: since its first packet)."),
        Column("registered", "int64", "phones", "Phones that believe they are registered: their last 2xx's expiry has not passed."),
        Column("reachable", "int64", "phones",
               "Phones an incoming call would find: the node serving the VIP holds an unexpired binding "
               "(a trace: the prober's answers, else inferred from the 2xx to REGISTER and the VIP moves)."),
        Column("no_connection", "int64", "phones",
               "Phones the serving node holds an unexpired binding of but not the connection it was registered over "
               "(connection-bound TCP/TLS phones: behind NAT, or a rewritten contact): unreachable until they "
               "reconnect and register again.", required=False,
               when="in a simulation with connection-bound fleets (`phone.nat` or `registrar.rewrite_contact` over TCP/TLS)"),
        Column("register_tx", "int64", "requests", "REGISTER transactions started by phones (first transmissions, retransmissions not counted)."),
        Family("register_rx_", "<node>", "int64", "requests",
               "REGISTER requests, retransmissions included, that reached the node (a trace: sent to its address, "
               "or to the VIP while it was VRRP master).", when="for every node that received one"),
        Family("queue_", "<node>", "int64", "requests", "Most REGISTERs waiting for a worker of the node during the step.",
               when=_WHEN_MODEL),
        Family("rejected_", "<node>", "int64", "requests", "REGISTERs the node refused because its queue was full "
               "(with `registrar.udp_buffer`: the kernel's receive-buffer drops, `Udp: RcvbufErrors`).",
               when=_WHEN_MODEL),
        Family("kdmq_dropped_", "<node>", "int64", "requests", "Full-sync messages (KDMQ) the node's kernel dropped "
               "because its receive buffer was full (`Udp: RcvbufErrors`, with the REGISTER drops).",
               when="for a replicated registrar whose sync goes through its socket (`registrar.replication.sync_burst`)"),
        Family("contacts_full_", "<node>", "int64", "requests",
               "REGISTERs the node refused (403 or 503) because they would exceed `registrar.max_contacts`: a "
               "connection-bound phone's new connection is a new contact while the old one is unexpired.",
               when="in a simulation with `registrar.max_contacts`"),
        Family("served_", "<node>", "int64", "requests",
               "REGISTERs a worker of the node processed to the end (binding saved, 200 sent), duplicates included.",
               when=_WHEN_MODEL),
        Family("duplicates_", "<node>", "int64", "requests",
               "Copies of a transaction a worker had already read that were processed again in full (a stateless "
               "registrar: each costs a service time and gets its own 200).", when=_WHEN_MODEL),
        Family("absorbed_", "<node>", "int64", "requests",
               "Retransmissions a stateful front matched to their transaction: dropped, or answered with the stored "
               "reply.", when="in a simulation with `registrar.transactions: stateful`"),
        Family("wait_ms_", "<node>", "int64", "ms",
               "Longest queueing delay (arrival to a worker reading it, whole milliseconds) of a REGISTER that "
               "arrived in the step.", when=_WHEN_MODEL),
        Family("pike_", "<node>", "int64", "requests",
               "REGISTERs dropped by the per-source rate limit (Kamailio pike, or its ipban) when a worker read them.",
               when="in a simulation with `registrar.pike`"),
        Family("ignored_", "<node>", "int64", "requests",
               "REGISTERs the node ignored (UDP) or answered 503 (TCP/TLS) during its taskprocessor overload alert.",
               when="in a simulation with `registrar.overload: taskprocessor`"),
        Family("overload_", "<node>", "int64", "",
               "1 if the node's taskprocessor overload alert was raised at some time in the step, else 0.",
               when="in a simulation with `registrar.overload: taskprocessor`"),
        Column("resp_2xx", "int64", "responses", "2xx responses to REGISTER (received by phones; a trace: seen from the VIP)."),
        Column("resp_4xx", "int64", "responses", "4xx responses to REGISTER."),
        Column("resp_503", "int64", "responses", "503 responses to REGISTER."),
        Column("resp_401", "int64", "responses", "401 challenges to REGISTER.", required=False,
               when="in a simulation with digest authentication"),
        Column("retransmissions", "int64", "requests", "REGISTER retransmissions (Timer E over UDP, RTO over TCP)."),
        Column("timeouts", "int64", "transactions",
               "REGISTER transactions that timed out (Timer F, local 408) in the step; a trace counts one "
               "with no final response within its `timeout`."),
        Column("transport_errors", "int64", "transactions", "REGISTER transactions ended by a transport error (TCP/TLS connection failed or reset).",
               required=False, when="in a simulation with TCP or TLS phones"),
        Column("keepalive_failures", "int64", "pings", "Keep-alive pings (CRLF or OPTIONS) that failed.",
               required=False, when="in a simulation with phone keep-alives"),
        Column("lb_rejected", "int64", "requests", "REGISTERs the load balancer answered 503 because its forwarding rate limit was reached.",
               required=False, when="in a simulation with a load balancer"),
        Column("sbc_absorbed", "int64", "requests", "REGISTERs the caching SBC answered itself (not forwarded to the registrar).",
               required=False, when="in a simulation with a caching SBC (`sbc:`)"),
        Column("sbc_forwarded", "int64", "requests", "REGISTERs (copies included) the caching SBC forwarded to the VIP.",
               required=False, when="in a simulation with a caching SBC (`sbc:`)"),
        Column("conflicts", "int64", "phones", "Phones with a misplaced or divergent binding (at most the phone count).",
               required=False, when=_WHEN_MODEL),
        Column("conflicts_misplaced", "int64", "phones",
               "Phones whose binding sits on a node that does not serve the VIP, and not on the serving one.",
               required=False, when="in a simulation with a binding store per node"),
        Column("conflicts_divergent", "int64", "phones", "Phones for which two nodes hold different bindings (split brain, lost replication).",
               required=False, when="in a simulation with a binding store per node"),
        Column("vrrp_masters", "int64", "nodes",
               "VRRP instances in state MASTER (2 or more: split brain). A trace counts the nodes advertising: "
               "from an advert until 1.5 advert intervals after the last one, a fault or a priority-0 advert."),
        Family("bindings_", "<store>", "int64", "bindings",
               "Bindings the store holds in memory, expired ones included until the registrar's purge timer "
               "(store: a node's name, or `shared`).", when=_WHEN_MODEL),
        Column("vip_node", "str", "", "Node serving the VIP at the start of the step (\"\": nobody)."),
    ),
)

OUTAGES = Table(
    "outages",
    "Intervals during which a phone could not be called.",
    "outage of one phone",
    (
        Column("replication", "int64", "", "Replication number (0 for a trace)."),
        Column("phone", "str", "", "The phone: its number in the scenario (0-based, fleets in order); in a trace its AOR (user part)."),
        Column("fleet", "str", "", "The phone's fleet (\"\" in a trace)."),
        Column("start", "float64", "s", "When the phone became unreachable."),
        Column("end", "float64", "s", "When it was reachable again (NaN: not before the end of the run)."),
        Column("duration", "float64", "s", "end − start; for an outage still open at the end, the time until the end."),
    ),
)

_DISTURBANCE = (
    Column("replication", "int64", "", "Replication number (0 for a trace)."),
    Column("disturbance", "int64", "", "Index of the disturbance (faults and repairs, in time order)."),
    Column("cause", "str", "", "`fault`, or `repair` (the failed part comes back; the VIP may move back)."),
    Column("fault", "int64", "", "Index of the fault (scenario order, then random faults; a trace: time order); -1 on a repair."),
)

RECOVERY = Table(
    "recovery",
    "How long each phone that lost reachability after a disturbance took to be reachable again.",
    "disturbance and phone whose first outage in the disturbance's window (until the next disturbance) starts in it",
    _DISTURBANCE + (
        Column("time", "float64", "s", "When the disturbance happened."),
        Column("phone", "str", "", "The phone (as in `outages`)."),
        Column("fleet", "str", "", "The phone's fleet (\"\" in a trace)."),
        Column("recovery_time", "float64", "s", "From the disturbance until the phone was reachable again (NaN: not before the end)."),
    ),
)

FAULTS = Table(
    "faults",
    "What each disturbance hit and how the HA stack reacted.",
    "disturbance (a fault, or the repair that ends it)",
    _DISTURBANCE + (
        Column("kind", "str", "", "Fault kind (`node_crash`, `process_crash`, …; on a repair: the kind repaired; \"\": unknown)."),
        Column("node", "str", "", "The node it hit (`*`: the whole cluster; a trace: the VRRP master at that time unless the fault records name it)."),
        Column("time", "float64", "s", "When it happened."),
        Column("repair_time", "float64", "s", "From the fault until its repair (NaN: not repaired within the run, unknown, or a repair row)."),
        Column("detection_time", "float64", "s",
               "From the disturbance until the HA stack acts: another node becomes master or the node enters "
               "FAULT (a trace: a new master's first advert or the node's priority-0 advert; NaN on a repair)."),
        Column("vip_move_time", "float64", "s", "From the disturbance until another node serves the VIP (NaN: it did not move)."),
        Column("service_restored_time", "float64", "s", "From the disturbance until a node (any) serves the VIP again."),
        Column("new_vip_node", "str", "", "The node the VIP moved to (\"\": it did not move)."),
    ),
)

VIP = Table(
    "vip",
    "Who serves the VIP over time.",
    "change of the serving node",
    (
        Column("replication", "int64", "", "Replication number (0 for a trace)."),
        Column("time", "float64", "s", "From when."),
        Column("node", "str", "", "The node serving the VIP from `time` on (\"\": nobody)."),
    ),
)

TRUNK_OUTAGES = Table(
    "trunk_outages",
    "Intervals during which a trunk could not take inbound DID calls (only in a simulation with `trunks:`).",
    "replication, trunk and interval of one cause",
    (
        Column("replication", "int64", "", "Replication number."),
        Column("trunk", "str", "", "The trunk's name."),
        Column("start", "float64", "s", "When inbound calls started to fail."),
        Column("end", "float64", "s", "When they succeeded again, or the cause changed (NaN: not before the end of the run)."),
        Column("duration", "float64", "s", "end − start; for an interval still open at the end, the time until the end."),
        Column("cause", "str", "",
               "`no_node`: no node holds the VIP with its PBX answering; `wrong_node`: the provider's live binding "
               "leads to a node that does not (contact: node); `unregistered`: the provider holds no live binding."),
    ),
)

EVENTS = Table(
    "events",
    "A packet capture as tidy SIP/VRRP events (`simsip.trace.import_trace(...).events`).",
    "packet that carried a SIP message or a VRRP advertisement",
    (
        Column("time", "float64", "s", "Seconds since the first packet of the capture (its epoch is `t0_epoch`)."),
        Column("src", "str", "", "Source `ip:port` (`[v6]:port`; the bare IP for VRRP)."),
        Column("dst", "str", "", "Destination `ip:port` (the bare IP for VRRP)."),
        Column("proto", "str", "", "`udp`, `tcp` or `vrrp`."),
        Column("kind", "str", "", "`request`, `response` or `vrrp`."),
        Column("method", "str", "", "SIP method of a request, CSeq method of a response (\"\" for VRRP)."),
        Column("status", "int64", "", "Status code of a response; 0 for requests and VRRP."),
        Column("call_id", "str", "", "Call-ID."),
        Column("cseq", "int64", "", "CSeq number (0 for VRRP)."),
        Column("aor", "str", "", "User part of the To URI (REGISTER) or of the Request-URI (OPTIONS probes); responses take their request's."),
        Column("expires", "float64", "s", "Contact `expires=`, else the Expires header (NaN if absent)."),
        Column("branch", "str", "", "Top Via branch."),
        Column("retransmission", "bool", "", "A request with the same (Call-ID, CSeq, method, branch) was seen before."),
        Column("vrrp_src", "str", "", "Advertising router's IP (VRRP rows; \"\" otherwise)."),
        Column("vrrp_priority", "Int64", "", "Advertised priority (0: the master releases the VIP; empty on SIP rows)."),
        Column("vrrp_version", "Int64", "", "VRRP version, 2 or 3 (empty on SIP rows)."),
        Column("vrrp_advert_int", "float64", "s", "Advertised interval (NaN on SIP rows)."),
    ),
)

RESULT_TABLES: tuple[Table, ...] = (TIMESERIES, OUTAGES, RECOVERY, FAULTS, VIP)
#: Tables only a simulation produces (a capture cannot see the PBX's trunk registrations).
SIMULATION_TABLES: tuple[Table, ...] = (TRUNK_OUTAGES,)
TABLES: dict[str, Table] = {t.name: t for t in (*RESULT_TABLES, *SIMULATION_TABLES, EVENTS)}


def read_table(run_dir: str | os.PathLike, table: Table) -> pd.DataFrame:
    """The table ``table.name`` of a run directory (Parquet or CSV) as declared; empty if absent."""
    d = Path(run_dir)
    pq, csv = d / f"{table.name}.parquet", d / f"{table.name}.csv"
    if pq.is_file():
        df = pd.read_parquet(pq)
    elif csv.is_file() and csv.stat().st_size > 0:
        df = pd.read_csv(csv, keep_default_na=True)
    else:
        return table.empty()
    return table.conform(df)


def _iter_markdown() -> Iterator[str]:
    yield "## Trace event table"
    yield ""
    yield ("`simsip.trace.import_trace(...).events`, a pandas DataFrame, one row per packet that carried SIP "
           "or VRRP. Times are seconds since the first packet of the capture.")
    yield ""
    yield EVENTS.columns_markdown()
    yield ""
    yield "## Result tables (simulator and trace produce the same tables)"
    yield ""
    yield ("`simsip.metrics` (a simulation) and `simsip.trace.trace_metrics` (a capture) both return these "
           "tables, conformed to the declarations in `simsip/tables.py` (same columns, same dtypes). Columns "
           "marked *only …* and per-node families are present when the source can know them; a value a "
           "trace cannot know is NaN (numbers) or \"\" (text).")
    for t in RESULT_TABLES:
        yield ""
        yield t.markdown()
    yield ""
    yield "## Simulation-only tables"
    for t in SIMULATION_TABLES:
        yield ""
        yield t.markdown()


def markdown() -> str:
    """The trace event table and the result tables as Markdown (the generated part of docs/design.md)."""
    return "\n".join(_iter_markdown()) + "\n"
