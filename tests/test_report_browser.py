"""The HTML report as a reviewer sees it: rendered in a real (headless) Chromium.

A report is only useful if every figure actually draws in a browser, offline. This test simulates a
small failover, writes the report, rebuilds it from the run directory (``simsip report RUN_DIR``),
opens it in headless Chromium (Debian package ``chromium``) and checks, from the rendered DOM, that
there were no JavaScript errors and that every plotly figure has its SVG and a non-empty plot
area. It saves a screenshot into the test's output directory (and ``$SIMSIP_ARTIFACTS`` if set).
The sweep and comparison pages get the same check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from simsip.report import find_chromium

from tests.conftest import scenario

CHROMIUM = find_chromium()


@pytest.fixture(autouse=True)
def _chromium_required():
    """Skipped without headless Chromium — failed instead under CI=true."""
    if CHROMIUM is None:
        from tests.conftest import missing_requirement

        missing_requirement("headless Chromium not installed (Debian: apt-get install -y --no-install-recommends chromium)")

# injected first into a copy of the page: collect JS errors and console.error calls
_PROBE_HEAD = """<script>
window.__simsipErrors = [];
window.addEventListener('error', function (e) { window.__simsipErrors.push(String(e.message || e)); });
window.addEventListener('unhandledrejection', function (e) { window.__simsipErrors.push('unhandled: ' + e.reason); });
(function () { var ce = console.error; console.error = function () {
  window.__simsipErrors.push(Array.prototype.join.call(arguments, ' ')); ce.apply(console, arguments); }; })();
</script>"""

# injected last: once the figures settle, write what every plotly div drew into the DOM
_PROBE_TAIL = """<script>
setTimeout(function () {
  var out = [];
  document.querySelectorAll('div.plotly-graph-div').forEach(function (gd) {
    var svg = gd.querySelector('svg.main-svg');
    var marks = gd.querySelectorAll('.scatterlayer .trace path, .scatterlayer .trace .point, .heatmaplayer image, '
                                     + '.barlayer .point, .imagelayer image, .trace path.js-line').length;
    var area = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    out.push({id: gd.id, svg: !!svg, traces: (gd.data || []).length, marks: marks,
              width: Math.round(area.width), height: Math.round(area.height)});
  });
  var pre = document.createElement('pre'); pre.id = 'simsip-render-check';
  pre.textContent = 'CHECK:' + JSON.stringify({figures: out, errors: window.__simsipErrors}) + ':END';
  document.body.appendChild(pre);
}, 1500);
</script>"""

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


def _chromium(args: list[str], profile: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from simsip.api import simulate

    cfg = scenario(
        name="browser-check", description="report rendering check: 150 phones, master crash and repair",
        duration="4min", replications=2,
        fleets=[{"name": "desk", "count": 150, "phone": {"expires": "60s", "refresh": {"mode": "percent", "percent": 90}}}],
        faults=[{"kind": "node_crash", "node": "master", "at": "60s", "repair_after": "90s"}],
        output={"resolution": "1s", "report": True},
    )
    out = tmp_path_factory.mktemp("browser-run")
    simulate(cfg, out=out)
    return out


def _check_renders(text: str, tmp_path: Path, min_figures: int) -> None:
    """Every plotly figure of the page draws in headless Chromium, without JavaScript errors."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?https?:", text), "the report must load nothing from the network"
    n_divs = len(re.findall(r'class="plotly-graph-div"', text))
    assert n_divs >= min_figures, f"expected at least {min_figures} figures, found {n_divs}"

    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("<head>", "<head>" + _PROBE_HEAD, 1).replace("</body>", _PROBE_TAIL + "</body>", 1),
                     encoding="utf-8")
    proc = _chromium(["--window-size=1280,1000", "--virtual-time-budget=15000", "--dump-dom", probe.as_uri()],
                     tmp_path / "profile-dom")
    m = re.search(r'<pre id="simsip-render-check">CHECK:(.*?):END</pre>', proc.stdout, re.S)
    assert m, f"the page did not finish rendering; chromium stderr:\n{proc.stderr[-2000:]}"
    import html as _html

    check = json.loads(_html.unescape(m.group(1)))
    assert not check["errors"], f"JavaScript errors: {check['errors']}"
    # console errors Chromium logs to stderr ("Uncaught ..." from the page's scripts)
    uncaught = [ln for ln in proc.stderr.splitlines() if "Uncaught" in ln and "CONSOLE" in ln]
    assert not uncaught, "\n".join(uncaught)
    figs = check["figures"]
    assert len(figs) == n_divs
    for f in figs:
        assert f["svg"], f"{f['id']}: no .main-svg, the figure did not draw"
        assert f["traces"] > 0 and f["marks"] > 0, f"{f['id']}: empty plot area ({f})"
        assert f["width"] > 300 and f["height"] > 200, f"{f['id']}: plot area too small ({f})"


