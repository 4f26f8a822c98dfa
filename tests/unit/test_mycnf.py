"""mariadb/mycnf.py: the rendered my.cnf, parsed back with configparser."""

from __future__ import annotations

import configparser
import os
from collections.abc import Sequence

import pytest
from unit_helpers import make_config

from galera_pilot.config import NodeConfig, TlsSettings
from galera_pilot.credentials import Credentials
from galera_pilot.errors import ConfigError
from galera_pilot.mariadb.mycnf import provider_options, render_mycnf, sst_receive_address, with_tls_sections

CREDENTIALS = Credentials("pilot_admin", "admin-secret", "pilot_sst", "sst-Secret_123")


def parse(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(allow_no_value=True, strict=False, interpolation=None)
    parser.optionxform = str  # keep option names as written
    parser.read_string(text)
    return parser


def render(config: NodeConfig, peers: Sequence[str] = ()) -> configparser.ConfigParser:
    return parse(render_mycnf(config, CREDENTIALS, peers))


def provider_dict(value: str) -> dict[str, str]:
    assert value.startswith('"') and value.endswith('"')
    return dict(item.split("=", 1) for item in value[1:-1].split(";"))


@pytest.fixture
def node3() -> NodeConfig:
    return make_config(name="node3", address="127.0.0.4", base_dir="/srv/n3", cluster_name="prod",
                       ports={"client": 3310, "galera": 4570, "ist": 4571, "sst": 4450, "api": 8010})


def test_sections(node3: NodeConfig) -> None:
    assert render(node3).sections() == ["mariadbd", "sst", "client"]


def test_node_address_everywhere(node3: NodeConfig) -> None:
    cnf = render(node3)
    server = cnf["mariadbd"]
    assert server["bind-address"] == "127.0.0.4"
    assert server["wsrep_node_address"] == "127.0.0.4"
    assert server["port"] == "3310"
    options = provider_dict(server["wsrep_provider_options"])
    assert options["gmcast.listen_addr"] == "tcp://127.0.0.4:4570"
    assert options["ist.recv_addr"] == "127.0.0.4:4571"
    assert options["pc.recovery"] == "TRUE"
    assert options["gcache.size"] == "128M"
    assert cnf["sst"]["sockopt"] == '",bind=127.0.0.4"'


def test_node_identity_and_paths(node3: NodeConfig) -> None:
    server = render(node3)["mariadbd"]
    assert server["wsrep_node_name"] == "node3"
    assert server["wsrep_cluster_name"] == "prod"
    assert server["wsrep_on"] == "ON"
    assert server["wsrep_provider"] == "/usr/lib/galera/libgalera_smm.so"
    assert server["datadir"] == "/srv/n3/data"
    assert server["socket"] == "/srv/n3/run/mariadbd.sock"
    assert server["pid-file"] == "/srv/n3/run/mariadbd.pid"
    assert server["log-error"] == "/srv/n3/log/mariadbd.err"
    assert server["binlog_format"] == "ROW"
    assert server["innodb_autoinc_lock_mode"] == "2"
    assert server["innodb_flush_log_at_trx_commit"] == "1"
    assert render(node3)["client"]["socket"] == "/srv/n3/run/mariadbd.sock"


def test_cluster_address_for_bootstrap_is_empty_gcomm(node3: NodeConfig) -> None:
    assert render(node3, ())["mariadbd"]["wsrep_cluster_address"] == "gcomm://"


def test_cluster_address_joins_peers(node3: NodeConfig) -> None:
    peers = ("127.0.0.2:4567", "127.0.0.3:4567")
    assert render(node3, peers)["mariadbd"]["wsrep_cluster_address"] == "gcomm://127.0.0.2:4567,127.0.0.3:4567"
    assert render(node3, ["10.0.0.1:4567"])["mariadbd"]["wsrep_cluster_address"] == "gcomm://10.0.0.1:4567"


@pytest.mark.parametrize(("method", "port"), [("mysqldump", "4450"), ("rsync", "4450"), ("mariabackup", "4450")])
def test_sst_receive_address(method: str, port: str) -> None:
    config = make_config(address="127.0.0.4", sst_method=method,
                         ports={"client": 3310, "galera": 4570, "ist": 4571, "sst": 4450, "api": 8010})
    server = render(config)["mariadbd"]
    assert server["wsrep_sst_method"] == method
    assert server["wsrep_sst_receive_address"] == f"127.0.0.4:{port}"
    assert sst_receive_address(config) == f"127.0.0.4:{port}"


def test_sst_auth_from_credentials(node3: NodeConfig) -> None:
    assert render(node3)["mariadbd"]["wsrep_sst_auth"] == "pilot_sst:sst-Secret_123"
    assert "admin-secret" not in render_mycnf(node3, CREDENTIALS, ())


def test_user_line_when_mariadbd_user_set() -> None:
    server = render(make_config(mariadbd_user="galera"))["mariadbd"]
    assert server["user"] == "galera"


def test_no_user_line_when_not_root_and_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "user" not in render(make_config())["mariadbd"]


def test_mysql_user_when_root_and_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert render(make_config())["mariadbd"]["user"] == "mysql"


def test_tuning_and_extra_options() -> None:
    config = make_config(mariadb={
        "innodb_buffer_pool_size": "1G", "innodb_log_file_size": "256M", "gcache_size": "2G",
        "innodb_flush_log_at_trx_commit": 2,
        "extra": {"max_connections": "500", "wsrep_slave_threads": "8", "log_bin": "mariadb-bin"},
    })
    server = render(config)["mariadbd"]
    assert server["innodb_buffer_pool_size"] == "1G"
    assert server["innodb_log_file_size"] == "256M"
    assert server["innodb_flush_log_at_trx_commit"] == "2"
    assert provider_dict(server["wsrep_provider_options"])["gcache.size"] == "2G"
    assert server["max_connections"] == "500"
    assert server["wsrep_slave_threads"] == "8"
    assert server["log_bin"] == "mariadb-bin"


def test_no_duplicate_options_without_extra(node3: NodeConfig) -> None:
    text = render_mycnf(node3, CREDENTIALS, ("127.0.0.2:4567",))
    strict = configparser.ConfigParser(allow_no_value=True, strict=True, interpolation=None)
    strict.optionxform = str
    strict.read_string(text)  # raises DuplicateOptionError on a repeated key
    assert strict["mariadbd"]["wsrep_node_name"] == "node3"


def test_header_names_the_node(node3: NodeConfig) -> None:
    assert render_mycnf(node3, CREDENTIALS, ()).splitlines()[0].startswith("# Generated by galera-pilot for node node3")


def test_provider_options_plain(node3: NodeConfig) -> None:
    plain = node3.model_copy(update={"tls": TlsSettings(enabled=False)})
    options = dict(item.split("=", 1) for item in provider_options(plain).split(";"))
    assert options == {"gmcast.listen_addr": "tcp://127.0.0.4:4570", "ist.recv_addr": "127.0.0.4:4571",
                       "gcache.size": "128M", "pc.recovery": "TRUE", "evs.join_retrans_period": "PT0.2S"}
    assert "ssl" not in render_mycnf(plain, CREDENTIALS, ()).replace("wsrep_sst", "")


def test_tls_reaches_galera_sst_clients_and_the_dump_client(node3: NodeConfig) -> None:
    """Replication strictly over TLS (no socket.dynamic), the SST stream with the node CA, TCP clients
    refused without TLS, and the mysqldump SST's client verifying the joiner."""
    run_tls = "/srv/n3/run/tls"
    options = dict(item.split("=", 1) for item in provider_options(node3).split(";"))
    assert options["socket.ssl_cert"] == f"{run_tls}/node.pem" and options["socket.ssl_key"] == f"{run_tls}/node.key"
    assert options["socket.ssl_ca"] == f"{run_tls}/ca.pem" and "socket.dynamic" not in options
    parsed = configparser.ConfigParser(allow_no_value=True, strict=True, interpolation=None)
    parsed.optionxform = str
    parsed.read_string(render_mycnf(node3, CREDENTIALS, ()))
    assert parsed["mariadbd"]["require_secure_transport"] == "ON"
    assert parsed["mariadbd"]["ssl_ca"] == f"{run_tls}/client-trust.pem"  # node CA + client CA
    assert parsed["sst"]["ssl-ca"] == f"{run_tls}/ca.pem" and parsed["sst"]["ssl-mode"] == "VERIFY_IDENTITY"
    assert "ssl-verify-server-cert" in parsed["client"] and parsed["client"]["ssl-ca"] == f"{run_tls}/ca.pem"
    rsync = node3.model_copy(update={"sst_method": "rsync"})
    parsed.read_string(render_mycnf(rsync, CREDENTIALS, ()))
    assert parsed["sst"]["ssl-mode"] == "VERIFY_CA"  # stunnel's VERIFY_IDENTITY pins the peer certificate


def test_join_retrans_period_is_rendered_in_iso_seconds() -> None:
    options = provider_options(make_config(mariadb={"join_retrans_period": 0.5}))
    assert dict(item.split("=", 1) for item in options.split(";"))["evs.join_retrans_period"] == "PT0.5S"


@pytest.mark.parametrize("key", ["wsrep_provider_options", "wsrep_node_name", "wsrep_cluster_name",
                                 "wsrep_sst_receive_address"])
def test_extra_cannot_override_rendered_wsrep_settings(key: str) -> None:
    try:
        config = make_config(mariadb={"extra": {key: "overridden"}})
    except ConfigError as error:
        assert "mariadb.extra" in str(error)
        return
    # Accepted: then galera-pilot's own value must still be the effective (last) one.
    assert render(config)["mariadbd"][key] != "overridden"


def test_ipv6_address_is_rejected_with_a_clear_error() -> None:
    # IPv6 would need [brackets] wherever a port follows (gcomm, IST, REST); refused until supported.
    with pytest.raises(ConfigError, match=r"field 'address'.*IPv6"):
        make_config(address="::1")


def test_mysqldump_receives_on_the_extra_port() -> None:
    # wsrep_sst_mysqldump refuses a local destination with the donor's own port; the joiner listens on
    # its extra port (the SST port) for the dump instead.
    config = make_config(address="127.0.0.4", sst_method="mysqldump",
                         ports={"client": 3310, "galera": 4570, "ist": 4571, "sst": 4450, "api": 8010})
    server = render(config)["mariadbd"]
    assert server["extra_port"] == "4450"
    assert "extra_port" not in render(make_config(address="127.0.0.4", sst_method="rsync"))["mariadbd"]


def migrating(config: NodeConfig, stage: str | None) -> NodeConfig:
    return config.model_copy(update={"tls": config.tls.model_copy(update={"migrating": stage})})


def test_tls_enable_steps_render_what_plaintext_peers_can_still_talk_to(node3: NodeConfig) -> None:
    """`tls enable`: step 1 has Galera over TLS accepting plaintext peers, and state transfers and clients
    as plaintext as the other nodes' (the SST scripts read ssl-* from [mariadbd] too); step 2 has state
    transfers and client TLS, plaintext clients still allowed; strict has neither dynamic nor plaintext."""
    first = render(migrating(node3, "galera"))
    assert provider_dict(first["mariadbd"]["wsrep_provider_options"])["socket.dynamic"] == "true"
    assert not any(key.startswith("ssl") for key in first["mariadbd"])
    assert "require_secure_transport" not in first["mariadbd"]
    assert not any(key.startswith("ssl") for key in first["sst"]) and "ssl-ca" not in first["client"]
    second = render(migrating(node3, "sst"))
    assert provider_dict(second["mariadbd"]["wsrep_provider_options"])["socket.dynamic"] == "true"
    assert second["mariadbd"]["ssl_cert"] and "require_secure_transport" not in second["mariadbd"]
    assert second["sst"]["ssl-mode"] == "VERIFY_IDENTITY" and second["client"]["ssl-ca"]
    strict = render(node3)
    assert "socket.dynamic" not in provider_dict(strict["mariadbd"]["wsrep_provider_options"])


def test_tls_sections_written_into_a_running_servers_file(node3: NodeConfig) -> None:
    """Step 2 rewrites each running server's my.cnf: [sst], [client] and the ssl_* lines become the next
    render's; everything the server was started with stays (its peers, its start position)."""
    running = render_mycnf(migrating(node3, "galera"), CREDENTIALS, ["127.0.0.2:4567"], "uuid:42")
    text = with_tls_sections(running, render_mycnf(migrating(node3, "sst"), CREDENTIALS, ()))
    parsed = parse(text)
    assert parsed["mariadbd"]["wsrep_cluster_address"] == "gcomm://127.0.0.2:4567"
    assert parsed["mariadbd"]["wsrep_start_position"] == "uuid:42"
    assert parsed["mariadbd"]["ssl_cert"] == "/srv/n3/run/tls/node.pem"
    assert parsed["sst"]["ssl-mode"] == "VERIFY_IDENTITY" and parsed["client"]["ssl-cert"]
    assert text.count("[sst]") == 1 and text.count("[client]") == 1
    with pytest.raises(ValueError, match="no \\[sst\\] section"):
        with_tls_sections("[mariadbd]\nport = 1\n", text)


def test_a_rebuild_names_its_donor_with_a_fallback(node3: NodeConfig) -> None:
    """`reinit`: the chosen donor first; the trailing comma lets Galera take another should it be unable."""
    rebuilt = parse(render_mycnf(node3, CREDENTIALS, ("127.0.0.2:4567",), sst_donor="node2"))
    assert rebuilt["mariadbd"]["wsrep_sst_donor"] == "node2,"
    assert "wsrep_sst_donor" not in render(node3, ("127.0.0.2:4567",))["mariadbd"]


def test_binlogs_for_point_in_time_recovery_give_every_node_the_same_gtids(node3: NodeConfig) -> None:
    assert "log_bin" not in render(node3)["mariadbd"], "off by default"
    node3.backup.binlogs.archive = True
    node3.backup.binlogs.domain_id = 7
    server = render(node3)["mariadbd"]
    assert (server["log_bin"], server["log_slave_updates"], server["server_id"], server["wsrep_gtid_mode"],
            server["wsrep_gtid_domain_id"], server["binlog_expire_logs_seconds"]) == \
        ("mariadb-bin", "ON", "1", "ON", "7", str(24 * 3600))
    other = make_config(name="node1", address="127.0.0.2", base_dir="/srv/n1", cluster_name="prod")
    other.backup.binlogs.archive = True
    other.backup.binlogs.domain_id = 7
    mine, theirs = int(server["gtid_domain_id"]), int(render(other)["mariadbd"]["gtid_domain_id"])
    assert mine != theirs and 7 not in (mine, theirs), "a local domain of its own, never the cluster's"
    assert mine == int(render(node3)["mariadbd"]["gtid_domain_id"]), "the same on every start"


def test_four_appliers_unless_the_settings_say_otherwise() -> None:
    """Parallel appliers by default (a rejoining node catches up by IST in a tenth of the time); a node's
    or the cluster's own value wins, and appears once."""
    assert render(make_config())["mariadbd"]["wsrep_slave_threads"] == "4"
    text = render_mycnf(make_config(mariadb={"extra": {"wsrep-slave-threads": "16"}}), CREDENTIALS, ())
    assert parse(text)["mariadbd"]["wsrep-slave-threads"] == "16"
    assert text.count("slave-threads") + text.count("slave_threads") == 1
