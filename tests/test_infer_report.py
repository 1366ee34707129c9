"""The inference page (``simsip trace infer --out X.yaml`` also writes X.html): the distributions
behind every inferred value, each with its n and 95 % interval, "not observed" where the capture has
no evidence, self-contained like the run page.

The captures are the synthetic ones of ``test_trace_infer`` (known ground truth): a Yealink fleet
refreshing at 80 % ± 2 % with CRLF keep-alives and fixed waits after timeouts and errors, a baresip
fleet at 90 % with digest auth and backoff, a VRRP pair whose master goes silent.
"""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from simsip.cli import app
from simsip.report import inference_figures, render_inference_report, write_inference_report
from simsip.report.infer_page import inference_panels
from simsip.trace import infer_scenario
from test_trace_infer import DURATION, OUTAGES, FleetSpec, RegistrarSpec, fleet_frames, vrrp_pair, write

YEA = FleetSpec()
BARE = FleetSpec(ua="baresip v3.10.1 (x86_64/Linux)", phones=12, subnet="10.0.2.", expires=60, granted=60,
                 fraction=0.9, jitter=0.0, backoff=4.0, auth=True, keepalive=None, seed=2, wait_error={})


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("infer-report")
    frames = (fleet_frames(YEA, OUTAGES, DURATION)
              + fleet_frames(BARE, RegistrarSpec(windows=[(400.0, 500.0, 503, None)]), DURATION) + vrrp_pair(DURATION))
    return write(tmp, "main", frames, "pcapng")


@pytest.fixture(scope="module")
def inferred(capture):
    return infer_scenario(capture)


@pytest.fixture(scope="module")
def text(inferred):
    return render_inference_report(inferred, "main")


def _figure_json(text: str, name: str) -> dict:
    """The plotly figure ``fig-<name>`` of a page, as its JSON (data and layout)."""
    m = re.search(r'Plotly\.newPlot\(\s*"fig-' + re.escape(name) + r'",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{"displaylogo"',
                  text, re.S)
    assert m, f"figure fig-{name} not on the page"
    return {"data": json.loads(m.group(1)), "layout": json.loads(m.group(2))}


def _titles(fig: dict) -> list[str]:
    return [a["text"] for a in fig["layout"].get("annotations", [])]


def test_refresh_point_per_phone_is_drawn_per_fleet_with_n_and_ci(inferred, text):
    yea = next(f for f in inferred.fleets if f.user_agent.startswith("Yealink"))
    bare = next(f for f in inferred.fleets if f.user_agent.startswith("baresip"))
    # one observation per phone, close to the configured point (jitter ±2 % averages out per phone)
    assert yea.refresh_per_phone.n == YEA.phones and bare.refresh_per_phone.n == BARE.phones
    assert abs(yea.refresh_per_phone.value - YEA.fraction) < 0.01
    assert abs(bare.refresh_per_phone.value - BARE.fraction) < 0.002
    fig = _figure_json(text, "refresh")
    hist = [t for t in fig["data"] if t["type"] == "histogram"]
    assert len(hist) == 2  # one row per fleet
    xs = sorted(x for t in hist for x in t["x"])
    assert len(xs) == YEA.phones + BARE.phones  # the samples are the phones, not the refreshes
    assert all(0.77 < x < 0.83 or abs(x - 0.9) < 0.005 for x in xs)
    titles = _titles(fig)
    assert any(f"n={YEA.phones}," in t and "95 % CI" in t and "yealink" in t for t in titles), titles
    assert any(f"n={BARE.phones}," in t and "baresip" in t for t in titles), titles
    # the median line sits at the estimate
    lines = [s for s in fig["layout"]["shapes"] if s["type"] == "line"]
    assert any(abs(s["x0"] - yea.refresh_per_phone.value) < 1e-9 for s in lines)


