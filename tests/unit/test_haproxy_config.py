"""proxy/: the rendered HAProxy configuration, the proxy config file, and the manager's cycle logic.

Every rendered configuration is also checked by the real `haproxy -c` (Debian's haproxy is a local
binary, like the tests' Python: it is asserted, never skipped), and must not draw a single warning.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from galera_pilot.cluster import Cluster, Member, RosterEntry
from galera_pilot.errors import ConfigError, DCSError, PilotError
from galera_pilot.proxy.haproxy_config import (
    ProxyBackend,
    ProxySettings,
    parse_bind,
    render_haproxy_config,
)
from galera_pilot.proxy.haproxy_process import ConfigRefused, HaproxyProcess, ProcState
from galera_pilot.proxy.manager import ProxyConfig, ProxyManager, load_proxy_config, parse_proxy_config
from galera_pilot.proxy.membership import api_port_of, backends_from
from galera_pilot.proxy.server_state import render_server_state

RUN = Path("/run/galera-pilot/proxy")
THREE = [ProxyBackend("node3", "127.0.0.4"), ProxyBackend("node1", "127.0.0.2"), ProxyBackend("node2", "127.0.0.3")]


def haproxy_check(text: str, tmp_path: Path) -> str:
    """Run the real `haproxy -c` on text; return its output, failing on an error or any warning."""
    binary = shutil.which("haproxy")
    assert binary, "haproxy missing: run scripts/setup.sh (installs Debian's haproxy)"
    path = tmp_path / "candidate.cfg"
    path.write_text(text)
    # HAProxyProcess writes the state file before it starts HAProxy; without one, -c warns.
    state_file = next(line.split()[1] for line in text.splitlines() if line.strip().startswith("server-state-file"))
    Path(state_file).parent.mkdir(parents=True, exist_ok=True)
    Path(state_file).write_text(render_server_state(text))
    result = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Starting servers DOWN from the state file is the point of it; any other warning is a defect.
    unexpected = [line for line in output.splitlines()
                  if ("[WARNING]" in line and "is DOWN, changed from server-state" not in line) or "[ALERT]" in line]
    assert not unexpected, output
    return output


def section(text: str, header: str) -> list[str]:
    """The stripped lines of one section (`backend writer`, `global`, ...), header excluded."""
    lines = text.splitlines()
    start = lines.index(header) + 1
    body = []
    for line in lines[start:]:
        if not line.startswith(" "):
            break
        body.append(line.strip())
    return body


# ---- the rendered text -------------------------------------------------------------------------------


def test_every_member_is_a_server_in_both_backends_sorted_by_name() -> None:
    text = render_haproxy_config(ProxySettings(), THREE, RUN)
    for backend in ("writer", "reader"):
        servers = [line for line in section(text, f"backend {backend}") if line.startswith("server ")]
        assert servers == [
            "server node1 127.0.0.2:3306 check port 8008",
            "server node2 127.0.0.3:3306 check port 8008",
            "server node3 127.0.0.4:3306 check port 8008",
        ]


def test_health_checks_ask_each_agent_for_its_role() -> None:
    text = render_haproxy_config(ProxySettings(), THREE, RUN)
    writer, reader = section(text, "backend writer"), section(text, "backend reader")
    assert writer[:3] == ["option httpchk", "http-check send meth OPTIONS uri /writer", "http-check expect status 200"]
    assert reader[:4] == ["balance leastconn", "option httpchk", "http-check send meth OPTIONS uri /read",
                          "http-check expect status 200"]
    assert not any(line.startswith("balance") for line in writer)
    defaults = section(text, "defaults")
    assert ("default-server inter 200ms fastinter 100ms downinter 200ms rise 1 fall 2 "
            "on-marked-down shutdown-sessions") in defaults
    assert "timeout check 400ms" in defaults


def test_defaults_suit_long_database_sessions() -> None:
    defaults = section(render_haproxy_config(ProxySettings(), THREE, RUN), "defaults")
    assert defaults[0] == "mode tcp"
    assert {"timeout connect 1000ms", "timeout client 28800s", "timeout server 28800s"} <= set(defaults)
    assert {"option clitcpka", "option srvtcpka"} <= set(defaults)


def test_global_section_is_made_for_master_worker_reloads() -> None:
    lines = section(render_haproxy_config(ProxySettings(), THREE, Path("/srv/p/run")), "global")
    assert "master-worker" in lines
    assert "pidfile /srv/p/run/haproxy.pid" in lines
    assert "stats socket /srv/p/run/admin.sock mode 600 level admin expose-fd listeners" in lines
    assert "daemon" not in lines
    assert "server-state-file /srv/p/run/server-state" in lines
    assert "load-server-state-from-file global" in section(render_haproxy_config(ProxySettings(), THREE, RUN),
                                                          "defaults")
    assert not any(line.startswith("hard-stop-after") for line in lines)
    limited = render_haproxy_config(ProxySettings(hard_stop_after_s=3600), THREE, RUN)
    assert "hard-stop-after 3600s" in section(limited, "global")
    assert not any(line.startswith("nbthread") for line in lines)
    assert "nbthread 1" in section(render_haproxy_config(ProxySettings(nbthread=1), THREE, RUN), "global")


def test_binds_are_configurable() -> None:
    settings = ProxySettings(writer_bind="10.0.0.5:4306", reader_bind="*:4307")
    text = render_haproxy_config(settings, THREE, RUN)
    assert section(text, "frontend writer") == ["bind 10.0.0.5:4306", "default_backend writer"]
    assert section(text, "frontend reader") == ["bind :4307", "default_backend reader"]
    default = render_haproxy_config(ProxySettings(), THREE, RUN)
    assert section(default, "frontend writer")[0] == "bind 127.0.0.1:3306"
    assert section(default, "frontend reader")[0] == "bind 127.0.0.1:3307"


def test_ports_come_from_each_member() -> None:
    backends = [ProxyBackend("a", "db-a.example", client_port=13306, api_port=18008)]
    text = render_haproxy_config(ProxySettings(), backends, RUN)
    assert "server a db-a.example:13306 check port 18008" in section(text, "backend writer")


def test_same_membership_renders_the_same_text_whatever_the_order() -> None:
    first = render_haproxy_config(ProxySettings(), THREE, RUN)
    assert render_haproxy_config(ProxySettings(), list(reversed(THREE)), RUN) == first
    assert render_haproxy_config(ProxySettings(), iter(sorted(THREE, key=lambda b: b.address)), RUN) == first
    grown = render_haproxy_config(ProxySettings(), [*THREE, ProxyBackend("node4", "127.0.0.5")], RUN)
    assert grown != first
    moved = render_haproxy_config(ProxySettings(), [*THREE[:2], ProxyBackend("node2", "127.0.0.9")], RUN)
    assert moved != first


def test_check_timings_derive_from_the_interval() -> None:
    settings = ProxySettings(check_interval_ms=500)
    assert (settings.fastinter_ms, settings.downinter_ms, settings.timeout_check_ms) == (250, 500, 1000)
    explicit = ProxySettings(check_interval_ms=500, check_fastinter_ms=50, check_downinter_ms=2000,
                             check_timeout_ms=300, rise=2, fall=3)
    text = render_haproxy_config(explicit, THREE, RUN)
    assert ("default-server inter 500ms fastinter 50ms downinter 2000ms rise 2 fall 3 "
            "on-marked-down shutdown-sessions") in section(text, "defaults")
    assert "timeout check 300ms" in section(text, "defaults")


@pytest.mark.parametrize(("settings", "backends"), [
    (ProxySettings(), []),
    (ProxySettings(), THREE[:1]),
    (ProxySettings(), THREE),
    (ProxySettings(writer_bind="*:13306", reader_bind="0.0.0.0:13307", check_interval_ms=1000),
     [ProxyBackend(f"node{i}", f"127.0.0.{i + 1}", 3306 + i, 8008 + i) for i in range(1, 8)]),
    (ProxySettings(writer_bind="localhost:23306", reader_bind="127.0.0.1:23307", hard_stop_after_s=60, nbthread=1),
     [ProxyBackend("db_1", "localhost", 3306, 8008), ProxyBackend("db-2", "127.0.0.3")]),
], ids=["no-members", "one", "three", "seven-wildcard-binds", "host-names"])
def test_every_rendered_config_passes_haproxy_check(settings: ProxySettings, backends: list[ProxyBackend],
                                                     tmp_path: Path) -> None:
    text = render_haproxy_config(settings, backends, tmp_path / "run")
    assert "Configuration file is valid" in haproxy_check(text, tmp_path)
    HaproxyProcess(tmp_path / "haproxy.cfg", tmp_path / "run").validate(text)  # the adapter agrees


def test_validate_reports_haproxys_own_error(tmp_path: Path) -> None:
    text = render_haproxy_config(ProxySettings(), THREE, tmp_path).replace("mode tcp", "mode tcp\n    colour blue")
    process = HaproxyProcess(tmp_path / "haproxy.cfg", tmp_path)
    with pytest.raises(PilotError) as raised:
        process.validate(text)
    message = str(raised.value)
    assert message.startswith("haproxy refused the configuration:")
    assert "unknown keyword 'colour' in 'defaults' section" in message and "<candidate config>" in message
    assert list(tmp_path.iterdir()) == [], "validate leaves neither a candidate nor a config file behind"


def test_a_missing_binary_is_named(tmp_path: Path) -> None:
    process = HaproxyProcess(tmp_path / "haproxy.cfg", tmp_path, binary="haproxy-that-is-not-installed")
    with pytest.raises(PilotError, match="haproxy-that-is-not-installed not found"):
        process.validate("global\n")


# ---- refusing what cannot be rendered safely ---------------------------------------------------------


@pytest.mark.parametrize(("args", "fragment"), [
    (("node1\n    server evil 1.2.3.4:1", "127.0.0.2"), "cannot be used as an HAProxy server name"),
    (("node 1", "127.0.0.2"), "cannot be used as an HAProxy server name"),
    (("node1", "::1"), "IPv6 addresses are not supported"),
    (("node1", "127.0.0.2 backup"), "neither an IPv4 address nor a host name"),
    (("node1", "127.0.0.2", 0), "client_port 0 is not a TCP port"),
    (("node1", "127.0.0.2", 3306, 70000), "api_port 70000 is not a TCP port"),
])
def test_bad_members_are_refused(args: tuple, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ProxyBackend(*args)


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"writer_bind": "3306"}, "writer_bind: '3306' must look like ADDRESS:PORT"),
    ({"reader_bind": "127.0.0.1:99999"}, "reader_bind: port 99999 is out of range"),
    ({"writer_bind": "127.0.0.1:3307"}, "must differ"),
    ({"check_interval_ms": 0}, "check_interval_ms must be at least 1"),
    ({"fall": 0}, "fall must be at least 1"),
    ({"check_timeout_ms": -5}, "check_timeout_ms must be at least 1"),
])
def test_bad_settings_are_refused(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        ProxySettings(**kwargs)


@pytest.mark.parametrize(("run_dir", "fragment"), [
    (Path("relative/run"), "must be an absolute path"),
    (Path("/srv/my proxy"), "contains a space"),
    (Path("/" + "x" * 100), "too long for a unix socket path"),
])
def test_bad_run_dirs_are_refused(run_dir: Path, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        render_haproxy_config(ProxySettings(), THREE, run_dir)


def test_duplicate_member_names_are_refused() -> None:
    with pytest.raises(ValueError, match="repeated: node1"):
        render_haproxy_config(ProxySettings(), [*THREE, ProxyBackend("node1", "127.0.0.9")], RUN)


def test_parse_bind() -> None:
    assert parse_bind("127.0.0.1:3306") == ("127.0.0.1", 3306)
    assert parse_bind("*:3306") == parse_bind(":3306") == parse_bind("0.0.0.0:3306") == ("", 3306)
    assert parse_bind("db.example:3306") == ("db.example", 3306)


# ---- from the DCS to backends ------------------------------------------------------------------------


def test_api_port_comes_from_the_api_url() -> None:
    assert api_port_of("http://127.0.0.2:18008") == 18008
    assert api_port_of("http://127.0.0.2") == 8008
    assert api_port_of("") == 8008
    assert api_port_of("http://127.0.0.2:notaport") == 8008


def test_backends_are_the_roster_and_the_live_members() -> None:
    cluster = Cluster(
        members={
            "node1": Member("node1", "127.0.0.2", api_url="http://127.0.0.2:8008"),
            # node2 moved: its live record wins over the roster entry.
            "node2": Member("node2", "127.0.0.30", api_url="http://127.0.0.30:9008", client_port=4306),
            "node4": Member("node4", "127.0.0.5", api_url="http://127.0.0.5:8008"),  # not in the roster yet
        },
        roster={
            "node1": RosterEntry("node1", "127.0.0.2", "http://127.0.0.2:8008"),
            "node2": RosterEntry("node2", "127.0.0.3", "http://127.0.0.3:8008"),
            "node3": RosterEntry("node3", "127.0.0.4", "http://127.0.0.4:8008"),  # down: no member key
        },
    )
    backends, skipped = backends_from(cluster)
    assert skipped == []
    assert backends == [
        ProxyBackend("node1", "127.0.0.2", 3306, 8008, api_tls=False),
        ProxyBackend("node2", "127.0.0.30", 4306, 9008, api_tls=False),
        ProxyBackend("node3", "127.0.0.4", 3306, 8008, api_tls=False),
        ProxyBackend("node4", "127.0.0.5", 3306, 8008, api_tls=False),
    ]


def test_a_member_that_cannot_be_a_server_is_skipped_with_a_reason() -> None:
    cluster = Cluster(members={"node1": Member("node1", "127.0.0.2"), "bad": Member("bad", "fe80::1")})
    backends, skipped = backends_from(cluster)
    assert [b.name for b in backends] == ["node1"]
    assert len(skipped) == 1 and skipped[0].startswith("bad (") and "IPv6" in skipped[0]


# ---- the proxy configuration file --------------------------------------------------------------------


def test_proxy_config_defaults_and_settings(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    path.write_text(yaml.safe_dump({"dcs": "sqlite:///var/lib/galera-pilot/dcs.sqlite"}))
    config = load_proxy_config(path)
    assert config == ProxyConfig(dcs="sqlite:///var/lib/galera-pilot/dcs.sqlite")
    assert (config.cluster_name, config.run_dir) == ("galera", Path("/run/galera-pilot/proxy"))
    assert config.settings() == ProxySettings()
    custom = parse_proxy_config({"dcs": "sqlite:///x.sqlite", "writer_bind": "*:4306", "check_interval_ms": 100})
    assert custom.settings() == ProxySettings(writer_bind="*:4306", check_interval_ms=100)


@pytest.mark.parametrize(("data", "fragments"), [
    ({"dcs": "sqlite:///x", "colour": "blue"}, ["field 'colour': unknown field"]),
    ({}, ["field 'dcs': required field is missing"]),
    ({"dcs": "sqlite:///x", "writer_bind": "localhost"}, ["field 'writer_bind'", "must look like ADDRESS:PORT"]),
    ({"dcs": "sqlite:///x", "reader_bind": "127.0.0.1:3306"}, ["writer_bind and reader_bind must differ"]),
    ({"dcs": "sqlite:///x", "run_dir": "run"}, ["field 'run_dir'", "must be an absolute path"]),
    ({"dcs": "sqlite:///x", "check_interval_ms": 10}, ["field 'check_interval_ms'", "greater than or equal to 50"]),
    ({"dcs": "sqlite:///x", "cluster_name": "no spaces"}, ["field 'cluster_name'"]),
    (["dcs"], ["expected a mapping of fields at the top level"]),
])
def test_proxy_config_errors_name_the_field(data: object, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_proxy_config(data, "proxy.yaml")
    for fragment in fragments:
        assert fragment in str(raised.value), str(raised.value)
    assert "proxy.yaml" in str(raised.value)


def test_proxy_config_file_problems_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_proxy_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("dcs: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_proxy_config(tmp_path / "bad.yaml")


# ---- the manager's cycle, against a stand-in process (the real one is in tests/integration) ----------


class FakeDCS:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster: Cluster | None = cluster

    def snapshot(self, with_history: bool = True) -> Cluster:
        if self.cluster is None:
            raise DCSError("DCS file /x: database is locked")
        return self.cluster


class FakeProcess:
    """Records what the manager asks of HAProxy; `refuse` makes reloads fail like haproxy -c would."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.running = False
        self.calls: list[str] = []
        self.refuse = False
        self.time_out = False

    def is_running(self) -> bool:
        return self.running

    def start(self, text: str) -> int:
        self.calls.append("start")
        self.config_path.write_text(text)
        self.running = True
        return 4242

    def reload(self, text: str) -> None:
        self.calls.append("reload")
        if self.refuse:
            raise ConfigRefused("haproxy refused the configuration:\n[ALERT] nope")
        if self.time_out:
            raise PilotError("haproxy did not finish reloading within 10 s")
        self.config_path.write_text(text)

    def stop(self) -> None:
        self.calls.append("stop")
        self.running = False

    def cut_stale_sessions(self) -> list[str]:
        return []

    def show_proc(self) -> ProcState:
        return ProcState(0, 0, (1,))


