"""The real lab's generated configs and run bookkeeping, without running the lab (no root needed).

kamailio.cfg (children, usleep per REGISTER, maxbuffer, TCP listeners, the probe socket),
keepalived.conf (weighted track_script), the SIPp phone over UDP and TCP, the capture filter, the
random fault phase, the reboot order of a repaired node crash, and the parsers of the kernel's
UDP counters that a run records in meta.json.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from simsip.lab import configs
from simsip.lab.runner import (Lab, capture_filter, parse_ss_udp, parse_udp_snmp,
                               random_phase_delay)
from simsip.lab.spec import LabSpec
from simsip.lab.topology import VIP, LabError


def _route(cfg: str) -> str:
    return cfg.split("request_route {", 1)[1]


def test_default_kamailio_cfg_is_udp_two_workers_no_sleep(tmp_path):
    cfg = configs.kamailio_cfg(LabSpec(), "a", tmp_path)
    assert "children=2\n" in cfg and "disable_tcp=yes" in cfg
    assert "cfgutils" not in cfg and "usleep" not in cfg and "maxbuffer" not in cfg
    assert "listen=tcp:" not in cfg and ":5061" not in cfg


def test_capacity_registrar_sleeps_on_register_only(tmp_path):
    spec = LabSpec(workers=3, service_time=0.0125, maxbuffer=65536, probe_port=5061)
    cfg = configs.kamailio_cfg(spec, "b", tmp_path)
    assert "children=3\n" in cfg and "maxbuffer=65536\n" in cfg
    assert 'loadmodule "cfgutils.so"' in cfg  # usleep is not core in Kamailio 5.6
    route = _route(cfg)
    reg, rest = route.split('if (is_method("OPTIONS"))', 1)
    assert "usleep(12500);" in reg and reg.index("usleep") < reg.index("save(")
    assert "usleep" not in rest  # probes stay cheap
    # the probe socket comes last, with workers of its own
    assert re.search(r"socket_workers=2\nlisten=udp:" + re.escape(VIP) + r":5061\n", cfg)
    assert cfg.index("listen=udp:" + VIP + ":5060") < cfg.index("socket_workers=2")


@pytest.mark.parametrize("spec", [LabSpec(transport="tcp", workers=4),
                                  LabSpec(workers=4, baresip=3, baresip_transport="tcp")])
def test_tcp_registrar_listens_on_tcp(spec, tmp_path):
    assert spec.tcp
    cfg = configs.kamailio_cfg(spec, "a", tmp_path)
    assert "disable_tcp" not in cfg and "tcp_children=4" in cfg
    assert f"listen=tcp:{VIP}:5060" in cfg and "listen=tcp:10.99.0.11:5060" in cfg
    assert f"listen=udp:{VIP}:5060" in cfg  # the prober stays on UDP
    assert not LabSpec(baresip=0, baresip_transport="tcp").tcp  # no UA to use it


def test_baresip_account_names_its_transport():
    assert 'transport=tcp";regint=60' in configs.baresip_accounts(LabSpec(baresip=1, baresip_transport="tcp"), 1)
    assert 'transport=udp";regint=60' in configs.baresip_accounts(LabSpec(baresip=1), 1)


def test_sipp_phone_udp_retransmits_tcp_waits_timer_f(tmp_path):
    udp = configs.sipp_phone_xml(LabSpec(t1=0.25))
    assert '<send retrans="250" ontimeout="fail">' in udp and '<recv response="200"/>' in udp
    tcp = LabSpec(transport="tcp", t1=0.25)
    assert tcp.timeout == 16.0  # 64·T1
    xml = configs.sipp_phone_xml(tcp)
    assert "retrans=" not in xml
    assert '<recv response="200" timeout="16000" ontimeout="fail"/>' in xml
    assert configs.sipp_phone_xml(LabSpec(transport="tcp", tcp_timeout=20)).count('timeout="20000"') == 1
    argv = configs.sipp_argv(tcp, tmp_path / "x.xml", tmp_path)
    i = argv.index("-t")
    assert argv[i + 1] == "tn"
    opts = dict(zip(argv[i + 2:i + 10:2], argv[i + 3:i + 10:2]))
    assert opts == {"-max_reconnect": "-1", "-reconnect_close": "false", "-reconnect_sleep": "0",
                    "-max_socket": str(tcp.phones + 64)}
    assert configs.sipp_argv(LabSpec(), tmp_path / "x.xml", tmp_path)[argv.index("-t") + 1] == "u1"


@pytest.mark.parametrize("weight, reverse, line", [(0, False, None), (-40, False, "weight -40"),
                                                   (15, True, "weight 15 reverse")])
def test_keepalived_track_script_weight(weight, reverse, line, tmp_path):
    spec = LabSpec(track_interval=1.0, track_fall=2, track_weight=weight, track_reverse=reverse, preempt=False)
    conf = configs.keepalived_conf(spec, "a", tmp_path)
    script = conf.split("vrrp_script chk_kamailio {", 1)[1].split("}", 1)[0]
    assert "fall 2" in script
    assert ("    " + line + "\n" in script) if line else ("    weight" not in script)
    assert "nopreempt" in conf


def test_labspec_refuses_what_keepalived_and_kamailio_do_not_take():
    for bad in (dict(transport="tls"), dict(workers=0), dict(service_time=2.0), dict(track_reverse=True),
                dict(track_weight=300), dict(probe_port=6000), dict(maxbuffer=10), dict(tcp_timeout=0)):
        with pytest.raises(ValueError):
            LabSpec(**bad)


def test_capture_filter_includes_the_probe_port():
    assert "5061" not in capture_filter(LabSpec())
    f = capture_filter(LabSpec(probe_port=5061, service_time=0.01))
    assert "udp port 5061" in f and "tcp port 5060" in f and "ip proto 112" in f


def test_random_phase_delay_covers_one_advert_interval():
    rng = random.Random(5)
    xs = [random_phase_delay(2.0, rng) for _ in range(2000)]
    assert min(xs) >= 0 and max(xs) < 2.0
    assert 0.9 < sum(xs) / len(xs) < 1.1  # uniform: mean advert/2
    assert 0 <= random_phase_delay(0.5) < 0.5  # OS randomness by default


def test_udp_counters_and_socket_buffers_parse():
    snmp = ("Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors\n"
            "Udp: 950 0 7 950 7 0\nUdpLite: InDatagrams\nUdpLite: 0\n")
    assert parse_udp_snmp(snmp) == {"InDatagrams": 950, "NoPorts": 0, "InErrors": 7, "OutDatagrams": 950,
                                     "RcvbufErrors": 7, "SndbufErrors": 0}
    assert parse_udp_snmp("") == {}
    ss = ("UNCONN 2304  0   10.99.0.10:5060  0.0.0.0:*\n\t skmem:(r2304,rb212992,t0,tb212992,f1792,w0,o0,bl0,d12)\n"
          "UNCONN 0 0 10.99.0.11:5060 0.0.0.0:*\n\t skmem:(r0,rb524288,t0,tb212992,f0,w0,o0,bl0,d0)\n")
    assert parse_ss_udp(ss) == [
        {"local": "10.99.0.10:5060", "recv_q": 2304, "r": 2304, "rb": 212992, "drops": 12},
        {"local": "10.99.0.11:5060", "recv_q": 0, "r": 0, "rb": 524288, "drops": 0},
    ]


class _FakeLab:
    """Records the order of the lab actions Lab.reboot_node / check_rmem use."""

    def __init__(self, spec=None, rmem=None):
        self.calls: list[str] = []
        self.spec = spec or LabSpec()
        self._rmem = rmem or {}
        me = self

        class _Procs:
            def stop(self, name, *a, **k):
                me.calls.append(f"stop {name}")

        class _Topo:
            def flush_vip(self, node):
                me.calls.append("flush_vip")

            def link_up(self, node):
                me.calls.append("link_up")

        self.procs, self.topo = _Procs(), _Topo()

    def start_kamailio(self, node):
        self.calls.append("start kamailio")

    def wait_kamailio(self, node):
        self.calls.append("wait kamailio")

    def start_keepalived(self, node):
        self.calls.append("start keepalived")

    def kernel_rmem(self, node):
        return dict(self._rmem)


def test_a_rebooted_node_comes_back_link_registrar_then_keepalived():
    lab = _FakeLab()
    Lab.reboot_node(lab, "a")
    assert lab.calls == ["stop keepalived-a", "stop kamailio-a", "flush_vip", "link_up", "start kamailio",
                         "wait kamailio", "start keepalived"]


def test_the_run_says_when_the_kernel_has_another_receive_buffer_and_the_forecast_uses_the_kernels(tmp_path):
    """net.core.rmem_* cannot be set inside a namespace on this kernel: a scenario that says other values
    runs on the machine's, says so, and its forecast takes the recorded values (a machine parameter)."""
    import json
    import shutil

    from simsip.config.loader import load_config
    from simsip.io import unpacked_run
    from simsip.validate import forecast_scenario

    kernel = {"rmem_default": 212992, "rmem_max": 4194304}
    ok = _FakeLab(LabSpec(rmem_default=212992, rmem_max=4194304), kernel)
    assert Lab.check_rmem(ok) == ({"a": kernel, "b": kernel}, [])
    assert Lab.check_rmem(_FakeLab(LabSpec(), kernel))[0]["a"] == kernel  # no buffer in the scenario: recorded only
    seen, differ = Lab.check_rmem(_FakeLab(LabSpec(rmem_max=212992), kernel))
    assert differ and re.search(r"udp_buffer\.rmem_max.*212992.*4194304", differ[0])
    ex = Path(__file__).resolve().parents[1] / "examples" / "lab" / "udp-none"
    run = tmp_path / "run"
    shutil.copytree(unpacked_run(ex), run)
    meta = json.loads((run / "meta.json").read_text())
    meta["kernel_rmem"] = {"a": {"rmem_default": 300000, "rmem_max": 600000}}
    (run / "meta.json").write_text(json.dumps(meta))
    scn, _ = forecast_scenario(load_config(ex / "config.yaml"), run)
    assert (scn.registrar.udp_buffer.rmem_default, scn.registrar.udp_buffer.rmem_max) == (300000, 600000)