def test_every_distribution_figure_is_there_with_its_numbers(inferred, text):
    figs = inference_figures(inferred)
    assert set(figs) == {"refresh", "latency", "retry", "backoff", "keepalive", "vrrp_advert", "vrrp_priority",
                         "vrrp_timeline",
                         "failover"}
    for name in figs:
        assert f'id="fig-{name}"' in text
    lat = _figure_json(text, "latency")
    assert any("ms" in t and "95 % CI" in t for t in _titles(lat))
    retry = _titles(_figure_json(text, "retry"))
    assert any("after a timeout" in t and "n=" in t for t in retry)
    assert any("after 403" in t for t in retry) and any("after 503" in t for t in retry)
    # waits after a timeout: the configured 20 s is where the histogram's median line is
    yea = next(f for f in inferred.fleets if f.user_agent.startswith("Yealink"))
    assert abs(yea.timeout_wait.value - YEA.wait_timeout) < 1.0
    backoff = _figure_json(text, "backoff")
    bare_line = next(t for t in backoff["data"] if "baresip" in t["name"])
    assert "backoff" in bare_line["name"] and bare_line["y"][1] > 1.5 * bare_line["y"][0]
    prio = _figure_json(text, "vrrp_priority")
    assert {t["name"] for t in prio["data"]} == {"priority 150", "priority 90"}
    assert "n=" in prio["layout"]["title"]["text"]
    fail = _figure_json(text, "failover")
    names = " ".join(t["name"] for t in fail["data"])
    assert "last advert" in names and "second GARP burst" in names and "n=" in names
    assert "Gratuitous ARP bursts: n=2, of 5 GARP(s) each" in text


def test_not_observed_panels_say_why(inferred, text):
    # baresip sends no keep-alive: its row is missing and said so under the figure
    assert 'id="missing-keepalive"' in text
    block = text.split('id="missing-keepalive"', 1)[1].split("</div>", 1)[0]
    assert "baresip" in block and "no CRLF or OPTIONS" in block
    # no phone lost reachability around a fault: the recovery panel is "not observed", no empty plot
    assert 'id="panel-recovery"' in text and 'id="fig-recovery"' not in text


def test_a_capture_without_sip_or_vrrp_gives_only_not_observed_panels(tmp_path):
    frames = vrrp_pair(30.0, crash=None)  # VRRP only: no fleet, no latency, no failover
    inf = infer_scenario(write(tmp_path, "vrrp-only", frames))
    panels = {p.name: p for p in inference_panels(inf)}
    assert not panels["refresh"].observed and not panels["latency"].observed and not panels["failover"].observed
    assert panels["vrrp_advert"].observed and panels["vrrp_priority"].observed
    text = render_inference_report(inf, "vrrp-only")
    for name in ("refresh", "latency", "retry", "keepalive", "failover"):
        assert f'id="panel-{name}"' in text and f'id="fig-{name}"' not in text, name
    assert "the backup" in text and "never advertised" in text  # one advertising node: the other is an assumption
    # negative control: the full capture has those figures
    assert panels["vrrp_advert"].figure is not None


def test_page_is_self_contained_and_escapes_capture_text(tmp_path):
    hostile = FleetSpec(ua='<script>alert("x")</script> & <img src=http://evil/x>', phones=5, keepalive=None)
    inf = infer_scenario(write(tmp_path, "hostile", fleet_frames(hostile, RegistrarSpec(), 400.0)))
    text = render_inference_report(inf, "hostile")
    assert "<script>alert" not in text and "<img src=http" not in text
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=[\"']?https?:", text)  # loads nothing from the network
    assert len(text) > 3_000_000 and "plotly" in text[:5000].lower()  # plotly.js embedded: works offline