def test_report_renders_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    from simsip.report import write_report_dir

    page = write_report_dir(run_dir, tmp_path / "report.html")  # the `simsip report RUN_DIR` path
    text = page.read_text(encoding="utf-8")
    _check_renders(text, tmp_path, 8)

    shot = tmp_path / "report.png"
    proc = _chromium(["--hide-scrollbars", "--window-size=1280,5200", "--virtual-time-budget=15000",
                      f"--screenshot={shot}", page.as_uri()], tmp_path / "profile-shot")
    assert shot.is_file() and shot.stat().st_size > 50_000, f"no screenshot; chromium stderr:\n{proc.stderr[-2000:]}"
    top = tmp_path / "report-top.png"
    _chromium(["--hide-scrollbars", "--window-size=1280,900", "--virtual-time-budget=15000", f"--screenshot={top}",
               page.as_uri()], tmp_path / "profile-top")
    artifacts = os.environ.get("SIMSIP_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        for p in (shot, top, page):
            if p.is_file():
                shutil.copy2(p, Path(artifacts) / p.name)


def test_sweep_and_comparison_pages_render_in_chromium(run_dir: Path, tmp_path: Path) -> None:
    from simsip.api import simulate
    from simsip.compare import write_comparison
    from simsip.report import render_sweep_report
    from simsip.sweep import sweep
    from tests.test_report import SWEEP

    spec = tmp_path / "tiny.yaml"
    spec.write_text(SWEEP)
    res = sweep(spec, workers=1)
    _check_renders(render_sweep_report(res), tmp_path / "s", 5)
    res = simulate(scenario(duration="1min", faults=[{"kind": "node_crash", "node": "master", "at": "20s"}]))
    write_comparison({"a": res, "b": res}, tmp_path / "cmp")
    _check_renders((tmp_path / "cmp" / "comparison.html").read_text(encoding="utf-8"), tmp_path / "c", 1)


def test_static_export_png_and_svg(run_dir: Path, tmp_path: Path) -> None:
    from simsip.report import build_figures, export_static, load_run

    figs = build_figures(load_run(run_dir))
    small = {k: figs[k] for k in ("topology", "reachable")}
    pngs = export_static(small, tmp_path, fmt="png", scale=1)
    svgs = export_static(small, tmp_path, fmt="svg", engine="chromium")
    for p in pngs:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000
    for p in svgs:
        assert p.read_text(encoding="utf-8").lstrip().startswith("<svg")


def test_inference_page_renders_in_chromium(tmp_path: Path) -> None:
    """The page of ``simsip trace infer`` (synthetic capture with every kind of evidence): each
    distribution figure draws offline, without JavaScript errors."""
    from simsip.report import write_inference_report
    from simsip.trace import infer_scenario
    from tests.test_infer_report import BARE, YEA
    from tests.test_trace_infer import DURATION, OUTAGES, RegistrarSpec, fleet_frames, vrrp_pair, write

    frames = (fleet_frames(YEA, OUTAGES, DURATION)
              + fleet_frames(BARE, RegistrarSpec(windows=[(400.0, 500.0, 503, None)]), DURATION) + vrrp_pair(DURATION))
    inf = infer_scenario(write(tmp_path, "main", frames, "pcapng"))
    page = write_inference_report(inf, tmp_path / "inferred.html")
    _check_renders(page.read_text(encoding="utf-8"), tmp_path / "i", 8)