def cluster_of(*names: str) -> Cluster:
    return Cluster(members={n: Member(n, f"127.0.0.{i + 2}", api_url=f"http://127.0.0.{i + 2}:8008")
                            for i, n in enumerate(names)})


def test_manager_starts_reloads_only_on_change_and_keeps_a_refused_config(tmp_path: Path) -> None:
    dcs = FakeDCS(cluster_of("node1", "node2"))
    process = FakeProcess(tmp_path / "haproxy.cfg")
    manager = ProxyManager(dcs, ProxySettings(), tmp_path, process=process)  # type: ignore[arg-type]
    assert manager.run_cycle() == "haproxy started (pid 4242): members node1,node2"
    assert manager.run_cycle() == "haproxy config unchanged: members node1,node2"
    dcs.cluster = cluster_of("node1", "node2", "node3")
    assert manager.run_cycle() == "haproxy reloaded: members node1,node2,node3"
    assert manager.run_cycle() == "haproxy config unchanged: members node1,node2,node3"
    assert process.calls == ["start", "reload"]
    process.refuse = True
    dcs.cluster = cluster_of("node1", "node2", "node3", "node4")
    assert manager.run_cycle().startswith("haproxy reload refused, still serving the previous config: haproxy "
                                          "refused the configuration")
    assert manager.run_cycle() == ("haproxy keeps its previous config; the one for members node1,node2,node3,node4 "
                                   "was refused")
    assert process.calls == ["start", "reload", "reload"], "a refused text is not retried every second"
    dcs.cluster = None
    assert manager.run_cycle() == "DCS unavailable, keeping haproxy's current config: DCS file /x: database is locked"
    assert manager.next_wait() == 1.0
    dcs.cluster = cluster_of("node1")
    process.running = False  # it died under us
    assert manager.run_cycle() == "haproxy was no longer running; haproxy started (pid 4242): members node1"


