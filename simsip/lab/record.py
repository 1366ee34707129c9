"""Record the shipped real-lab runs in ``examples/lab/<name>/`` (the simulator's validation data).

Each example directory holds a simsip scenario (``config.yaml``, with a ``lab:`` section and
``phases: even``). Recording one runs that scenario in the real lab (Kamailio + keepalived + SIPp
in network namespaces, see :mod:`simsip.lab.runner`) and keeps what validation needs, small and
xz-packed into ``run.tar.xz`` next to the config (:func:`simsip.io.unpacked_run` reads it back):

* ``capture.pcapng`` — the bridge capture from ``keep_before`` seconds before scenario t=0 to the
  end (the warm-up, during which the phones first register, is cut off: it is most of the bytes
  and validation reads only the scenario window plus a pre-fault stretch);
* ``prober.csv`` — the OPTIONS prober's log, cut the same way;
* ``faults.json``, ``meta.json`` — fault times (epoch and scenario time), t0, the initial master,
  VRRP transitions, tool versions; ``meta.json`` records the cut (``capture_cut_epoch``).

Logs, generated configs and PIDs stay in a temporary directory that is deleted. Runs are recorded
one after another (never two labs at once)::

    python -m simsip.lab.record              # all of examples/lab/*
    python -m simsip.lab.record udp-none dmq # some
    python -m simsip.lab.record --recut X    # cut an older recording at the scenario end

The capture and the prober log are cut to [t0 − ``keep_before``, t0 + duration], and keepalived
transitions after the end go to ``teardown_transitions``: the teardown (keepalived stopped, the
backup taking the VIP) is not part of the run.
"""
from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from simsip.config.loader import load_config, resolved_yaml
from simsip.io import RUN_ARCHIVE

from .bridge import spec_from_scenario
from .runner import leftovers, run_lab

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples" / "lab"
KEEP_BEFORE = 3.0  # seconds of capture kept before scenario t=0 (pre-fault calibration stretch)


def trim_capture(src: Path, dst: Path, since_epoch: float, until_epoch: float | None = None) -> None:
    """Copy the packets of ``src`` at or after ``since_epoch`` (and, if given, at or before
    ``until_epoch``) into ``dst`` (pcapng, via tshark)."""
    flt = f"frame.time_epoch >= {since_epoch:.6f}"
    if until_epoch is not None:
        flt += f" && frame.time_epoch <= {until_epoch:.6f}"
    r = subprocess.run(["tshark", "-r", str(src), "-Y", flt, "-F", "pcapng", "-w", str(dst)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"tshark could not cut {src}: {r.stderr.strip()}")


def trim_prober(src: Path, dst: Path, since_epoch: float, until_epoch: float | None = None) -> None:
    with open(src, newline="") as fi, open(dst, "w", newline="") as fo:
        rd, wr = csv.reader(fi), csv.writer(fo)
        wr.writerow(next(rd))
        for row in rd:
            if row and float(row[2]) >= since_epoch and (until_epoch is None or float(row[2]) <= until_epoch):
                wr.writerow(row)


def split_teardown(meta: dict, end: float) -> None:
    """Move the keepalived transitions after the scenario's end (the teardown's) from
    ``transitions`` to ``teardown_transitions``, in place."""
    tr = meta.get("transitions") or {}
    meta["teardown_transitions"] = {n: [t for t in rows if float(t[0]) > end] for n, rows in tr.items()}
    meta["transitions"] = {n: [t for t in rows if float(t[0]) <= end] for n, rows in tr.items()}


def scenario_end_epoch(meta: dict) -> float:
    """The end of the scenario (t0 + duration): the capture is cut there, so the teardown (keepalived
    stopped: the backup may take the VIP in the last second) is not recorded as part of the run."""
    return float(meta["t0_epoch"]) + float(meta["spec"]["duration"])


def pack_run(src: Path, archive: Path) -> Path:
    """The run files of ``src`` xz-packed into ``archive`` (flat, fixed order and metadata so that
    the same files give the same bytes), written atomically."""
    import io
    import tarfile

    from simsip.io import atomic_write

    def write(tmp: str) -> None:
        with tarfile.open(tmp, "w:xz", preset=9) as tar:
            for name in ("capture.pcapng", "prober.csv", "faults.json", "meta.json"):
                data = (src / name).read_bytes()
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))

    atomic_write(archive, write)
    return archive