def test_a_constant_replication_lag_is_a_usleep_on_the_peer_before_it_applies_the_update(tmp_path):
    from simsip.config.loader import load_config
    from simsip.lab.bridge import LabUnsupported, spec_from_scenario
    from simsip.lab.configs import kamailio_cfg

    base = Path(__file__).resolve().parents[1] / "examples" / "lab" / "dmq" / "config.yaml"
    cfg = load_config(base, ["registrar.replication.lag=25ms"])
    spec = spec_from_scenario(cfg)
    assert spec.replication_delay == pytest.approx(0.025)
    text = kamailio_cfg(spec, "b", tmp_path)
    assert 'if (is_method("KDMQ")) { usleep(25000); dmq_handle_message(); exit; }' in text
    assert 'loadmodule "cfgutils.so"' in text
    # Kamailio's own lag (the profile's 0.25 ms) adds nothing; a random lag above 1 ms cannot be realised
    own = spec_from_scenario(load_config(base))
    assert own.replication_delay == 0 and "usleep" not in kamailio_cfg(own, "b", tmp_path)
    with pytest.raises(LabUnsupported, match="registrar.replication.lag"):
        spec_from_scenario(load_config(base, ["registrar.replication.lag.dist=exponential",
                                              "registrar.replication.lag.mean=25ms"]))