def test_new_certificates_are_served_only_after_a_reload_that_took_them(tmp_path: Path) -> None:
    """Found by the CA rotation test: a certificate change keeps the text, so after a refused reload
    the next cycle read "unchanged" and the manager said it served certificates HAProxy never loaded;
    a later good bundle was then never reloaded (its text was the refused one)."""
    dcs = FakeDCS(cluster_of("node1", "node2"))
    process = FakeProcess(tmp_path / "haproxy.cfg")
    manager = ProxyManager(dcs, ProxySettings(), tmp_path, process=process)  # type: ignore[arg-type]
    manager.run_cycle()
    assert manager.serves_current_certificates()
    manager.reload_certificates()  # a torn or broken bundle: HAProxy refuses it
    assert not manager.serves_current_certificates()
    process.refuse = True
    assert manager.run_cycle().startswith("haproxy reload refused")
    for _ in range(3):
        manager.run_cycle()
        assert not manager.serves_current_certificates(), "a refused reload never counts as served"
    assert process.calls == ["start", "reload"], "the refused one is not retried every second"
    process.refuse = False
    manager.reload_certificates()  # the whole bundle is there now
    assert manager.run_cycle() == "haproxy reloaded (new check certificates): members node1,node2"
    assert manager.serves_current_certificates()
    assert manager.run_cycle() == "haproxy config unchanged: members node1,node2"
    assert process.calls == ["start", "reload", "reload"]
    manager.reload_certificates()
    process.time_out = True  # not a refusal: the next cycle tries again
    assert manager.run_cycle().startswith("haproxy reload failed, tried again next cycle")
    assert not manager.serves_current_certificates()
    process.time_out = False
    assert manager.run_cycle() == "haproxy reloaded (new check certificates): members node1,node2"
    assert manager.serves_current_certificates()
    manager.reload_certificates()
    process.running = False  # died meanwhile: a start takes the new files too
    assert manager.run_cycle().startswith("haproxy was no longer running; haproxy started")
    assert manager.serves_current_certificates()