def record(name: str, examples: Path = EXAMPLES_DIR, keep_before: float = KEEP_BEFORE,
           say: Callable[[str], None] = print) -> Path:
    """Run ``examples/<name>/config.yaml`` in the real lab and (re)write the run files next to it."""
    ex = Path(examples) / name
    cfg = load_config(ex / "config.yaml")
    spec = spec_from_scenario(cfg)
    with tempfile.TemporaryDirectory(prefix=f"simsip-record-{name}-") as tmp:
        out = Path(tmp) / "run"
        run_lab(spec, out, progress=lambda m: say(f"[{name}] {m}"))
        meta = json.loads((out / "meta.json").read_text())
        if meta.get("status") != "ok":
            raise RuntimeError(f"lab run {name} ended with status {meta.get('status')}")
        cut = float(meta["t0_epoch"]) - keep_before
        end = scenario_end_epoch(meta)
        keep = Path(tmp) / "keep"
        keep.mkdir()
        trim_capture(out / "capture.pcapng", keep / "capture.pcapng", cut, end)
        trim_prober(out / "prober.csv", keep / "prober.csv", cut, end)
        shutil.copyfile(out / "faults.json", keep / "faults.json")
        meta["capture_cut_epoch"] = cut
        meta["capture_end_epoch"] = end
        split_teardown(meta, end)
        meta["scenario"] = cfg.name
        for k in ("pids",):
            meta.pop(k, None)
        (keep / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        pack_run(keep, ex / RUN_ARCHIVE)
        for stale in ("capture.pcapng", "prober.csv", "faults.json", "meta.json", "config.resolved.yaml"):
            (ex / stale).unlink(missing_ok=True)  # an older, unpacked recording
        _ = resolved_yaml  # the resolved config is reproducible from config.yaml; not stored
    left = leftovers(meta.get("run_id"))
    if any(left.values()):
        raise RuntimeError(f"lab run {name} left {left}")
    size = sum(p.stat().st_size for p in ex.iterdir() if p.is_file())
    say(f"[{name}] recorded in {ex} ({size / 1e6:.2f} MB)")
    return ex


def recut(name: str, examples: Path = EXAMPLES_DIR, say: Callable[[str], None] = print) -> Path:
    """Cut an already recorded ``examples/<name>/run.tar.xz`` at the scenario's end (what
    :func:`record` now does when it records), in place; a run already cut there is left as is."""
    import tarfile

    ex = Path(examples) / name
    with tempfile.TemporaryDirectory(prefix=f"simsip-recut-{name}-") as tmp:
        src, keep = Path(tmp) / "src", Path(tmp) / "keep"
        src.mkdir(), keep.mkdir()
        with tarfile.open(ex / RUN_ARCHIVE) as tar:
            tar.extractall(src, filter="data")
        meta = json.loads((src / "meta.json").read_text())
        if "capture_end_epoch" in meta:
            say(f"[{name}] already cut at the scenario end")
            return ex
        end = scenario_end_epoch(meta)
        trim_capture(src / "capture.pcapng", keep / "capture.pcapng", float(meta["capture_cut_epoch"]), end)
        trim_prober(src / "prober.csv", keep / "prober.csv", float(meta["capture_cut_epoch"]), end)
        shutil.copyfile(src / "faults.json", keep / "faults.json")
        meta["capture_end_epoch"] = end
        split_teardown(meta, end)
        (keep / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        pack_run(keep, ex / RUN_ARCHIVE)
    say(f"[{name}] cut at the scenario end ({(ex / RUN_ARCHIVE).stat().st_size / 1e6:.2f} MB)")
    return ex


def main(argv: list[str]) -> int:
    if argv[:1] == ["--recut"]:
        for n in argv[1:] or sorted(p.parent.name for p in EXAMPLES_DIR.glob(f"*/{RUN_ARCHIVE}")):
            recut(n)
        return 0
    names = argv or sorted(p.parent.name for p in EXAMPLES_DIR.glob("*/config.yaml"))
    for n in names:
        record(n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
