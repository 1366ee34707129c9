"""Figures for slides: each figure of a page as PNG or SVG, drawn by a local headless browser.

plotly's own exporter (kaleido) drives a local Chrome/Chromium; without kaleido, the figures are
drawn by plotly.js inside one headless Chromium page (Debian: ``apt-get install chromium``).
Neither needs the network.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Mapping

import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from .plan_page import PlanData, build_plan_figures, is_plan_dir
from .run_page import build_figures, load_run
from .sweep_page import SweepData, build_sweep_figures, is_sweep_dir
from .toolkit import ReportError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """A headless-capable Chromium/Chrome on PATH (Debian: ``apt-get install chromium``), or None."""
    env = os.environ.get("SIMSIP_CHROMIUM")
    if env and Path(env).is_file():
        return env
    for name in CHROMIUM_NAMES:
        p = shutil.which(name)
        if p:
            return p
    return None


def chromium_args(user_data_dir: str | os.PathLike) -> list[str]:
    """Flags for a quiet, offline, throw-away headless Chromium (no network, no first-run UI)."""
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-dev-shm-usage", f"--user-data-dir={user_data_dir}"]


def is_run_dir(path: str | os.PathLike) -> bool:
    d = Path(path)
    return (d / "summary.json").is_file() or (d / "timeseries.csv").is_file() or (d / "timeseries.parquet").is_file()


def figures_of(source: Any) -> dict[str, go.Figure]:
    """The figures of a page: of a run/sweep/plan directory, Results, SweepData, PlanData, or a mapping."""
    if isinstance(source, (str, os.PathLike)):
        d = Path(source)
        if is_plan_dir(d):
            return build_plan_figures(PlanData.from_dir(d))
        if is_sweep_dir(d) and not is_run_dir(d):
            return build_sweep_figures(SweepData.from_dir(d))
        return build_figures(load_run(d))
    if isinstance(source, SweepData):
        return build_sweep_figures(source)
    if isinstance(source, PlanData):
        return build_plan_figures(source)
    if isinstance(source, Mapping):
        return dict(source)
    return build_figures(source)


def _size(fig: go.Figure) -> tuple[int, int]:
    return int(fig.layout.width or 1100), int(fig.layout.height or 500)


def _export_kaleido(figs: Mapping[str, go.Figure], out: Path, fmt: str, scale: float) -> list[Path]:
    paths = [out / f"{name}.{fmt}" for name in figs]
    sizes = [_size(f) for f in figs.values()]
    if hasattr(pio, "write_images"):  # plotly >= 6.1: one browser session for all figures
        pio.write_images(list(figs.values()), paths, format=fmt, width=[w for w, _ in sizes],
                         height=[h for _, h in sizes], scale=scale)
    else:
        for fig, p, (w, h) in zip(figs.values(), paths, sizes):
            pio.write_image(fig, p, format=fmt, width=w, height=h, scale=scale)
    return paths


def _export_chromium(figs: Mapping[str, go.Figure], out: Path, fmt: str, scale: float, timeout: float = 120.0) -> list[Path]:
    """Render the figures in one headless Chromium page and let plotly.js produce each PNG/SVG."""
    from urllib.parse import unquote

    exe = find_chromium()
    if exe is None:
        raise ReportError("static export needs kaleido (pip install kaleido) or Chromium (apt-get install chromium)")
    names = list(figs)
    specs = ",\n".join(
        f'{{"name": {json.dumps(n)}, "w": {_size(figs[n])[0]}, "h": {_size(figs[n])[1]}, "fig": {pio.to_json(figs[n])}}}'
        for n in names)
    page_text = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><script>{get_plotlyjs()}</script></head><body>
<div id="work"></div><script>
var specs = [{specs}];
function one(s) {{
  var div = document.createElement('div'); div.style.width = s.w + 'px'; div.style.height = s.h + 'px';
  document.getElementById('work').appendChild(div);
  var pre = document.createElement('pre'); document.body.appendChild(pre);
  return Plotly.newPlot(div, s.fig.data, s.fig.layout, {{staticPlot: true}})
    .then(function (gd) {{ return Plotly.toImage(gd, {{format: '{fmt}', width: s.w, height: s.h, scale: {scale}}}); }})
    .then(function (url) {{ pre.textContent = 'FIG:' + s.name + ':DATA:' + url + ':END'; }})
    .catch(function (e) {{ pre.textContent = 'FIG:' + s.name + ':ERROR:' + e + ':END'; }});
}}
specs.reduce(function (p, s) {{ return p.then(function () {{ return one(s); }}); }}, Promise.resolve());
</script></body></html>"""
    with tempfile.TemporaryDirectory(prefix="simsip-export-") as tmp:
        page = Path(tmp) / "figures.html"
        page.write_text(page_text, encoding="utf-8")
        cmd = [exe, *chromium_args(Path(tmp) / "profile"), "--virtual-time-budget=60000", "--dump-dom", page.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    found = {m.group(1): (m.group(2), m.group(3)) for m in re.finditer(r"<pre>FIG:(.*?):(DATA|ERROR):(.*?):END</pre>", proc.stdout, re.S)}
    paths = []
    for n in names:
        kind, payload = found.get(n, ("ERROR", "no output (" + proc.stderr[-300:] + ")"))
        if kind != "DATA":
            raise ReportError(f"Chromium could not export {n}: {html.unescape(payload)}")
        head, _, body = html.unescape(payload).partition(",")
        p = out / f"{n}.{fmt}"
        if head.endswith(";base64"):
            p.write_bytes(base64.b64decode(body))
        else:
            p.write_text(unquote(body), encoding="utf-8")
        paths.append(p)
    return paths


def export_static(results_or_dir: Any, out_dir: str | os.PathLike, fmt: str = "png", scale: float = 2.0,
                  engine: str = "auto") -> list[Path]:
    """Write each figure as ``OUT_DIR/<name>.<fmt>`` (png or svg) for slides; returns the paths.

    ``results_or_dir``: ``Results``, :class:`RunData`, :class:`SweepData`, :class:`PlanData`, a
    run/sweep/plan directory, or a mapping of figures. ``engine``: ``kaleido`` (plotly's exporter,
    which drives a local Chrome/Chromium), ``chromium`` (plotly.js's own export inside headless
    Chromium), or ``auto`` (kaleido, then Chromium).
    """
    if fmt not in ("png", "svg"):
        raise ValueError(f"fmt must be 'png' or 'svg', got {fmt!r}")
    if engine not in ("auto", "kaleido", "chromium"):
        raise ValueError(f"engine must be auto, kaleido or chromium, got {engine!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    figs = figures_of(results_or_dir)
    if fmt == "svg":
        scale = 1.0  # vector: the viewBox is the figure size
    if engine in ("auto", "kaleido"):
        try:
            return _export_kaleido(figs, out, fmt, scale)
        except Exception as exc:  # kaleido missing, or it found no browser
            if engine == "kaleido":
                raise ReportError(f"kaleido export failed: {exc}") from exc
    return _export_chromium(figs, out, fmt, scale)