def test_track_script_logs_every_verdict_with_its_start(tmp_path):
    """The check's phase (for replay) comes from the script's own log, read into meta.json."""
    import subprocess

    from simsip.lab.runner import read_checks

    paths = configs.write_scripts(LabSpec(track_interval=1.0), "a", tmp_path)
    (tmp_path / "kamailio-a.pid").write_text("999999999\n")  # no such process: the check fails
    assert subprocess.run([str(paths["track"])]).returncode != 0
    (tmp_path / "checks-a.log").write_text((tmp_path / "checks-a.log").read_text() + "1796176658446415903 1\njunk\n")
    checks = read_checks(tmp_path / "checks-a.log")
    assert [ok for _, ok in checks] == [0, 1] and checks[1][0] == pytest.approx(1796176658.446415903)
    assert read_checks(tmp_path / "none.log") == []


def test_a_recording_ends_at_the_scenario_end(tmp_path):
    """Capture, prober log and keepalived transitions are cut at t0 + duration: the teardown
    (keepalived stopped, the backup taking the VIP after the end) is not part of the run."""
    from simsip.lab.record import scenario_end_epoch, split_teardown, trim_prober

    meta = {"t0_epoch": 1000.0, "spec": {"duration": 60.0},
            "transitions": {"a": [[1010.0, "FAULT", 200]], "b": [[1013.0, "MASTER", 100], [1061.0, "STOP", 100]]}}
    end = scenario_end_epoch(meta)
    assert end == 1060.0
    split_teardown(meta, end)
    assert meta["transitions"] == {"a": [[1010.0, "FAULT", 200]], "b": [[1013.0, "MASTER", 100]]}
    assert meta["teardown_transitions"] == {"a": [], "b": [[1061.0, "STOP", 100]]}
    src = tmp_path / "p.csv"
    src.write_text("round,aor,sent_epoch,status,recv_epoch\n0,ph1,996.0,200,996.1\n1,ph1,1001.0,200,1001.1\n"
                   "2,ph1,1060.5,200,1060.6\n")
    trim_prober(src, tmp_path / "q.csv", 997.0, end)
    assert (tmp_path / "q.csv").read_text().splitlines()[1:] == ["1,ph1,1001.0,200,1001.1"]


