"""``simsip trace infer`` against a real-lab capture with known ground truth, and baresip against its profile.

``tests/data/infer-truth`` is one run of the real lab (``simsip lab run
tests/data/infer-truth/config.yaml``, 79 s on the project's machine; the capture is stored
xz-compressed, 39 KB): 20 SIPp phones refreshing at 70 % of a 20 s expiry, giving up after 5
retransmissions (timeout 15.5 s) and retrying 6 s after a failure, next to 3 real baresip 1.0.0 UAs
(Debian's package); the master's Kamailio is killed at 6 s and restarted at 34 s with no health
check, so the VIP stays on the dead process and REGISTERs time out.

The inferred SIPp values must be within stated tolerances of the configured ones; the inferred
baresip values are compared with ``models/phones/baresip.yaml`` (the profile cites this capture
for what it shows: refresh point, T1, T2, no keep-alives). What the run cannot show — baresip's
failwait backoff, which starts 30–60 s after a failure, later than a lab run this short — must be
said to be not observed, not invented.
"""

from __future__ import annotations

import lzma
import re
import shutil
from pathlib import Path

import pytest

from simsip.config.loader import load_config, load_config_text
from simsip.trace import infer_scenario
from simsip.units import parse_duration

DATA = Path(__file__).parent / "data" / "infer-truth"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("infer-truth")
    for name in ("config.yaml", "meta.json", "faults.json"):
        shutil.copy2(DATA / name, d / name)
    (d / "capture.pcapng").write_bytes(lzma.decompress((DATA / "capture.pcapng.xz").read_bytes()))
    return d


@pytest.fixture(scope="module")
def inferred(run_dir):
    return infer_scenario(run_dir)


@pytest.fixture(scope="module")
def truth():
    return load_config(DATA / "config.yaml")


def _fleet(inf, ua: str):
    return next(f for f in inf.fleets if f.user_agent.startswith(ua))


def test_sipp_fleet_matches_its_configuration(inferred, truth):
    assert_sipp_matches(inferred, truth)


def assert_sipp_matches(inferred, truth) -> None:
    """The SIPp fleet's inferred values within tolerance of the configured ones (also run on a
    fresh lab run by ``tests/test_lab.py::test_infer_ground_truth_live``)."""
    f, tf = _fleet(inferred, "simsip-lab"), truth.fleets[0]
    assert f.phones == tf.count and f.requested_expires.value == f.granted_expires.value == tf.phone.expires
    # refresh point: within 0.5 % of the expiry, per refresh and per phone (one value per phone)
    assert abs(f.refresh_fraction.value - tf.phone.refresh.percent / 100) < 0.005
    assert f.refresh_per_phone.n == tf.count
    assert abs(f.refresh_per_phone.value - tf.phone.refresh.percent / 100) < 0.005
    # the retry interval after a timeout: within 0.1 s; SIPp's retransmission limit exactly
    assert f.timeout_wait.n >= tf.count  # every phone's REGISTER timed out at least once
    assert abs(f.timeout_wait.value - tf.phone.retry.interval) < 0.1
    assert f.max_retransmissions.value == tf.phone.timers.max_retransmissions
    assert abs(f.t1.value - tf.phone.timers.t1) < 0.01 and abs(f.t2.value - tf.phone.timers.t2) < 0.02
    assert f.keepalive_kind == "none" and f.backoff is not True


def test_inferred_scenario_carries_the_configured_values(inferred, truth):
    scn = load_config_text(inferred.scenario_yaml("infer-truth"))
    sipp, bare = scn.fleets
    tf = truth.fleets[0]
    assert sipp.phone.refresh.mode == "percent" and abs(sipp.phone.refresh.percent - 70) < 0.5
    assert sipp.phone.retry.mode == "fixed" and abs(sipp.phone.retry.interval - tf.phone.retry.interval) < 0.1
    assert sipp.phone.timers.max_retransmissions == 5
    assert bare.profile == "baresip" and bare.count == truth.fleets[1].count
    assert [(x.kind, round(x.at, 1), round(x.repair_after, 1)) for x in scn.faults] == [("process_crash", 6.0, 28.0)]
    assert [n.priority for n in scn.ha.nodes][0] == 200 and scn.ha.vrrp.advert_int == 1.0
    # the lab's keepalived sends 5 GARPs at the takeover and 5 more 5 s later (garp_master_repeat/delay)
    h = inferred.ha
    assert h.garp_repeat.value == 5 and abs(h.garp_second_delay.value - 5.0) < 0.1
    assert scn.ha.vrrp.garp_master_repeat == 5 and scn.ha.vrrp.garp_master_delay == 5.0


def test_baresip_agrees_with_its_profile(inferred):
    assert_baresip_matches_profile(inferred)
    # the profile cites this capture for what it shows
    from simsip.models import profile_values

    prof = {v.path: v for v in profile_values("baresip")}
    for key in ("refresh.percent", "timers.t1", "timers.t2", "keepalive.kind"):
        assert "tests/data/infer-truth" in prof[key].source, key


