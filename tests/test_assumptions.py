"""Profile values no vendor documents are marked as assumptions, and one command sweeps them."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from simsip import models
from simsip.cli import app
from simsip.config.loader import load_config
from tests.conftest import EXAMPLES


def test_undocumented_refresh_points_are_assumptions_and_documented_ones_are_not():
    found = {(a.profile, a.value.path) for a in models.assumptions("phones", "refresh")}
    for vendor in ("yealink", "grandstream", "cisco-mpp", "bria", "snom"):
        assert (f"phones/{vendor}", "refresh.percent") in found
    # negative controls: sourced refresh rules (belle-sip, re, pjsua, Polycom) are not assumptions
    for vendor in ("linphone", "baresip", "pjsua", "polycom", "microsip"):
        assert not any(p == f"phones/{vendor}" for p, _ in found), vendor
    a = next(a for a in models.assumptions("phones", "refresh") if a.profile == "phones/yealink"
             and a.value.path == "refresh.percent")
    assert a.sweep_path == "fleets.0.phone.refresh.percent"
    cfg = load_config(EXAMPLES / "quickstart.yaml", [f"{a.sweep_path}=66"])  # the path works with --set
    assert cfg.fleets[0].phone.refresh.percent == 66


def test_models_show_marks_assumptions():
    r = CliRunner().invoke(app, ["models", "show", "phones/yealink"], env={"COLUMNS": "300"})
    assert r.exit_code == 0 and "ASSUMPTION" in r.stdout
    r = CliRunner().invoke(app, ["models", "show", "phones/linphone"], env={"COLUMNS": "300"})
    line = next(x for x in r.stdout.splitlines() if "refresh_window 90" in x)
    assert "ASSUMPTION" not in line  # a sourced value is not marked


def test_new_library_kinds_are_listed_with_sources():
    for name in ("trunks/asterisk-pjsip", "sbcs/opensips-mid-registrar"):
        vals = models.profile_values(name, defaults=False)
        assert vals and all(v.source for v in vals), name
    contact = next(v for v in models.profile_values("trunks/asterisk-pjsip") if v.path == "contact")
    assert contact.assumption


def test_the_shipped_sweep_varies_the_assumed_refresh_point():
    spec = yaml.safe_load((EXAMPLES / "sweeps" / "assumed-refresh-point.yaml").read_text())
    assert spec["base"]["fleets"][0]["profile"] == "yealink"
    assert any(f["path"] == "fleets.desk.phone.refresh.percent" for f in spec["factors"])
