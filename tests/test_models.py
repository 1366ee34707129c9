"""The model library: every profile cites a source for every value, loads, and runs.

A profile is only trustworthy if each number in it says where it came from (or that it is an
assumption), and only usable if a scenario can reference it by name and simulate. Deployments are
complete small scenarios: each must load (including ``extends:``) and run briefly.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from simsip.api import simulate
from simsip.config.loader import load_config, load_config_text, models_dir
from simsip.cli.models import models_list, models_show
from simsip.models import KINDS, find_profile, leaves, profile_values, profiles, source_of

PROFILES = [p for p in profiles() if p.kind != "deployments"]
DEPLOYMENTS = [p for p in profiles("deployments")]


def test_library_has_the_products() -> None:
    names = {(p.kind, p.name) for p in profiles()}
    for phone in ("pjsua", "microsip", "linphone", "baresip", "yealink", "polycom", "cisco-mpp", "grandstream", "snom", "bria"):
        assert ("phones", phone) in names
    for reg in ("kamailio", "asterisk-pjsip", "asterisk-chansip", "opensips", "freeswitch"):
        assert ("registrars", reg) in names
    for ha in ("keepalived", "keepalived-vrrp3-fast"):
        assert ("ha", ha) in names
    for dep in ("keepalived-no-replication", "keepalived-shared-db", "keepalived-dmq"):
        assert ("deployments", dep) in names


@pytest.mark.parametrize("prof", PROFILES, ids=lambda p: f"{p.kind}/{p.name}")
def test_every_value_has_a_source(prof) -> None:
    section = prof.section
    assert section, f"{prof.path}: needs a '{KINDS[prof.kind]}:' mapping"
    sources = prof.sources
    assert sources, f"{prof.path}: needs a 'sources:' mapping"
    missing = [path for path, _ in leaves(section) if not (source_of(path, sources) or "").strip()]
    assert not missing, f"{prof.path}: no source for {missing}"
    paths = {path for path, _ in leaves(section)}
    stale = [k for k in sources if not any(p == k or p.startswith(k + ".") for p in paths)]
    assert not stale, f"{prof.path}: sources for values the profile does not set: {stale}"


def _tiny(prof) -> str:
    """A tiny scenario using ``prof`` by name (few phones, short run, one crash)."""
    fleet = "{name: f, count: 30, phone: {expires: 60s}}"
    registrar = "{min_expires: 10s}"
    ha = "{}"
    if prof.kind == "phones":
        fleet = f"{{name: f, count: 30, profile: {prof.name}, phone: {{expires: 60s}}}}"
    elif prof.kind == "registrars":
        registrar = f"{{profile: {prof.name}, min_expires: 10s}}"
    elif prof.kind == "databases":
        registrar = "{min_expires: 10s, data: shared}"
    elif prof.kind == "sbcs":
        fleet = "{name: f, count: 30, server: sbc, phone: {expires: 60s}}"
    elif prof.kind != "trunks":
        ha = f"{{profile: {prof.name}}}"
    database = f"{{profile: {prof.name}}}" if prof.kind == "databases" else "{}"
    extra = ""
    if prof.kind == "trunks":
        extra = f"trunks: [{{name: t, profile: {prof.name}}}]\n"
    elif prof.kind == "sbcs":
        extra = f"sbc: {{profile: {prof.name}}}\n"
    return extra + f"""name: tiny-{prof.name}
