"""config.py: loading, validation messages that name the field, and dump/parse round trips."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from unit_helpers import BASE_CONFIG, config_data, make_config

from galera_pilot.cli.main import main
from galera_pilot.config import NodeConfig, dump_config, load_config, parse_config
from galera_pilot.errors import ConfigError, PilotError


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def config_error(data: Any) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "node.yaml")
    return str(info.value)


# ---- happy path ---------------------------------------------------------------------------------------


def test_load_config_fills_defaults(tmp_path: Path) -> None:
    config = load_config(write_yaml(tmp_path / "node.yaml", BASE_CONFIG))
    assert config.name == "node1"
    assert config.address == "127.0.0.2"
    assert config.cluster_name == "galera"
    assert config.sst_method == "mariabackup"
    assert config.use_seed is True
    assert config.mariadbd_user is None
    assert (config.ports.client, config.ports.galera, config.ports.ist, config.ports.sst, config.ports.api) == (
        3306, 4567, 4568, 4444, 8008)
    assert config.binaries.mariadbd == "/usr/sbin/mariadbd"
    assert config.binaries.galera_provider == "/usr/lib/galera/libgalera_smm.so"
    assert (config.timing.loop_wait, config.timing.member_ttl, config.timing.bootstrap_lock_ttl) == (1.0, 10.0, 30.0)
    assert config.mariadb.innodb_flush_log_at_trx_commit == 1
    assert config.mariadb.extra == {}
    assert config.base_dir == Path("/srv/galera/node1")
    assert config.credentials_file == Path("/etc/galera-pilot/credentials.yaml")


def test_derived_paths_live_under_base_dir() -> None:
    config = make_config(base_dir="/srv/n2", address="127.0.0.3", ports={"api": 9000})
    assert config.data_dir == Path("/srv/n2/data")
    assert config.seed_dir == Path("/srv/n2/seed")
    assert config.socket == Path("/srv/n2/run/mariadbd.sock")
    assert config.pid_file == Path("/srv/n2/run/mariadbd.pid")
    assert config.mycnf == Path("/srv/n2/my.cnf")
    assert config.error_log == Path("/srv/n2/log/mariadbd.err")
    assert config.agent_log == Path("/srv/n2/log/agent.log")
    assert config.api_url == "https://127.0.0.3:9000"
    assert config.tls_bundle == Path("/srv/n2/tls") and config.server_tls_dir == Path("/srv/n2/run/tls")


def test_nested_sections_are_read(tmp_path: Path) -> None:
    data = config_data(
        cluster_name="prod-eu",
        sst_method="rsync",
        mariadbd_user="mysql",
        ports={"client": 3307, "galera": 5567},
        timing={"loop_wait": 0.5, "member_ttl": 3},
        mariadb={"innodb_flush_log_at_trx_commit": 2, "extra": {"max_connections": "500"}},
    )
    config = load_config(write_yaml(tmp_path / "node.yaml", data))
    assert config.cluster_name == "prod-eu"
    assert config.sst_method == "rsync"
    assert config.ports.client == 3307 and config.ports.galera == 5567 and config.ports.ist == 4568
    assert config.timing.loop_wait == 0.5 and config.timing.member_ttl == 3.0
    assert config.mariadb.innodb_flush_log_at_trx_commit == 2
    assert config.mariadb.extra == {"max_connections": "500"}
    assert config.effective_mariadbd_user == "mysql"


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "db-1.example.org", "node7"])
def test_valid_addresses(address: str) -> None:
    assert make_config(address=address).address == address


def test_effective_mariadbd_user_depends_on_root(monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config()
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert config.effective_mariadbd_user == "mysql"
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert config.effective_mariadbd_user is None
    assert make_config(mariadbd_user="galera").effective_mariadbd_user == "galera"


# ---- invalid configurations name the field --------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ports": {"client": 70000}}, "field 'ports.client'"),
        ({"ports": {"galera": 0}}, "field 'ports.galera'"),
        ({"ports": {"api": "http"}}, "field 'ports.api'"),
        ({"name": "1node"}, "field 'name'"),
        ({"name": "node 1"}, "field 'name'"),
        ({"name": "x" * 64}, "field 'name'"),
        ({"cluster_name": "a/b"}, "field 'cluster_name'"),
        ({"address": "not an address!"}, "field 'address'"),
        ({"address": ""}, "field 'address'"),
        ({"sst_method": "xtrabackup"}, "field 'sst_method'"),
        ({"use_seed": "perhaps"}, "field 'use_seed'"),
        ({"timing": {"loop_wait": 0}}, "field 'timing.loop_wait'"),
        ({"timing": {"bootstrap_lock_ttl": -1}}, "field 'timing.bootstrap_lock_ttl'"),
        ({"mariadb": {"innodb_flush_log_at_trx_commit": 3}}, "field 'mariadb.innodb_flush_log_at_trx_commit'"),
        ({"mariadb": {"extra": {"max_connections": 5}}}, "field 'mariadb.extra.max_connections'"),
    ],
)
def test_invalid_value_names_the_field(overrides: dict[str, Any], field: str) -> None:
    message = config_error(config_data(**overrides))
    assert "node.yaml" in message
    assert field in message


def test_unknown_field_is_reported_as_such() -> None:
    message = config_error(config_data(bogus=1))
    assert "field 'bogus': unknown field" in message


def test_unknown_nested_field_is_reported_with_its_path() -> None:
    message = config_error(config_data(ports={"mysql": 3306}))
    assert "field 'ports.mysql': unknown field" in message


@pytest.mark.parametrize("missing", ["name", "address", "dcs", "base_dir", "credentials_file"])
def test_missing_required_field(missing: str) -> None:
    data = config_data()
    del data[missing]
    message = config_error(data)
    assert f"field '{missing}': required field is missing" in message


def test_every_problem_is_listed() -> None:
    data = config_data(name="9", ports={"client": -1}, bogus=True)
    del data["address"]
    message = config_error(data)
    for field in ("field 'name'", "field 'ports.client'", "field 'bogus'", "field 'address'"):
        assert field in message


@pytest.mark.parametrize("field", ["base_dir", "credentials_file"])
def test_relative_paths_are_rejected(field: str) -> None:
    message = config_error(config_data(**{field: "relative/dir"}))
    assert f"field '{field}'" in message
    assert "absolute" in message
    assert "relative/dir" in message


def test_port_clash_names_ports() -> None:
    message = config_error(config_data(ports={"client": 4567}))  # the default galera port
    assert "field 'ports'" in message
    assert "must all differ" in message


@pytest.mark.parametrize(("loop_wait", "member_ttl"), [(1.0, 2.0), (1.0, 1.5), (5.0, 10.0)])
def test_member_ttl_must_exceed_twice_loop_wait(loop_wait: float, member_ttl: float) -> None:
    message = config_error(config_data(timing={"loop_wait": loop_wait, "member_ttl": member_ttl}))
    assert "field 'timing'" in message
    assert "member_ttl" in message


def test_member_ttl_just_above_twice_loop_wait_is_fine() -> None:
    assert make_config(timing={"loop_wait": 1.0, "member_ttl": 2.01}).timing.member_ttl == 2.01


@pytest.mark.parametrize(
    "key", ["wsrep_cluster_address", "wsrep-cluster-address", "bind_address", "bind-address", "datadir",
            "wsrep_sst_auth", "wsrep_provider", "user", "port", "socket", "wsrep_on", "wsrep_node_address"],
)
def test_extra_cannot_set_managed_keys(key: str) -> None:
    message = config_error(config_data(mariadb={"extra": {"max_connections": "10", key: "x"}}))
    assert "field 'mariadb.extra'" in message
    assert key in message
    assert "max_connections" not in message


def test_extra_accepts_unmanaged_keys() -> None:
    config = make_config(mariadb={"extra": {"wsrep_slave_threads": "4", "max-connections": "100"}})
    assert config.mariadb.extra == {"wsrep_slave_threads": "4", "max-connections": "100"}


@pytest.mark.parametrize("data", [None, [], ["name", "node1"], "name: node1", 42])
def test_top_level_must_be_a_mapping(data: Any) -> None:
    message = config_error(data)
    assert "expected a mapping" in message
    assert "node.yaml" in message


def test_empty_file_is_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(path)


def test_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "node.yaml"
    path.write_text("name: node1\nports: {client: 3306\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "not valid YAML" in str(info.value)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"cannot read configuration {path}" in str(info.value)


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_config(tmp_path)


def test_config_error_is_a_pilot_error() -> None:
    # The CLI prints PilotErrors without a traceback; config mistakes must be among them.
    with pytest.raises(PilotError):
        parse_config({})


# ---- dump / parse round trip ------------------------------------------------------------------------------


def test_dump_config_round_trips_defaults() -> None:
    config = make_config()
    assert parse_config(yaml.safe_load(dump_config(config))) == config


def test_dump_config_round_trips_through_a_file(tmp_path: Path) -> None:
    config = make_config(cluster_name="c2", sst_method="mysqldump", use_seed=False, mariadbd_user="mysql",
                         ports={"client": 13306, "galera": 14567, "ist": 14568, "sst": 14444, "api": 18008},
                         timing={"loop_wait": 0.25, "member_ttl": 1.0, "bootstrap_lock_ttl": 5},
                         mariadb={"gcache_size": "1G", "extra": {"max_connections": "20"}})
    path = tmp_path / "dumped.yaml"
    path.write_text(dump_config(config))
    assert load_config(path) == config


names = st.from_regex(r"\A[A-Za-z][A-Za-z0-9_-]{0,20}\Z")
ports = st.lists(st.integers(1, 65535), min_size=5, max_size=5, unique=True)


@settings(max_examples=60, deadline=None)
@given(
    name=names,
    cluster_name=names,
    port_values=ports,
    loop_wait=st.floats(0.01, 20, allow_nan=False),
    ttl_factor=st.floats(2.01, 10, allow_nan=False),
    sst_method=st.sampled_from(["mariabackup", "rsync", "mysqldump"]),
    use_seed=st.booleans(),
    flush=st.sampled_from([0, 1, 2]),
    extra=st.dictionaries(st.from_regex(r"\Amax_[a-z_]{1,10}\Z"), st.text(max_size=10), max_size=3),
)
def test_dump_parse_round_trip_property(name: str, cluster_name: str, port_values: list[int], loop_wait: float,
                                        ttl_factor: float, sst_method: str, use_seed: bool, flush: int,
                                        extra: dict[str, str]) -> None:
    member_ttl = min(loop_wait * ttl_factor, 600.0)
    if member_ttl <= 2 * loop_wait:
        return
    data = config_data(
        name=name, cluster_name=cluster_name, sst_method=sst_method, use_seed=use_seed,
        ports=dict(zip(["client", "galera", "ist", "sst", "api"], port_values, strict=True)),
        timing={"loop_wait": loop_wait, "member_ttl": member_ttl},
        mariadb={"innodb_flush_log_at_trx_commit": flush, "extra": extra},
    )
    config = parse_config(data)
    dumped = dump_config(config)
    again = parse_config(yaml.safe_load(dumped))
    assert again == config
    assert isinstance(again, NodeConfig)
    assert dump_config(again) == dumped


def test_a_dcs_password_needs_a_private_config_file(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "node.yaml", {**BASE_CONFIG, "dcs": "etcd://pilot:s3cret@192.0.2.1:2379"})
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="field 'dcs' carries an etcd password") as refused:
        load_config(path)
    assert "s3cret" not in str(refused.value)
    os.chmod(path, 0o600)
    assert load_config(path).dcs == "etcd://pilot:s3cret@192.0.2.1:2379"


def test_a_dcs_without_password_may_be_world_readable(tmp_path: Path) -> None:
    path = write_yaml(tmp_path / "node.yaml", {**BASE_CONFIG, "dcs": "etcd://192.0.2.1:2379"})
    os.chmod(path, 0o644)
    assert load_config(path).dcs == "etcd://192.0.2.1:2379"


def test_up_refuses_a_dcs_password_on_the_command_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["up", "--dir", str(tmp_path / "c"), "--dcs", "etcd://u:s3cret@127.0.0.1:1"])
    assert result.exit_code == 2 and "GALERA_PILOT_DCS" in result.output and "s3cret" not in result.output
    assert not (tmp_path / "c").exists()
    # From the environment the URL is taken (and here fails on the unreachable etcd, after the check).
    result = runner.invoke(main, ["up", "--dir", str(tmp_path / "c")],
                           env={"GALERA_PILOT_DCS": "etcd://u:s3cret@127.0.0.1:1"})
    assert result.exit_code == 1 and "no etcd endpoint answered" in result.output, result.output
    assert "s3cret" not in result.output