def test_a_new_manager_adopts_the_running_config_without_reloading(tmp_path: Path) -> None:
    dcs = FakeDCS(cluster_of("node1", "node2"))
    process = FakeProcess(tmp_path / "haproxy.cfg")
    ProxyManager(dcs, ProxySettings(), tmp_path, process=process).run_cycle()  # type: ignore[arg-type]
    again = ProxyManager(dcs, ProxySettings(), tmp_path, process=process)  # type: ignore[arg-type]
    assert again.run_cycle() == "haproxy config unchanged: members node1,node2"
    assert process.calls == ["start"]


def test_without_the_dcs_a_stopped_haproxy_starts_from_its_last_config(tmp_path: Path) -> None:
    dcs = FakeDCS(cluster_of("node1"))
    process = FakeProcess(tmp_path / "haproxy.cfg")
    manager = ProxyManager(dcs, ProxySettings(), tmp_path, process=process)  # type: ignore[arg-type]
    dcs.cluster = None
    assert manager.run_cycle().startswith("DCS unavailable and no earlier haproxy config to start from")
    dcs.cluster = cluster_of("node1")
    manager.run_cycle()
    process.running = False  # haproxy died, and the DCS is down too
    dcs.cluster = None
    assert manager.run_cycle().startswith("DCS unavailable; started haproxy (pid 4242) with its last config")
    assert "server node1 127.0.0.2:3306" in process.config_path.read_text()


