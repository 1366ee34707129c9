"""A simsip scenario in the real lab: the Python twins of ``simsip lab install|check|run|cleanup``.

The real lab is the simulator's ground truth: the same scenario file that ``simsip run``
simulates is mapped onto the lab (:func:`simsip.lab.bridge.spec_from_scenario`), run in network
namespaces (:func:`simsip.lab.runner.run_lab`), and recorded as a run directory that
``simsip validate`` compares with the model. A lab run happens in two steps, so a caller can show
what will happen before minutes of lab time are spent::

    >>> from simsip import lab
    >>> prep = lab.prepare_run("examples/lab/udp-none/config.yaml", ["duration=30s"])
    >>> prep.missing          # what this machine lacks (root, binaries, Kamailio modules); [] = ready
    >>> prep.notes            # scenario items the lab realises its own way
    >>> lab.run_scenario(prep, "runs/lab-udp-none")   # capture.pcapng, prober.csv, meta.json, ...

:func:`install_packages` runs ``lab/install.sh`` (Debian packages; root), and
:func:`~simsip.lab.check.check_requirements` / :func:`~simsip.lab.runner.cleanup_stale` check the
machine and remove what a crashed run left behind.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from .spec import LabSpec

if TYPE_CHECKING:  # pragma: no cover - the schema loads pydantic; imported where it is used
    from simsip.config.schema import Scenario

#: the installer of the lab's Debian packages (ships with the source tree, not the wheel)
INSTALL_SH = Path(__file__).resolve().parents[2] / "lab" / "install.sh"


def install_packages() -> int:
    """Run ``lab/install.sh`` (root) and return its exit status; raises ``FileNotFoundError`` when
    the script is not there (it ships with the source tree, not the wheel)."""
    if not INSTALL_SH.is_file():
        raise FileNotFoundError(f"{INSTALL_SH} not found (install.sh ships with the source tree, not the wheel)")
    return subprocess.run(["bash", str(INSTALL_SH)]).returncode


@dataclass
class PreparedLabRun:
    """A scenario checked for the lab: its :class:`LabSpec`, the mapping notes and what this machine
    lacks to run it (``missing``; empty when the lab can run here)."""

    config: Scenario
    spec: LabSpec
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def expected_seconds(self) -> float:
        """Warm-up + duration + about 15 s of set-up and teardown."""
        return float(self.spec.warmup or 0) + self.spec.duration + 15


def prepare_run(config: Scenario | str | os.PathLike, overrides: Sequence[str] = ()) -> PreparedLabRun:
    """Load ``config`` (a file, with ``--set`` style ``overrides``; or a ``Scenario``), map it onto the
    lab and check the machine.

    Raises :class:`~simsip.config.ConfigError` for a bad scenario file and
    :class:`~simsip.lab.bridge.LabUnsupported` (listing every problem) for a scenario the lab
    cannot realise. Missing requirements are not an error here: they are in ``missing``.
    """
    from simsip.config.loader import load_config
    from simsip.config.schema import Scenario

    from .bridge import mapping_notes, spec_from_scenario
    from .check import check_requirements

    if isinstance(config, Scenario):
        if overrides:
            raise ValueError("overrides apply to a scenario file; write them into the Scenario instead")
        cfg = config
    else:
        cfg = load_config(config, list(overrides))
    spec = spec_from_scenario(cfg)
    missing = check_requirements(spec.variant, baresip=spec.baresip > 0)
    return PreparedLabRun(cfg, spec, mapping_notes(cfg), missing)


def run_scenario(config: PreparedLabRun | Scenario | str | os.PathLike, out: str | os.PathLike, *,
                 overrides: Sequence[str] = (), progress: Callable[[str], None] | None = None) -> Path:
    """Run a scenario in the real lab and record it in ``out`` (capture.pcapng, prober.csv,
    faults.json, meta.json, logs/ and config.resolved.yaml); returns ``out``.

    ``config``: a :class:`PreparedLabRun` or anything :func:`prepare_run` takes. Raises
    :class:`~simsip.lab.topology.LabError` when the machine lacks requirements or the run fails
    (``KeyboardInterrupt`` after tearing the lab down).
    """
    from simsip.config.loader import resolved_yaml

    from .runner import run_lab
    from .topology import LabError

    prep = config if isinstance(config, PreparedLabRun) else prepare_run(config, overrides)
    if prep.missing:
        raise LabError("lab requirements missing:\n  " + "\n  ".join(prep.missing))
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.resolved.yaml").write_text(resolved_yaml(prep.config))
    return run_lab(prep.spec, out_dir, progress=progress)


__all__ = ["INSTALL_SH", "PreparedLabRun", "install_packages", "prepare_run", "run_scenario"]