seed: 3
duration: 150s
fleets: [{fleet}]
registrar: {registrar}
ha: {ha}
database: {database}
faults: [{{kind: node_crash, node: master, at: 40s, repair_after: 40s}}]
output: {{report: false}}
"""


@pytest.mark.parametrize("prof", PROFILES, ids=lambda p: f"{p.kind}/{p.name}")
def test_profile_loads_and_runs(prof) -> None:
    cfg = load_config_text(_tiny(prof), f"<tiny {prof.kind}/{prof.name}>")
    # the profile's values arrived (the phone's expiry is overridden to keep the run short)
    if prof.kind == "phones":
        assert cfg.fleets[0].profile == prof.name
        sec = prof.section
        if "refresh" in sec and "mode" in sec["refresh"]:
            assert cfg.fleets[0].phone.refresh.mode == sec["refresh"]["mode"]
    elif prof.kind == "registrars":
        assert cfg.registrar.profile == prof.name
    elif prof.kind == "databases":
        assert cfg.database.profile == prof.name
    elif prof.kind == "trunks":
        assert cfg.trunks[0].profile == prof.name
    elif prof.kind == "sbcs":
        assert cfg.sbc.profile == prof.name
    else:
        assert cfg.ha.profile == prof.name
    res = simulate(cfg, replications=1)
    assert res.status == "ok"
    figs = res.summary["figures"]
    assert figs["phones"]["mean"] == 30
    assert figs["vip_move_time"]["mean"] > 0


@pytest.mark.parametrize("dep", DEPLOYMENTS, ids=lambda p: p.name)
def test_deployment_loads_and_runs(dep) -> None:
    cfg = load_config(dep.path, ["replications=1", "duration=4min"])
    assert cfg.name == dep.name
    assert cfg.phones <= 5000, "deployments are small: scale them with --set"
    res = simulate(cfg)
    assert res.status == "ok" and len(res.reps) == 1
    assert res.summary["figures"]["phones_affected"]["mean"] >= 0


def test_deployments_differ_only_in_data_mode() -> None:
    base = load_config(models_dir() / "deployments" / "keepalived-no-replication.yaml")
    for name, mode in (("keepalived-shared-db", "shared"), ("keepalived-dmq", "replicated")):
        cfg = load_config(models_dir() / "deployments" / f"{name}.yaml")
        assert cfg.registrar.data == mode
        assert cfg.fleets == base.fleets and cfg.ha == base.ha and cfg.faults == base.faults


def test_models_list_and_show_print_meaning_and_source() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=220, color_system=None)
    models_list(console)
    out = buf.getvalue()
    assert "pjsua" in out and "keepalived-dmq" in out and "extends: keepalived-dmq" in out
    buf.truncate(0)
    buf.seek(0)
    models_show("pjsua", console)
    out = buf.getvalue()
    assert "refresh.margin" in out and "Refresh this long before the granted expiry" in out  # schema meaning
    assert "reg_delay_before_refresh" in out  # the source
    assert "schema default" in out  # fields pjsua leaves to the schema
    buf.truncate(0)
    buf.seek(0)
    models_show("registrars/freeswitch", console)
    assert "sip-expires-late-margin" in buf.getvalue()
    with pytest.raises(KeyError, match="available"):
        find_profile("no-such-phone")


def test_profile_values_are_data_with_meaning_source_and_defaults() -> None:
    """The look-up behind ``models show``: values as data, for a notebook."""
    vals = {v.path: v for v in profile_values("phones/pjsua")}
    margin = vals["refresh.margin"]
    assert not margin.default and margin.source and "reg_delay_before_refresh" in margin.source
    assert "Refresh this long before the granted expiry" in margin.meaning
    assert margin.text == str(find_profile("pjsua").section["refresh"]["margin"])
    defaults = [v for v in vals.values() if v.default]
    assert defaults and all(v.source is None and v.path not in dict(leaves(find_profile("pjsua").section))
                            for v in defaults)
    assert not any(v.default for v in profile_values("pjsua", defaults=False))
    dep = profile_values("deployments/keepalived-dmq")
    assert dep and not any(v.default for v in dep) and all(v.source is None for v in dep)
    assert find_profile("keepalived-dmq").use_as == "extends: keepalived-dmq"
    with pytest.raises(KeyError, match="available"):
        profile_values("no-such-phone")


def test_config_reference_is_generated_from_the_schema() -> None:
    from simsip.docs import DOC_PATH, config_reference

    text = config_reference()
    assert "`fleets[].phone.expires`" in text and "`ha.vrrp.advert_int`" in text
    assert DOC_PATH.read_text(encoding="utf-8") == text, (
        "docs/config-reference.md is out of date: regenerate with `python -m simsip.docs --write`")