# ---- usrloc db_mode 1/2: the preload measurement's Kamailio (simsip.lab.preload) -------------------
@pytest.mark.parametrize("mode", [1, 2])
def test_db_mode_1_and_2_preload_the_location_table_and_log_the_end(mode, tmp_path):
    spec = LabSpec(db_mode=mode)
    assert spec.uses_db and spec.usrloc_db_mode == mode
    cfg = configs.kamailio_cfg(spec, "a", tmp_path)
    assert f'modparam("usrloc", "db_mode", {mode})' in cfg
    assert f'modparam("usrloc", "db_url", "{configs.db_url(spec, "a")}")' in cfg
    assert configs.db_url(spec, "a").endswith("/kamailio_a")  # each node its own table
    assert 'modparam("usrloc", "preload", "location")' in cfg
    assert f'modparam("usrloc", "fetch_rows", {configs.PRELOAD_FETCH_ROWS})' in cfg
    assert cfg.index('loadmodule "db_postgres.so"') < cfg.index('loadmodule "usrloc.so"')
    assert 'loadmodule "xlog.so"' in cfg
    # the first worker runs this after its child_init, i.e. after the preload
    ev = cfg.split("event_route[core:worker-one-init] {", 1)[1]
    assert configs.PRELOAD_MARK in ev and "$TV(Sn)" in ev and "$pp" in ev


def test_db_modes_0_and_3_are_unchanged(tmp_path):
    for spec, mode in ((LabSpec(), 0), (LabSpec(variant="dmq"), 0), (LabSpec(variant="shared_db"), 3),
                       (LabSpec(variant="shared_db", db_mode=3), 3)):
        cfg = configs.kamailio_cfg(spec, "a", tmp_path)
        assert f'modparam("usrloc", "db_mode", {mode})' in cfg
        assert "preload" not in cfg and "worker-one-init" not in cfg and "xlog" not in cfg
        assert ("db_postgres" in cfg) == (mode == 3) == spec.uses_db


def test_labspec_refuses_db_modes_it_cannot_realise():
    with pytest.raises(ValueError, match="needs variant 'memory'"):
        LabSpec(variant="dmq", db_mode=1)
    with pytest.raises(ValueError, match="needs variant 'memory'"):
        LabSpec(variant="shared_db", db_mode=2)
    with pytest.raises(ValueError, match="does not fit variant"):
        LabSpec(db_mode=3)
    with pytest.raises(ValueError, match="not in"):
        LabSpec(db_mode=4)
    assert LabSpec.from_dict(LabSpec(db_mode=2).to_dict()).db_mode == 2