def test_checks_over_https_verify_the_agents_with_the_proxy_certificate(tmp_path: Path) -> None:
    """check-ssl on the checks only (MySQL sessions pass through), verify required against the node CA."""
    settings = ProxySettings(check_ca_file="/b/ca.pem", check_cert_file="/r/check-client.pem")
    text = render_haproxy_config(settings, [ProxyBackend("node1", "127.0.0.2", 3306, 8008)], tmp_path)
    assert ("server node1 127.0.0.2:3306 check port 8008 check-ssl verify required ca-file /b/ca.pem "
            "crt /r/check-client.pem") in text
    assert " ssl " not in text.replace("check-ssl", "")


def test_a_plaintext_agent_is_checked_over_http_by_a_tls_proxy(tmp_path: Path) -> None:
    """While `tls enable` moves agents one at a time, each is checked as it answers (its api_url)."""
    cluster = Cluster(members={
        "node1": Member(name="node1", address="127.0.0.2", api_url="http://127.0.0.2:8008"),
        "node2": Member(name="node2", address="127.0.0.3", api_url="https://127.0.0.3:8008")})
    backends, _ = backends_from(cluster)
    assert [(b.name, b.api_tls) for b in backends] == [("node1", False), ("node2", True)]
    settings = ProxySettings(check_ca_file="/b/ca.pem", check_cert_file="/r/check-client.pem")
    text = render_haproxy_config(settings, backends, tmp_path)
    assert "server node1 127.0.0.2:3306 check port 8008\n" in text
    assert "server node2 127.0.0.3:3306 check port 8008 check-ssl verify required" in text


def test_a_tls_proxy_without_its_bundle_is_told_what_to_do(tmp_path: Path) -> None:
    from galera_pilot.proxy.check_tls import ProxyTls, prepare_check_tls

    with pytest.raises(ConfigError, match=r"field 'tls.bundle'.*pki issue proxy"):
        prepare_check_tls(ProxyTls(), tmp_path)
    assert prepare_check_tls(ProxyTls(enabled=False), tmp_path) is None
