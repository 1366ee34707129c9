"""Figures that must not mislead: censored recovery, intervals within the support, detection times,
report building once per run and linear in the events (issue 14, "Wrong or misleading numbers").

Each check has a negative control: the naive computation the figure used to be must give the
wrong answer on the same data.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simsip.api import simulate
from simsip.metrics import ci95, km_quantile, km_survival, recovery_figures
from tests.conftest import scenario

# ------------------------------------------------------------------------------ Kaplan–Meier


def test_km_by_hand():
    # recovered at 1, 2, 3; two phones censored at 2.5 and 10 (not recovered by their run end)
    t = np.array([1.0, 2.0, np.nan, 3.0, np.nan])
    c = np.array([10.0, 10.0, 2.5, 10.0, 10.0])
    ev, s = km_survival(t, c)
    # S(1) = 4/5, S(2) = 4/5 * 3/4, S(3) = 0.6 * 1/2 (two at risk at 3: the phone at 3 and the one censored at 10)
    assert ev.tolist() == [1.0, 2.0, 3.0]
    assert s == pytest.approx([0.8, 0.6, 0.3])
    assert km_quantile(t, c, 0.5) == 3.0
    assert km_quantile(t, c, 0.95) == math.inf  # S never falls to 5 %: beyond the run end
    # negative control: the median of the recovered phones alone (what the figure was) is 2
    assert np.median(t[~np.isnan(t)]) != km_quantile(t, c, 0.5)


def test_km_without_censoring_is_the_sample_quantile():
    rng = np.random.default_rng(3)
    t = rng.exponential(30.0, 500)
    for q in (0.5, 0.95, 0.99):
        assert km_quantile(t, np.full(t.size, 1e9), q) == pytest.approx(np.quantile(t, q))
    f = recovery_figures(t, np.full(t.size, 1e9))
    assert f["phones_not_recovered"] == 0 and f["recovery_max"] == pytest.approx(t.max())


def test_km_recovers_an_exponential_median_under_censoring():
    # recovery ~ Exp(mean 100 s), the run ends 80 s after the fault: 55 % are censored. The true
    # median is 100 ln 2 = 69.3 s, inside the run: KM finds it; the recovered phones alone say ~37 s.
    rng = np.random.default_rng(11)
    x = rng.exponential(100.0, 20000)
    t = np.where(x <= 80.0, x, np.nan)
    med = km_quantile(t, np.full(x.size, 80.0), 0.5)
    assert med == pytest.approx(100 * math.log(2), rel=0.03)
    naive = np.median(t[~np.isnan(t)])
    assert abs(naive - 100 * math.log(2)) > 20  # negative control


# ------------------------------------------------------------------------------ censored runs

def _long_expiry(**over):
    # the case: expiry 1 h, 10 min run, master crash at 2 min: most phones never come back
    kw = dict(duration="10min", replications=2, fleets=[{"name": "f", "count": 200, "phone": {"expires": "3600s"}}],
              faults=[{"node": "master", "at": "2min", "repair_after": "2min"}])
    return scenario(**{**kw, **over})


def test_censored_recovery_is_visible_in_the_summary(tmp_path):
    res = simulate(_long_expiry(), out=tmp_path / "run")
    rec = res.recovery[res.recovery["cause"] == "fault"]
    never = int(rec["recovery_time"].isna().sum())
    assert never > len(rec) / 2  # most phones are censored
    figs = json.loads((tmp_path / "run" / "summary.json").read_text())["figures"]
    assert figs["phones_not_recovered"]["mean"] == pytest.approx(never / 2)
    assert figs["phones_not_recovered_share"]["mean"] == pytest.approx(never / len(rec), rel=0.01)
    for k in ("recovery_median", "recovery_p95", "recovery_max", "recovery_mean"):
        assert figs[k]["mean"] is None and figs[k]["not_reached"] == 2, (k, figs[k])
        assert figs[k]["not_recovered"] == pytest.approx(never / 2)
    # negative control: the old figure, the median of the recovered phones only, is a finite number
    done = rec["recovery_time"].dropna().to_numpy()
    assert done.size and math.isfinite(float(np.median(done)))


def test_censored_recovery_in_the_report_and_cli(tmp_path):
    from typer.testing import CliRunner

    from simsip.cli import app

    cfg = tmp_path / "s.yaml"
    cfg.write_text(
        "name: long\nduration: 10min\nreplications: 1\nfleets:\n  - name: desk\n    count: 200\n"
        "    profile: generic-udp\n    phone: {expires: 3600s}\nregistrar: {profile: kamailio, data: none}\n"
        "ha: {profile: keepalived}\nfaults:\n  - {kind: node_crash, node: master, at: 2min, repair_after: 2min}\n"
    )
    r = CliRunner().invoke(app, ["run", str(cfg), "-o", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    assert "> run end" in r.output and "phones_not_recovered" in r.output
    assert "still unreachable at the end" in r.output  # the warning
    page = (tmp_path / "run" / "report.html").read_text()
    assert 'class="banner"' in page and "still unreachable at the end of the run" in page
    assert "not recovered by the run end" in page  # the recovery curve says where it stops


def test_no_banner_when_every_phone_recovers(tmp_path):
    res = simulate(scenario(faults=[{"node": "master", "at": "60s"}], output={"report": True}), out=tmp_path / "r")
    assert res.summary["figures"]["phones_not_recovered"]["mean"] == 0
    assert math.isfinite(res.summary["figures"]["recovery_median"]["mean"])
    assert 'class="banner"' not in (tmp_path / "r" / "report.html").read_text()


def test_verdict_sentence_opens_the_report():
    from simsip.report.run_page import verdict

    res = simulate(_long_expiry(replications=1))
    v = verdict(res)
    assert "crash" in v and "200" in v and "still unreachable at the end of the run" in v
    res2 = simulate(scenario(faults=[{"node": "master", "at": "60s"}]))
    v2 = verdict(res2)
    assert "median" in v2 and "still unreachable" not in v2


# ------------------------------------------------------------------------------ intervals

def test_intervals_respect_the_support():
    x = [0.1, 0.2, 13.0]  # a skewed non-negative figure over three replications
    plain = ci95(x)
    assert plain["ci_low"] < 0  # negative control: Student-t goes below zero
    ci = ci95(x, name="peak_register_rate")
    assert 0 < ci["ci_low"] <= ci["mean"] <= ci["ci_high"] and ci["method"] == "nonnegative"
    assert ci95([0.0, 0.0, 0.0], name="timeouts")[("ci_low")] == 0.0
    frac = ci95([0.01, 0.02, 0.9], name="min_reachable_fraction")
    assert 0 < frac["ci_low"] and frac["ci_high"] < 1
    assert ci95([0.01, 0.02, 0.9])["ci_low"] < 0  # negative control


def test_log_interval_covers_the_mean_of_skewed_data():
    # coverage of the log-transformed interval for exponential data, n = 10 (nominal 95 %)
    rng = np.random.default_rng(5)
    hits = 0
    for _ in range(2000):
        ci = ci95(list(rng.exponential(2.0, 10)), support="nonnegative")
        hits += ci["ci_low"] <= 2.0 <= ci["ci_high"]
    assert 0.90 <= hits / 2000 <= 0.975, hits / 2000


def test_summary_says_which_interval():
    res = simulate(scenario(replications=2, faults=[{"node": "master", "at": "60s"}]))
    s = res.summary
    assert "intervals" in s and s["figures"]["peak_register_rate"]["method"] == "nonnegative"
    for k, f in s["figures"].items():
        if f["method"] == "nonnegative" and f["ci_low"] is not None and math.isfinite(f["ci_low"]):
            assert f["ci_low"] >= 0, (k, f)


# ------------------------------------------------------------------------------ detection time

def test_heartbeat_detection_precedes_the_takeover():
    cfg = scenario(duration="200s", replications=3,
                   ha={"kind": "heartbeat", "nodes": [{"name": "a", "priority": 150}, {"name": "b", "priority": 100}],
                       "heartbeat": {"keepalive": "1s", "deadtime": "10s", "takeover_time": "500ms"}},
                   faults=[{"node": "a", "at": "60s"}])
    f = simulate(cfg).faults
    f = f[f["cause"] == "fault"]
    # the survivor declares the peer dead, then runs the resource scripts for takeover_time
    assert np.allclose(f["vip_move_time"] - f["detection_time"], 0.5, atol=0.05), f[["detection_time", "vip_move_time"]]
    assert ((f["detection_time"] > 9 - 1e-9) & (f["detection_time"] <= 10 + 1e-9)).all()


# ------------------------------------------------------------------------------ report building

def test_report_is_built_once_per_run(tmp_path, monkeypatch):
    import simsip.report as rep

    calls = []
    real = rep.write_report
    monkeypatch.setattr(rep, "write_report", lambda *a, **k: calls.append(1) or real(*a, **k))
    simulate(scenario(replications=3, output={"report": True}), out=tmp_path / "r")
    assert len(calls) == 1 and (tmp_path / "r" / "report.html").is_file()


def test_timeline_figures_do_not_grow_a_trace_per_event():
    from simsip.report.run_page import build_figures

    faults = [{"node": "master", "at": f"{20 + 20 * i}s", "repair_after": "5s"} for i in range(12)]
    res = simulate(scenario(duration="300s", faults=faults))
    figs = build_figures(res)
    assert len(res.vip) > 12
    # one trace per lane, not one per VIP span; one shape per event, added in one assignment
    assert len(figs["vip_owner"].data) <= 2 + 3 + 1
    assert len(figs["reachable"].layout.shapes) == len(res.faults) + int((res.vip["time"] > 0).sum())


# ------------------------------------------------------------------------------ sweep figures

def _three_factor_points():
    import itertools

    import pandas as pd

    rows = []
    for expires, advert, data in itertools.product([60, 120, 300], [1, 3], ["none", "shared"]):
        loss = expires * 80.0 * (3.0 if data == "none" else 1.0) + advert
        rows.append({"point": len(rows), "phone.expires": expires, "vrrp.advert_int": advert, "registrar.data": data,
                     "unreachable_phone_seconds_mean": loss, "unreachable_phone_seconds_ci_low": loss * 0.9,
                     "unreachable_phone_seconds_ci_high": loss * 1.1, "steady_register_rate_mean": 1000.0 / expires})
    return pd.DataFrame(rows)


def test_sweep_figures_never_pool_over_a_design_factor():
    from simsip.report.sweep_page import SweepData, build_sweep_figures

    pts = _three_factor_points()
    data = SweepData("s", pts, factor_columns=["phone.expires", "vrrp.advert_int", "registrar.data"])
    figs = build_sweep_figures(data)
    values = set(np.round(pts["unreachable_phone_seconds_mean"], 6))
    heat = {k: f for k, f in figs.items() if k.startswith("heatmap") and not k.startswith("heatmap_load")}
    assert len(heat) == 2  # one per level of the data mode
    for k, f in heat.items():
        z = np.asarray(f.data[0].z, dtype=float)
        assert set(np.round(z[np.isfinite(z)], 6)) <= values, k  # every cell is a point of the design
        assert "registrar.data=" in f.layout.title.text, f.layout.title.text
    for k, f in figs.items():
        if k.startswith("ci_bands"):
            assert "registrar.data=" in f.layout.title.text or "fixed at" in f.layout.title.text, k
    # negative control: pooling over the data mode (what the page did) plots designs that do not exist
    pooled = pts.groupby(["vrrp.advert_int", "phone.expires"])["unreachable_phone_seconds_mean"].mean()
    assert not set(np.round(pooled, 6)) <= values


def test_many_levels_of_a_third_factor_are_fixed_and_said():
    import pandas as pd

    from simsip.report.sweep_page import design_slices

    pts = pd.DataFrame([{"a": a, "b": b, "c": c, "loss_mean": a + b + 10 * c}
                        for a in range(3) for b in range(3) for c in range(9)])
    (words, sub), = design_slices(pts, ["a", "b"], ["a", "b", "c"], "loss", max_facets=6)
    assert words == "fixed at c=0" and sub["c"].nunique() == 1 and len(sub) == 9


# ------------------------------------------------------------------------------ dropped settings

_BASE = ("name: t\nduration: 5min\nfleets:\n  - name: desk\n    count: 10\n    profile: generic-udp\n{phone}"
         "registrar: {{profile: kamailio}}\nha: {{profile: keepalived}}\n{variants}")


@pytest.mark.parametrize("value", ["[]", "false", "0", "x", "[expires: 60s]"])
def test_a_phone_section_that_is_not_a_mapping_is_an_error(value):
    from simsip.config.loader import ConfigError, load_config_text

    with pytest.raises(ConfigError) as e:
        load_config_text(_BASE.format(phone=f"    phone: {value}\n", variants=""), "s.yaml")
    assert "s.yaml:7" in str(e.value) and "fleets[0].phone" in str(e.value), str(e.value)


def test_a_phone_mapping_still_merges_over_the_profile():  # negative control of the test above
    from simsip.config.loader import load_config_text

    scn = load_config_text(_BASE.format(phone="    phone: {expires: 77s}\n", variants=""), "s.yaml")
    assert scn.fleets[0].phone.expires == 77.0 and scn.fleets[0].profile == "generic-udp"


def test_check_validates_variant_overrides_as_run_does(tmp_path):
    from typer.testing import CliRunner

    from simsip.cli import app

    bad = tmp_path / "bad.yaml"
    bad.write_text(_BASE.format(phone="", variants="variants:\n  - name: a\n    overrides:\n      dta: 1\n"))
    r = CliRunner().invoke(app, ["check", str(bad)])
    assert r.exit_code == 2 and "dta" in r.output and "bad.yaml:12" in r.output, r.output
    good = tmp_path / "good.yaml"
    good.write_text(_BASE.format(phone="", variants="variants:\n  - name: a\n    overrides:\n      duration: 6min\n"))
    assert CliRunner().invoke(app, ["check", str(good)]).exit_code == 0


def test_a_profile_named_in_a_variant_is_applied():
    import yaml

    from simsip.config.loader import ConfigError, expand_variants, load_config_text, models_dir

    text = _BASE.format(phone="", variants="variants:\n  - name: dmq\n    overrides:\n      registrar: {profile: kamailio-dmq}\n")
    scn = load_config_text(text, "s.yaml")
    (_, v), = expand_variants(scn)
    prof = yaml.safe_load((models_dir() / "registrars" / "kamailio-dmq.yaml").read_text())["registrar"]
    assert v.registrar.profile == "kamailio-dmq" and v.registrar.data == prof["data"] != scn.registrar.data
    with pytest.raises(ConfigError, match="unknown registrar profile 'asterisk'"):
        load_config_text(text.replace("kamailio-dmq", "asterisk"), "s.yaml")


# ------------------------------------------------------------------------------ plan SLOs and settings

@pytest.mark.parametrize("slo", ["recovery_p99 <= 30/s", "recovery_p99 <= nan", "steady_register_rate <= 30s",
                                 "unreachable_phone_seconds <= 10s", "recovery_p95 <= inf"])
def test_nonsense_slos_are_refused(tmp_path, slo):
    from simsip.config.loader import ConfigError
    from simsip.plan import load_plan

    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nbase: {duration: 10s, fleets: [{name: f, count: 1}]}\n"
                 "variables:\n  - {path: fleets.f.phone.expires, values: [60s]}\n"
                 f"slo:\n  - {slo}\n")
    with pytest.raises(ConfigError) as e:
        load_plan(p)
    assert f"{p}:" in str(e.value) and "slo" in str(e.value), str(e.value)


@pytest.mark.parametrize("slo", ["recovery_p99 <= 30s", "recovery_p99 <= 30", "steady_register_rate <= 8/s",
                                 "unreachable_phone_seconds <= 5000", "peak_load_vs_capacity <= 0.8"])
def test_sensible_slos_are_accepted(tmp_path, slo):  # negative control of the test above
    from simsip.plan import load_plan

    p = tmp_path / "ok.yaml"
    p.write_text("name: x\nbase: {duration: 10s, fleets: [{name: f, count: 1}]}\n"
                 "variables:\n  - {path: fleets.f.phone.expires, values: [60s]}\n"
                 f"slo:\n  - {slo}\n")
    load_plan(p)


def test_recommended_settings_paste_back_into_set():
    from simsip.plan import as_set
    from simsip.sweep import Factor
    from simsip.units import parse_duration

    f = Factor(path="fleets.desk.phone.expires", values=["60s", "120s"])
    s = as_set(f, 120.0)  # the resolved scenario holds float seconds
    assert s == "fleets.desk.phone.expires=120s"
    assert parse_duration(s.split("=", 1)[1]) == 120.0
    assert as_set(Factor(path="ha.vrrp.advert_int", range=["0.5s", "3s"], levels=3), 1.75) == "ha.vrrp.advert_int=1.75s"
    assert as_set(Factor(path="registrar.workers", values=[1, 2, 4]), 4) == "registrar.workers=4"
    assert as_set(Factor(path="registrar.data", values=["none", "shared"]), "shared") == "registrar.data=shared"
    # and the string really is accepted by --set
    from simsip.config.loader import load_config

    from tests.conftest import EXAMPLES

    cfg = load_config(EXAMPLES / "quickstart.yaml", [s])
    assert cfg.fleets[0].phone.expires == 120.0


# ------------------------------------------------------------------------------ trace import

def test_a_wrong_vip_is_warned_about():
    from simsip.trace import measure_trace
    from tests.conftest import EXAMPLES

    wrong = measure_trace(EXAMPLES / "lab" / "udp-none", vip="10.1.2.3")
    assert wrong.metrics.unreachable_phone_seconds == 0
    assert any("10.1.2.3" in w and "--vip" in w for w in wrong.metrics.warnings), wrong.metrics.warnings
    right = measure_trace(EXAMPLES / "lab" / "udp-none", vip="10.99.0.10")  # negative control
    assert right.metrics.unreachable_phone_seconds > 0 and not right.metrics.warnings


def test_trace_cli_prints_the_warning():
    from typer.testing import CliRunner

    from simsip.cli import app
    from tests.conftest import EXAMPLES

    r = CliRunner().invoke(app, ["trace", "import", str(EXAMPLES / "lab" / "udp-none"), "--vip", "10.1.2.3"])
    assert r.exit_code == 0 and "warning" in r.output and "check --vip" in r.output, r.output


def test_a_failed_run_says_truthfully_what_it_wrote(tmp_path):
    from simsip.cli.run import _what_was_written

    assert _what_was_written(tmp_path / "nothing") == "nothing was written"
    d = tmp_path / "r"
    d.mkdir()
    (d / "summary.json").write_text('{"replications_done": 0, "status": "error"}')
    assert _what_was_written(d).startswith("no replication finished")
    (d / "summary.json").write_text('{"replications_done": 2, "status": "error"}')
    assert "partial results (2 finished" in _what_was_written(d)


def test_many_fleets_share_one_node_in_the_topology():
    from simsip.report.scenario import MAX_FLEETS_DRAWN, topology_figure

    fleets = [{"name": f"f{i}", "count": 2, "phone": {"expires": "60s"}} for i in range(40)]
    fig = topology_figure(scenario(fleets=fleets))
    fleet_trace = next(t for t in fig.data if t.name == "phone fleets")
    assert len(fleet_trace.x) == MAX_FLEETS_DRAWN + 1
    assert "28 more fleets" in fleet_trace.text[-1] and "56 phones" in fleet_trace.text[-1]
    assert fig.layout.height <= 260 + 120 * (MAX_FLEETS_DRAWN + 1)
    # negative control: a few fleets are all drawn
    few = topology_figure(scenario(fleets=fleets[:3]))
    assert len(next(t for t in few.data if t.name == "phone fleets").x) == 3


def test_sweep_page_shows_points_beyond_the_run_end():
    from simsip.report.sweep_page import SweepData, build_sweep_figures, render_sweep_report

    pts = _three_factor_points()
    pts["recovery_p95_mean"] = np.where(pts["phone.expires"] == 300, np.inf, 50.0)
    pts["phones_not_recovered_mean"] = np.where(pts["phone.expires"] == 300, 120.0, 0.0)
    data = SweepData("s", pts, factor_columns=["phone.expires", "vrrp.advert_int", "registrar.data"])
    page = render_sweep_report(data)
    assert 'class="banner"' in page and "phones_not_recovered" in page
    from simsip.report.sweep_page import heatmap_figure

    f = heatmap_figure(pts[pts["registrar.data"] == "none"], "phone.expires", "vrrp.advert_int", "recovery_p95")
    assert any("> run end" in row for row in f.data[0].text)
    assert build_sweep_figures(data)  # renders with inf values
    # negative control: no banner when every phone recovered
    pts["phones_not_recovered_mean"] = 0.0
    assert 'class="banner"' not in render_sweep_report(SweepData("s", pts, factor_columns=list(pts.columns[1:4])))