def test_cli_writes_the_page_next_to_the_yaml(capture, tmp_path):
    out = tmp_path / "mine.yaml"
    r = CliRunner().invoke(app, ["trace", "infer", str(capture), "--out", str(out)])
    assert r.exit_code == 0, r.output
    page = tmp_path / "mine.html"
    assert page.is_file() and f"written: {page}" in r.output
    text = page.read_text(encoding="utf-8")
    assert "simsip trace infer: mine" in text and str(out) in text and 'id="fig-refresh"' in text
    # --report elsewhere, --no-report: none
    other = tmp_path / "pages" / "p.html"
    other.parent.mkdir()
    r = CliRunner().invoke(app, ["trace", "infer", str(capture), "--out", str(tmp_path / "b.yaml"), "--report", str(other)])
    assert r.exit_code == 0 and other.is_file() and not (tmp_path / "b.html").exists()
    r = CliRunner().invoke(app, ["trace", "infer", str(capture), "--out", str(tmp_path / "c.yaml"), "--no-report"])
    assert r.exit_code == 0 and not (tmp_path / "c.html").exists() and (tmp_path / "c.yaml").is_file()


@pytest.mark.parametrize("args, message", [
    (["--out", "{tmp}/x.yaml", "--report", "{tmp}/x.yaml"], "the same file as --out"),
    (["--out", "{tmp}/x.yaml", "--report", "{tmp}/nodir/x.html"], "does not exist"),
    (["--out", "{tmp}/x.yaml", "--report", "{tmp}"], "is a directory"),
    (["--report", "{tmp}/x.html", "--no-report"], "choose one"),
])
def test_cli_refuses_bad_report_paths(capture, tmp_path, args, message):
    argv = ["trace", "infer", str(capture)] + [a.replace("{tmp}", str(tmp_path)) for a in args]
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x.yaml").exists()  # refused before anything is written


def test_python_twin_writes_the_same_page(inferred, tmp_path):
    import simsip

    assert simsip.write_inference_report is write_inference_report
    page = simsip.write_inference_report(inferred, tmp_path / "twin.html", "main")
    assert page.read_text(encoding="utf-8") == render_inference_report(inferred, "main")


def test_priority_zero_release_is_drawn_with_the_priorities(tmp_path):
    from trace_builders import NODE_A, NODE_B, T0, ether, vrrp, vrrp_frames

    frames = (vrrp_frames(NODE_A, 0.0, 20.0, 1.0, priority=150) + [(T0 + 20.0, ether(vrrp(NODE_A, 2, 51, 0, 1.0)))]
              + vrrp_frames(NODE_B, 20.6, 40.0, 1.0, priority=100))
    inf = infer_scenario(write(tmp_path, "release", frames))
    fig = _figure_json(render_inference_report(inf, "release"), "vrrp_priority")
    bars = {t["name"]: dict(zip(t["x"], t["y"])) for t in fig["data"]}
    assert bars == {"priority 150": {NODE_A: 20}, "priority 100": {NODE_B: 20}, "priority 0": {NODE_A: 1}}
    assert "n=41 adverts" in fig["layout"]["title"]["text"]


@pytest.mark.parametrize("case", ["empty", "one-unanswered", "heartbeat", "calm"])
def test_degenerate_captures_give_a_page_not_a_traceback(case, tmp_path):
    from trace_builders import NODE_A, NODE_B, T0, ether, udp

    from test_trace_infer import sip_register

    frames = {
        "empty": [(T0, ether(udp("10.0.9.1", 1234, "10.0.9.2", 4321, b"\x00\x01 not sip")))],
        "one-unanswered": [(T0, ether(udp("10.0.1.1", 5060, "10.0.0.100", 5060,
                                          sip_register("a", "10.0.1.1", "c", 1, "z9hG4bK-1", 60, "X/1"))))],
        "heartbeat": [(T0 + k, ether(udp(NODE_A, 694, NODE_B, 694, b"t=status"))) for k in range(5)],
        "calm": fleet_frames(FleetSpec(keepalive=None, phones=5), RegistrarSpec(), 400.0),
    }[case]
    inf = infer_scenario(write(tmp_path, case, frames))
    text = render_inference_report(inf, case)
    panels = inference_panels(inf)
    assert all(p.observed or f'id="panel-{p.name}"' in text for p in panels)  # every section: a figure or why not
    if case == "heartbeat":
        assert "heartbeat traffic seen instead" in text
