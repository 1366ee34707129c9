"""``simsip lab``: run a simsip scenario in the real lab (Kamailio + keepalived + SIPp + tshark).

The real lab is the simulator's ground truth: the same scenario file that ``simsip run``
simulates is mapped onto two real registrars, keepalived, SIPp phones and a prober in network
namespaces, its faults are injected, and the capture is recorded as a run directory that
``simsip validate`` compares with the model. ``install`` installs the Debian packages, ``check``
tells whether this machine can run the lab, ``cleanup`` removes what a crashed run left behind.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from simsip.cli._output import console, err_console, fail

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="The real lab: Kamailio + keepalived + SIPp in network namespaces (root).")

#: command -> its Python twin(s) (``module:function``; see :data:`simsip.cli.TWINS`)
TWINS = {
    "lab install": ("simsip.lab.scenario:install_packages",),
    "lab check": ("simsip.lab.check:check_requirements",),
    "lab run": ("simsip.lab.scenario:run_scenario",),
    "lab preload": ("simsip.lab.preload:measure_preload",),
    "lab cleanup": ("simsip.lab.runner:cleanup_stale",),
}


@app.command()
def install() -> None:
    """Install the Debian packages the lab needs (runs lab/install.sh; root)."""
    from simsip.lab.scenario import install_packages

    try:
        code = install_packages()
    except FileNotFoundError as exc:
        fail(str(exc))
    raise typer.Exit(code)


@app.command()
def check(variant: Optional[str] = typer.Option(None, "--variant", help="memory | dmq | shared_db"),
          baresip: bool = typer.Option(False, "--baresip", help="Also check for the baresip UA.")) -> None:
    """Check that this machine can run the lab (root, binaries, Kamailio modules)."""
    from simsip.lab.check import check_requirements

    problems = check_requirements(variant, baresip=baresip)
    if problems:
        fail(problems, 1)
    console.print("lab requirements: ok")


@app.command()
def run(
    config: Path = typer.Argument(..., help="Scenario YAML (one UDP or TCP fleet [+ one `profile: baresip` fleet of "
                                  "<= 10 real baresip UAs], two nodes, `lab:` section)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default runs/lab-<config>-<timestamp>/)."),
    set_: List[str] = typer.Option([], "--set", help="Override a config value: path.to.key=value (repeatable)."),
) -> None:
    """Run a scenario in the real lab; writes capture.pcapng, prober.csv, faults.json, meta.json,
    logs/ and config.resolved.yaml into the run directory."""
    from simsip.config.loader import ConfigError
    from simsip.lab.bridge import LabUnsupported
    from simsip.lab.scenario import prepare_run, run_scenario
    from simsip.lab.topology import LabError

    try:
        prep = prepare_run(config, set_)
    except ConfigError as exc:
        fail(exc.problems)
    except LabUnsupported as exc:
        fail([f"{config}: the real lab cannot run this scenario:"] + [f"  {p}" for p in exc.problems])
    if prep.missing:
        fail(prep.missing, 1)
    out_dir = out or Path("runs") / f"lab-{config.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in prep.notes:
        console.print(f"[dim]note: {escape(n)}[/]", highlight=False)
    spec = prep.spec
    uas = f" + {spec.baresip} baresip UA(s)" if spec.baresip else ""
    console.print(f"lab: [bold]{escape(prep.config.name)}[/] — {spec.phones} phones{uas}, variant {spec.variant}, "
                  f"warm-up {spec.warmup:g} s + {spec.duration:g} s (≈ {prep.expected_seconds:.0f} s)")
    t_start = time.time()

    def progress(msg: str) -> None:
        console.print(f"  [{time.time() - t_start:6.1f}s] {escape(msg)}", highlight=False)

    try:
        run_scenario(prep, out_dir, progress=progress)
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted[/]: lab torn down; partial run in {escape(str(out_dir))}")
        raise typer.Exit(130)
    except LabError as exc:
        fail([f"lab run failed: {exc}", f"logs in {out_dir}/logs"], 1)
    console.print(f"written: {escape(str(out_dir))}/ — compare with `simsip validate {escape(str(config))} {escape(str(out_dir))}`")


@app.command()
def preload(
    n: List[int] = typer.Option(list(), "--n", help="Contacts in the location table (repeatable; default "
                                "0, 1000, 10000, 50000, 200000)."),
    repeats: int = typer.Option(3, "--repeats", help="Starts of Kamailio per N (shuffled order)."),
    workers: int = typer.Option(2, "--workers", help="Kamailio children (UDP workers)."),
    db_mode: int = typer.Option(1, "--db-mode", help="usrloc db_mode: 1 (write-through) or 2 (write-back)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the run order."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="New directory (default runs/lab-preload-<timestamp>/)."),
) -> None:
    """Measure Kamailio usrloc's start-up preload (db_mode 1/2) with the lab's PostgreSQL: for each N,
    fill `location`, start Kamailio and time the preload's end, the first answer and the first 200s;
    fit T = a + N / rate. Writes results.json (simsip.lab.preload)."""
    from simsip.lab.preload import DEFAULT_NS, measure_preload
    from simsip.lab.topology import LabError

    out_dir = out or Path("runs") / f"lab-preload-{time.strftime('%Y%m%d-%H%M%S')}"
    t_start = time.time()

    def progress(msg: str) -> None:
        console.print(f"  [{time.time() - t_start:6.1f}s] {escape(msg)}", highlight=False)

    try:
        res = measure_preload(out_dir, ns=tuple(n) or DEFAULT_NS, repeats=repeats, workers=workers,
                              db_mode=db_mode, seed=seed, progress=progress)
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted[/]: lab torn down; partial results in {escape(str(out_dir))}")
        raise typer.Exit(130)
    except (LabError, ValueError) as exc:
        fail([f"preload measurement failed: {exc}"], 1)
    f = res.get("fit_preload_end")
    if f:
        console.print(f"preload end = {f['a']:.3f} s + N / {f['rate']:.0f} contacts/s "
                      f"(rate 95 %: {f['rate_95'][0]:.0f}–{f['rate_95'][1]:.0f}; residual sd {f['residual_sd']:.3f} s; "
                      f"{f['runs']} runs)")
    console.print(f"written: {escape(str(out_dir))}/results.json")


@app.command()
def cleanup(run_id: Optional[str] = typer.Option(None, "--run-id", help="Only simsip-<run_id>-* namespaces.")) -> None:
    """Remove leftovers of a crashed lab run (processes inside simsip-* namespaces, the namespaces).
    Do not run it without --run-id while another lab run is live."""
    from simsip.lab.runner import cleanup_stale

    done = cleanup_stale(run_id)
    console.print(f"killed {len(done['killed_pids'])} process(es), deleted {len(done['deleted_namespaces'])} "
                  f"namespace(s): {', '.join(done['deleted_namespaces']) or '-'}")