def test_db_mode_1_and_2_give_each_node_a_database_of_its_own(tmp_path):
    """db_mode 1/2: a node's table is its own disk copy of its bindings, preloaded at start — two
    nodes on one table would preload each other's contacts — so the lab's PostgreSQL holds one
    database per node; db_mode 3 shares one."""
    one, shared = LabSpec(db_mode=1), LabSpec(variant="shared_db")
    assert configs.db_names(one) == ("kamailio_a", "kamailio_b")
    assert configs.db_names(shared) == ("kamailio",) and configs.db_names(LabSpec()) == ()
    a, b = (configs.kamailio_cfg(one, n, tmp_path) for n in ("a", "b"))
    assert "/kamailio_a\"" in a and "/kamailio_b\"" in b
    assert configs.kamailio_cfg(shared, "a", tmp_path).count("/kamailio\"") == 1


@pytest.mark.parametrize("profile, mode", [("kamailio-db-mode-1", 1), ("kamailio-db-mode-2", 2)])
def test_the_bridge_realises_write_through_and_write_back_as_db_mode_1_and_2(profile, mode):
    from simsip.config.loader import load_config
    from simsip.lab.bridge import LabUnsupported, spec_from_scenario

    base = Path(__file__).resolve().parents[1] / "examples" / "lab" / "udp-none" / "config.yaml"
    assert spec_from_scenario(load_config(base)).usrloc_db_mode == 0  # the memory-only run
    sets = [f"registrar.persistence={'write_through' if mode == 1 else 'write_back'}", "registrar.flush_interval=5s",
            "registrar.preload=first_worker",
            "registrar.workers=2"]
    spec = spec_from_scenario(load_config(base, sets))
    assert spec.usrloc_db_mode == mode and spec.variant == "memory" and spec.uses_db
    # what the lab cannot realise is refused with the reason
    with pytest.raises(LabUnsupported, match="storage"):
        spec_from_scenario(load_config(base, sets + ["registrar.storage=shared"]))
    with pytest.raises(LabUnsupported, match="preload"):
        spec_from_scenario(load_config(base, sets + ["registrar.preload=blocking"]))
    if mode == 2:
        with pytest.raises(LabUnsupported, match="timer_interval"):
            spec_from_scenario(load_config(base, sets[:1] + sets[2:] + ["registrar.flush_interval=60s"]))


def test_preload_fit_recovers_a_line_and_its_rate():
    from simsip.lab.preload import fit, fill_sql, summarise, PreloadRun

    xs = [0, 0, 1000, 1000, 10000, 10000]
    ys = [0.1 + x / 5000 + e for x, e in zip(xs, [0.01, -0.01, 0.01, -0.01, 0.02, -0.02])]
    f = fit(xs, ys)
    assert f["a"] == pytest.approx(0.1, abs=0.02) and f["rate"] == pytest.approx(5000, rel=0.02)
    assert f["rate_95"][0] < f["rate"] < f["rate_95"][1]
    with pytest.raises(ValueError):
        fit([1000, 1000, 1000], [1, 1, 1])
    sql = fill_sql(7)
    assert "TRUNCATE location" in sql and "generate_series(1, 7)" in sql
    runs = [PreloadRun(n=x, rep=i, workers=2, db_mode=1, start_epoch=0.0, preload_end=y, first_answer=0.05,
                       first_register_200=0.06, last_aor_200=y - 0.001 if x else None, loaded=x + 1,
                       answered_before_preload=0, loadavg=[0.0, 0.0, 0.0]) for i, (x, y) in enumerate(zip(xs, ys))]
    s = summarise(runs)
    assert s["fit_preload_end"]["rate"] == pytest.approx(f["rate"])
    assert s["run_rates"]["count"] == 2 and s["by_n"]["1000"]["first_answer"]["mean"] == pytest.approx(0.05)