def assert_baresip_matches_profile(inferred) -> None:
    """The real baresip UAs' inferred refresh point, T1, T2 and keep-alives agree with
    ``models/phones/baresip.yaml``."""
    from simsip.models import profile_values

    prof = {v.path: v for v in profile_values("baresip")}
    f = _fleet(inferred, "baresip")
    assert f.profile == "baresip" and f.phones == 3
    # refresh at 90 % of the granted expiry (libre's rwait), within 0.5 %
    assert abs(f.refresh_fraction.value * 100 - prof["refresh.percent"].value) < 0.5
    assert abs(f.refresh_per_phone.value * 100 - prof["refresh.percent"].value) < 0.5 and f.refresh_per_phone.n == 3
    # RFC 3261 timers: T1 500 ms, T2 4 s
    assert abs(f.t1.value - parse_duration(prof["timers.t1"].value)) < 0.01
    assert abs(f.t2.value - parse_duration(prof["timers.t2"].value)) < 0.02
    # no keep-alives
    assert prof["keepalive.kind"].value == "none" and f.keepalive_kind == "none"


def test_what_the_run_cannot_show_is_not_invented(inferred):
    f = _fleet(inferred, "baresip")
    # the outage (28 s) is shorter than Timer F (32 s): baresip's retransmissions reached the
    # restarted Kamailio, so no baresip transaction failed and its backoff is not observed
    assert not f.timeout_wait.observed and not f.error_waits and f.backoff is None
    text = inferred.scenario_yaml("x")
    assert "# retry: from profile baresip because not observed" in text


def test_report_page_of_the_lab_capture(inferred, tmp_path):
    from simsip.report import write_inference_report

    from test_infer_report import _figure_json, _titles

    page = write_inference_report(inferred, tmp_path / "lab.html").read_text(encoding="utf-8")
    refresh = _titles(_figure_json(page, "refresh"))
    assert any(t.startswith("fleet simsip-lab (20 phones, udp) — n=20, median 0.700") for t in refresh), refresh
    retry = _titles(_figure_json(page, "retry"))
    assert any("simsip-lab" in t and "after a timeout — n=" in t and "median 6.01 s" in t for t in retry), retry
    assert 'id="fig-recovery"' in page  # the phones' recovery after the restart, from trace import's metrics
    assert 'id="missing-backoff"' in page or 'id="panel-backoff"' not in page


@pytest.mark.slow
def test_round_trip_inferred_forecast_matches_the_configured_one(inferred, truth):
    """Simulating the inferred scenario forecasts what simulating the configured one does, within
    the validation tolerances (recovery median ±max(10 %, 2 s), p95 ±max(15 %, 3 s), unreachable
    phone-seconds ±15 %): what inference leaves out does not change the answer. (Model vs this lab
    run is ``simsip validate``'s business; it needs the run's prober.csv, not stored here.)"""
    from simsip.api import simulate
    from simsip.config.loader import load_config_text

    text = inferred.scenario_yaml("infer-truth")
    want = simulate(truth, replications=5, seed=3).summary["figures"]

    def off(yaml_text: str) -> list[str]:
        got = simulate(load_config_text(yaml_text), replications=5, seed=3).summary["figures"]
        out = []
        for key, rel, floor in (("recovery_median", 0.10, 2.0), ("recovery_p95", 0.15, 3.0),
                                ("unreachable_phone_seconds", 0.15, 0.0)):
            a, b = got[key]["mean"], want[key]["mean"]
            if abs(a - b) > max(rel * abs(b), floor):
                out.append(f"{key}: {a:.4g} vs {b:.4g}")
        return out

    assert off(text) == []
    # negative control: a wrong retry interval (15 s instead of the inferred 6 s) is caught
    wrong, n = re.subn(r"retry: \{mode: fixed, interval: [0-9.]+s\}", "retry: {mode: fixed, interval: 15s}", text)
    assert n == 1 and off(wrong)


@pytest.mark.slow
def test_validation_sees_no_vip_move_where_there_was_none(run_dir, truth):
    """The VIP stays on the master (its Kamailio died, keepalived did not notice): validation must
    not read the teardown's keepalived transitions (the backup is MASTER for 0.4 s after the run,
    while the lab stops the nodes) as the fault's VIP move."""
    from simsip.validate import validate

    (run_dir / "prober.csv").write_bytes(lzma.decompress((DATA / "prober.csv.xz").read_bytes()))
    table = validate(DATA / "config.yaml", run_dir, replications=3).table
    move = table[table["metric"].str.startswith("VIP move time")]
    assert len(move) == 1 and move["lab"].isna().all(), move.to_string()
    # the loss itself (phones unreachable until they re-register after the restart) is still compared
    loss = table[table["metric"].str.startswith("unreachable phone·s, fault 0")]
    assert len(loss) == 1 and loss["lab"].iloc[0] == pytest.approx(643.0, abs=5.0) and bool(loss["pass"].iloc[0])
