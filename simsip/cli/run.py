"""``simsip run``, ``simsip check``, ``simsip schema``: one scenario file.

A scenario file says how many phones register how, to which registrars behind which VIP, and
which faults strike when. ``run`` simulates it and writes a run directory (summary, tables,
report) — or, when the scenario lists ``variants:``, simulates every variant on the same phones and
fault and writes them side by side. ``check`` validates it (every problem with file, line and
key), ``schema`` prints the JSON Schema editors complete scenario files from.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape
from rich.table import Table

from simsip.cli._output import console, err_console, fail, fmt, interrupt_code

app = typer.Typer()

#: command -> its Python twin(s) (``module:function``; see :data:`simsip.cli.TWINS`)
TWINS = {
    "run": ("simsip.api:simulate", "simsip.compare:simulate_variants"),
    "check": ("simsip.config.loader:load_config",),
    "schema": ("simsip.config.loader:json_schema",),
}

#: the figures ``simsip run`` prints, in this order
HEADLINE = [
    "unreachable_phone_seconds",
    "phones_affected",
    "phones_not_recovered",
    "phones_not_recovered_share",
    "recovery_median",
    "recovery_p95",
    "recovery_max",
    "vip_move_time",
    "failback_vip_move_time",
    "peak_register_rate",
    "capacity_per_s",
    "timeouts",
    "calls_failed_expected",
    "trunk_unregistered_seconds",
    "trunk_calls_failed_expected",
]


@app.command()
def run(
    config: Path = typer.Argument(..., help="Scenario YAML."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default runs/<config>-<timestamp>/)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Run seed (overrides the config)."),
    replications: Optional[int] = typer.Option(None, "--replications", "-r", help="Replications (overrides the config)."),
    set_: List[str] = typer.Option([], "--set", help="Override a config value: path.to.key=value (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Run even when the estimate exceeds this machine's memory or the time budget."),
    time_budget: str = typer.Option("1h", "--time-budget", help="Refuse a run estimated to take longer (e.g. 30min, 8h)."),
) -> None:
    """Simulate a scenario, print the key results and write the run directory."""
    from simsip.api import load_config, simulate
    from simsip.config.loader import ConfigError
    from simsip.metrics import censoring_note, show_value

    try:
        cfg = load_config(config, set_, seed=seed, replications=replications)
    except ConfigError as exc:
        fail(exc.problems)
    _check_estimate(cfg, config, time_budget, force)
    out_dir = out or Path("runs") / f"{config.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if cfg.variants:
        _run_variants(cfg, out_dir)
        return
    console.print(f"simsip: [bold]{escape(cfg.name)}[/] — {cfg.phones} phones, {cfg.replications} replication(s), seed {cfg.seed}")

    meter = Progress(cfg)

    def progress(done: int, total: int) -> None:
        meter.clear()
        console.print(f"  replication {done}/{total} done", highlight=False)

    try:
        res = simulate(cfg, out=out_dir, progress=progress, tick=meter.tick)
    except ConfigError as exc:  # e.g. --out is a file or not writable
        fail(exc.problems)
    except KeyboardInterrupt as exc:
        meter.clear()
        err_console.print(f"[yellow]interrupted[/]: finished replications written to {escape(str(out_dir))}")
        raise typer.Exit(interrupt_code(exc))
    except Exception as exc:
        err_console.print(f"[bold red]run failed[/]: {escape(f'{type(exc).__name__}: {exc}; {_what_was_written(out_dir)}')}")
        raise typer.Exit(1)
    summ = res.summary
    table = Table(title=f"{escape(cfg.name)}: key results (mean, 95 % CI over {summ['replications_done']} replication(s))")
    table.add_column("figure")
    table.add_column("mean", justify="right")
    table.add_column("95 % CI", justify="right")
    table.add_column("unit")
    for k in HEADLINE:
        f = summ["figures"].get(k)
        if f is None or f["n"] == 0 or (f["mean"] is None and not f.get("not_reached")):
            continue
        ci = f"{fmt(f['ci_low'])} – {fmt(f['ci_high'])}" if f["n"] > 1 and not f.get("not_reached") else ""
        table.add_row(k, show_value(f, fmt), ci, f["unit"])
    console.print(table)
    note = censoring_note(summ["figures"])
    if note:
        err_console.print(f"[yellow]warning[/]: {escape(note)}")
    console.print(f"written: {out_dir}/ (summary.json, timeseries, outages, recovery, report.html) in {res.runtime_s:.1f}s")


def _clock(seconds: float) -> str:
    s = int(round(max(seconds, 0.0)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """A one-line progress display on stderr for runs longer than a few seconds: the replication,
    simulated time, REGISTER transactions per second of wall time and the time left (from the pace
    so far, over the remaining replications too). Silent when stderr is not a terminal."""

    AFTER = 3.0  # seconds of wall time before the line appears
    EVERY = 0.5

    def __init__(self, cfg, stream=None):
        self.cfg = cfg
        self.stream = stream if stream is not None else sys.stderr
        self.live = getattr(self.stream, "isatty", lambda: False)()
        self.t0 = time.monotonic()
        self.rep_t0 = self.t0
        self.rep = -1
        self.last = 0.0
        self.shown = False

    def line(self, rep: int, t: float, tx: int, now: float) -> str:
        dur = float(self.cfg.duration)
        reps = self.cfg.replications
        elapsed = now - self.rep_t0
        frac = t / dur if dur else 1.0
        done = rep + frac  # replications' worth of work so far
        total_elapsed = now - self.t0
        left = total_elapsed / done * (reps - done) if done > 0 else float("nan")
        rate = tx / elapsed if elapsed > 0 else 0.0
        return (f"  replication {rep + 1}/{reps}: simulated {_clock(t)} of {_clock(dur)} "
                f"({frac:.0%}), {rate / 1e3:,.0f} k REGISTERs/s, ETA {_clock(left) if left == left else '?'}"
                f"  (Ctrl-C stops, keeping finished replications)")

    def tick(self, rep: int, t: float, tx: int) -> None:
        now = time.monotonic()
        if rep != self.rep:
            self.rep, self.rep_t0 = rep, now
        if not self.live or now - self.t0 < self.AFTER or now - self.last < self.EVERY:
            return
        self.last = now
        self.stream.write("\r\033[K" + self.line(rep, t, tx, now))
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False


def _what_was_written(out_dir: Path) -> str:
    """What a failed run left on disk, said truthfully (read back from the directory)."""
    found = sorted(out_dir.glob("*/summary.json")) if out_dir.is_dir() else []
    if (out_dir / "summary.json").is_file():
        found = [out_dir / "summary.json"]
    done = 0
    for p in found:
        try:
            done += int(json.loads(p.read_text(encoding="utf-8")).get("replications_done") or 0)
        except (OSError, ValueError, AttributeError):
            pass
    if done:
        return f"partial results ({done} finished replication(s)) in {out_dir}"
    if found:
        return f"no replication finished; the error is recorded in {found[0]}"
    return "nothing was written"


def _check_estimate(cfg, config: Path, time_budget: str, force: bool) -> None:
    """Refuse (exit 2) a run estimated above this machine's memory or the time budget, unless --force;
    show the estimate when the run is big enough to care."""
    from simsip.estimate import check, estimate
    from simsip.units import UnitError, parse_duration

    try:
        budget = float(parse_duration(time_budget))
        if not budget > 0:
            raise ValueError
    except (UnitError, ValueError, TypeError):
        fail(f"--time-budget: value {time_budget!r}: a duration with a unit (allowed: > 0, e.g. 30min, 8h)")
    runs = max(1, len(cfg.variants))  # every variant is a run of the same size
    problems = check(cfg, time_budget=budget / runs, source=str(config))
    if problems and not force:
        fail(problems)
    est = estimate(cfg)
    if problems or est.total_seconds * runs > 60 or est.peak_bytes > 2**30:
        err_console.print(f"estimate: {escape(est.describe())}" + (" — running anyway (--force)" if problems else ""),
                          highlight=False, soft_wrap=True)


def _run_variants(cfg, out_dir: Path) -> None:
    from simsip.compare import KEY_FIGURES, simulate_variants, write_comparison
    from simsip.config.loader import ConfigError
    from simsip.metrics import censoring_note, show_value

    console.print(f"simsip: [bold]{escape(cfg.name)}[/] — {len(cfg.variants)} variants, {cfg.phones} phones, "
                  f"{cfg.replications} replication(s), seed {cfg.seed}")
    try:
        results = simulate_variants(cfg, out=out_dir)
    except KeyboardInterrupt as exc:
        err_console.print(f"[yellow]interrupted[/]: finished variants written to {escape(str(out_dir))}")
        raise typer.Exit(interrupt_code(exc))
    except ConfigError as exc:
        fail(exc.problems)
    except Exception as exc:
        err_console.print(f"[bold red]run failed[/]: {escape(f'{type(exc).__name__}: {exc}; {_what_was_written(out_dir)}')}")
        raise typer.Exit(1)
    write_comparison(results, out_dir)
    table = Table(title=f"{escape(cfg.name)}: variants side by side (mean over replications)")
    table.add_column("figure")
    for name in results:
        table.add_column(escape(name), justify="right")
    for k in KEY_FIGURES:
        stats = [r.summary["figures"].get(k) for r in results.values()]
        if all(f is None or (f["mean"] is None and not f.get("not_reached")) for f in stats):
            continue
        table.add_row(k, *[show_value(f, fmt) for f in stats])
    console.print(table)
    for name, r in results.items():
        note = censoring_note(r.summary["figures"])
        if note:
            err_console.print(f"[yellow]warning[/]: {escape(name)}: {escape(note)}")
    console.print(f"written: {escape(str(out_dir))}/<variant>/ and comparison.csv, comparison.html")


@app.command()
def schema(out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write to a file instead of stdout.")) -> None:
    """Print the JSON Schema of scenario files (for editor completion)."""
    from simsip.config.loader import json_schema

    text = json.dumps(json_schema(), indent=2)
    if out:
        from simsip.io import atomic_text

        if out.is_dir():
            fail(f"{out}: is a directory (give a file name, e.g. {out / 'simsip.schema.json'})")
        try:
            atomic_text(out, text + "\n")
        except OSError as exc:
            fail(f"{out}: cannot write: {exc.strerror or exc} (choose another --out)")
    else:
        sys.stdout.write(text + "\n")


@app.command()
def check(
    config: Path = typer.Argument(..., help="Scenario YAML."),
    set_: List[str] = typer.Option([], "--set", help="Override a config value: path.to.key=value."),
    show: bool = typer.Option(False, "--show", help="Print the resolved config."),
) -> None:
    """Validate a scenario file (and optionally print it resolved)."""
    from simsip.config.loader import ConfigError, load_config, resolved_yaml

    try:
        cfg = load_config(config, set_)
    except ConfigError as exc:
        fail(exc.problems)
    if show:
        sys.stdout.write(resolved_yaml(cfg))
    else:
        console.print(f"{config}: ok ({cfg.phones} phones, {len(cfg.faults)} fault(s))")
