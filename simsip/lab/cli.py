"""``simsip lab``: run a simsip scenario in the real lab (Kamailio + keepalived + SIPp + tshark).

The real lab is the simulator's ground truth: the same scenario file that ``simsip run``
simulates is mapped onto the lab (:func:`simsip.lab.bridge.spec_from_scenario`), run in network
namespaces, and recorded as a run directory that ``simsip validate`` compares with the model.
Mount with ``app.add_typer(lab_app, name="lab")``.
"""
from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

lab_app = typer.Typer(no_args_is_help=True, add_completion=False,
                      help="The real lab: Kamailio + keepalived + SIPp in network namespaces (root).")
console = Console()
err = Console(stderr=True)

INSTALL_SH = Path(__file__).resolve().parents[2] / "lab" / "install.sh"


def _fail(lines: list[str] | str, code: int = 2) -> None:
    for line in [lines] if isinstance(lines, str) else lines:
        err.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@lab_app.command()
def install() -> None:
    """Install the Debian packages the lab needs (runs lab/install.sh; root)."""
    if not INSTALL_SH.is_file():
        _fail(f"{INSTALL_SH} not found (install.sh ships with the source tree, not the wheel)")
    r = subprocess.run(["bash", str(INSTALL_SH)])
    raise typer.Exit(r.returncode)


@lab_app.command()
def check(variant: Optional[str] = typer.Option(None, "--variant", help="memory | dmq | shared_db"),
          baresip: bool = typer.Option(False, "--baresip", help="Also check for the baresip UA.")) -> None:
    """Check that this machine can run the lab (root, binaries, Kamailio modules)."""
    from .check import check_requirements

    problems = check_requirements(variant, baresip=baresip)
    if problems:
        _fail(problems, 1)
    console.print("lab requirements: ok")


@lab_app.command()
def run(
    config: Path = typer.Argument(..., help="Scenario YAML (one UDP fleet [+ one `profile: baresip` fleet of "
                                  "<= 10 real baresip UAs], two nodes, `lab:` section)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Run directory (default runs/lab-<config>-<timestamp>/)."),
    set_: List[str] = typer.Option([], "--set", help="Override a config value: path.to.key=value (repeatable)."),
) -> None:
    """Run a scenario in the real lab; writes capture.pcapng, prober.csv, faults.json, meta.json,
    logs/ and config.resolved.yaml into the run directory."""
    from simsip.config.loader import ConfigError, load_config, resolved_yaml

    from .bridge import LabUnsupported, mapping_notes, spec_from_scenario
    from .check import check_requirements
    from .runner import run_lab
    from .topology import LabError

    try:
        cfg = load_config(config, set_)
    except ConfigError as exc:
        _fail(exc.problems)
    try:
        spec = spec_from_scenario(cfg)
    except LabUnsupported as exc:
        _fail([f"{config}: the real lab cannot run this scenario:"] + [f"  {p}" for p in exc.problems])
    problems = check_requirements(spec.variant, baresip=spec.baresip > 0)
    if problems:
        _fail(problems, 1)
    out_dir = out or Path("runs") / f"lab-{config.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.resolved.yaml").write_text(resolved_yaml(cfg))
    for n in mapping_notes(cfg):
        console.print(f"[dim]note: {n}[/]", highlight=False)
    total = float(spec.warmup or 0) + spec.duration
    uas = f" + {spec.baresip} baresip UA(s)" if spec.baresip else ""
    console.print(f"lab: [bold]{cfg.name}[/] — {spec.phones} phones{uas}, variant {spec.variant}, "
                  f"warm-up {spec.warmup:g} s + {spec.duration:g} s (≈ {total + 15:.0f} s)")
    t_start = time.time()

    def progress(msg: str) -> None:
        console.print(f"  [{time.time() - t_start:6.1f}s] {msg}", highlight=False)

    try:
        run_lab(spec, out_dir, progress=progress)
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted[/]: lab torn down; partial run in {out_dir}")
        raise typer.Exit(130)
    except LabError as exc:
        _fail([f"lab run failed: {exc}", f"logs in {out_dir}/logs"], 1)
    console.print(f"written: {out_dir}/ — compare with `simsip validate {config} {out_dir}`")


@lab_app.command()
def cleanup(run_id: Optional[str] = typer.Option(None, "--run-id", help="Only simsip-<run_id>-* namespaces.")) -> None:
    """Remove leftovers of a crashed lab run (processes inside simsip-* namespaces, the namespaces).
    Do not run it without --run-id while another lab run is live."""
    from .runner import cleanup_stale

    done = cleanup_stale(run_id)
    console.print(f"killed {len(done['killed_pids'])} process(es), deleted {len(done['deleted_namespaces'])} "
                  f"namespace(s): {', '.join(done['deleted_namespaces']) or '-'}")
