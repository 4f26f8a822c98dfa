"""Addressing a cluster (control/target.py, control/config.py): the three ways, which wins, the errors.

Files are real (a folder laid out by `EmbeddedCluster.layout`, YAML written here) and the stores are a
real SQLite file or an etcd port where nothing listens; no process is started. Addresses
127.0.0.250-252: no test runs a node there."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from click.testing import CliRunner

from galera_pilot.cli.main import main
from galera_pilot.cluster import Member
from galera_pilot.control.config import ControlConfig, load_any_config
from galera_pilot.control.target import DCSUnreachable, from_config_file, resolve
from galera_pilot.credentials import Credentials, save_credentials
from galera_pilot.dcs import get_dcs
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.errors import ConfigError, PilotError
from galera_pilot.proxy.manager import ProxyConfig

NOBODY = "etcd://127.0.0.1:9"  # discard port: nothing answers etcd there


def write(path: Path, data: object, mode: int = 0o644) -> Path:
    path.write_text(yaml.safe_dump(data))
    os.chmod(path, mode)
    return path


def node_config(tmp_path: Path, dcs: str = NOBODY, name: str = "node1", address: str = "127.0.0.251") -> Path:
    credentials = tmp_path / "credentials.yaml"
    if not credentials.exists():
        save_credentials(credentials, Credentials.generate())
    return write(tmp_path / f"{name}.yaml", {"name": name, "cluster_name": "prod", "address": address, "dcs": dcs,
                                             "base_dir": str(tmp_path / name), "credentials_file": str(credentials)})


def test_nothing_given_says_the_three_ways() -> None:
    with pytest.raises(PilotError, match=r"--dir DIR.*-c FILE.*GALERA_PILOT_CONFIG.*--dcs URL --cluster NAME"):
        resolve(None, None, None, None)


def test_two_ways_on_the_command_line_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PilotError, match="give only one of --dir, --dcs"):
        resolve(tmp_path, None, NOBODY, None)


def test_the_command_line_wins_over_the_environment(tmp_path: Path) -> None:
    EmbeddedCluster.layout(tmp_path / "c", 2, "127.0.0.251", "rsync", cluster_name="alpha")
    # GALERA_PILOT_CONFIG set in a profile must not override an explicit --dir, nor clash with it.
    target = resolve(tmp_path / "c", node_config(tmp_path), None, None, from_env=frozenset({"-c/--config"}))
    assert target.cluster_name == "alpha" and target.embedded is not None
    assert set(target.known) == {"node1", "node2"}
    assert target.known["node2"].api_url == "https://127.0.0.252:8008"
    # Only the environment: its configuration file is used.
    target = resolve(None, node_config(tmp_path), None, None, from_env=frozenset({"-c/--config"}))
    assert target.cluster_name == "prod"


def test_a_node_configuration_names_its_cluster_and_itself(tmp_path: Path) -> None:
    target = from_config_file(node_config(tmp_path))
    assert (target.dcs_url, target.cluster_name) == (NOBODY, "prod")
    assert target.credentials_file == tmp_path / "credentials.yaml"
    assert target.known["node1"].address == "127.0.0.251" and target.known["node1"].client_port == 3306
    assert target.credentials().admin_user


def test_a_proxy_configuration_names_the_endpoints(tmp_path: Path) -> None:
    path = write(tmp_path / "proxy.yaml", {"dcs": NOBODY, "cluster_name": "prod", "writer_bind": "10.0.0.5:3306",
                                           "reader_bind": "10.0.0.5:3307", "run_dir": str(tmp_path / "run")})
    assert isinstance(load_any_config(path), ProxyConfig)
    target = from_config_file(path)
    assert (target.endpoints.writer, target.endpoints.reader) == ("10.0.0.5:3306", "10.0.0.5:3307")
    with pytest.raises(PilotError, match="no admin credentials known"):
        target.credentials()


def test_a_control_configuration(tmp_path: Path) -> None:
    path = write(tmp_path / "control.yaml", {
        "dcs": NOBODY, "cluster_name": "prod", "credentials_file": str(tmp_path / "credentials.yaml"),
        "members": {"node1": "http://10.0.0.11:8008/", "node2": "http://10.0.0.12:8008"},
        "endpoints": {"writer": "10.0.0.5:3306"}})
    assert isinstance(load_any_config(path), ControlConfig)
    target = from_config_file(path)
    assert {n: m.api_url for n, m in target.known.items()} == {"node1": "http://10.0.0.11:8008",
                                                                "node2": "http://10.0.0.12:8008"}
    assert target.endpoints.writer == "10.0.0.5:3306" and target.endpoints.reader is None


@pytest.mark.parametrize(("data", "field"), [
    ({"cluster_name": "prod"}, "field 'dcs': required field is missing"),
    ({"dcs": NOBODY, "clustre_name": "prod"}, "field 'clustre_name': unknown field"),
    ({"dcs": NOBODY, "members": {"node1": "10.0.0.11:8008"}}, "field 'members'"),
    ({"dcs": NOBODY, "endpoints": {"writer": "nowhere"}}, "field 'endpoints.writer'"),
])
def test_a_bad_control_configuration_names_the_field(tmp_path: Path, data: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        load_any_config(write(tmp_path / "control.yaml", data))


def test_a_password_in_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "control.yaml", {"dcs": "etcd://pilot:s3cret@127.0.0.1:9"}, mode=0o644)
    with pytest.raises(ConfigError, match="chmod 600") as failure:
        load_any_config(path)
    assert "s3cret" not in str(failure.value)
    os.chmod(path, 0o600)
    assert load_any_config(path).dcs.endswith("@127.0.0.1:9")


def test_cluster_must_match_what_the_file_names(tmp_path: Path) -> None:
    with pytest.raises(PilotError, match="addresses the cluster 'prod', not 'other'"):
        resolve(None, node_config(tmp_path), None, "other")
    # ... but GALERA_PILOT_CLUSTER from a profile does not clash with a file's own name.
    assert resolve(None, node_config(tmp_path), None, "other", from_env=frozenset({"--cluster"})).cluster_name == "prod"


def test_an_unknown_cluster_name_lists_the_ones_the_store_holds(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'dcs.sqlite'}"
    for name in ("alpha", "beta"):
        store = get_dcs(url, name)
        store.put("members/node1", json.dumps(Member("node1", "127.0.0.251").to_dict()))
        store.close()
    with pytest.raises(PilotError, match=r"holds no cluster named 'gamma' \(it holds: alpha, beta\)"):
        resolve(None, None, url, "gamma").snapshot()
    assert set(resolve(None, None, url, "beta").snapshot().members) == {"node1"}
    with pytest.raises(PilotError, match="it holds no cluster at all"):
        resolve(None, None, f"sqlite://{tmp_path / 'empty.sqlite'}", None).snapshot()


def test_an_unreachable_store_is_reported_as_such(tmp_path: Path) -> None:
    with pytest.raises(DCSUnreachable, match=r"the DCS etcd://127.0.0.1:9 is unreachable"):
        resolve(None, None, NOBODY, "prod").snapshot()


def test_cli_list_during_an_outage_says_so_and_what_it_shows(tmp_path: Path) -> None:
    # The node's REST API does not answer either (nothing listens on 127.0.0.251:8008): the heading says
    # the DCS is unreachable, the row says the member did not answer, and the exit status is 1.
    result = CliRunner().invoke(main, ["-c", str(node_config(tmp_path)), "list"])
    lines = result.output.splitlines()
    assert result.exit_code == 1, result.output
    assert lines[0].startswith("the DCS etcd://127.0.0.1:9 is unreachable")
    assert "showing what the members' REST APIs say at their last known addresses (answered: none)" in lines[0]
    assert "node1" in result.output and "its REST API did not answer (https://127.0.0.251:8008)" in result.output


@pytest.mark.parametrize("verb", [["bootstrap", "--member", "node1", "--force"], ["switchover"],
                                  ["maintenance", "on", "node1"], ["history"]])
def test_cli_verbs_that_need_the_store_refuse_without_it(tmp_path: Path, verb: list[str]) -> None:
    result = CliRunner().invoke(main, ["-c", str(node_config(tmp_path)), *verb])
    assert result.exit_code == 1
    assert "the DCS etcd://127.0.0.1:9 is unreachable" in result.output
    assert "Traceback" not in result.output


def test_cli_dcs_password_only_from_the_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--dcs", "etcd://u:s3cret@127.0.0.1:9", "list"])
    assert result.exit_code == 2 and "GALERA_PILOT_DCS" in result.output and "s3cret" not in result.output
    result = CliRunner().invoke(main, ["list", "--dcs", "etcd://u:s3cret@127.0.0.1:9"])
    assert result.exit_code == 2 and "s3cret" not in result.output
    result = CliRunner().invoke(main, ["list"], env={"GALERA_PILOT_DCS": "etcd://u:s3cret@127.0.0.1:9"})
    assert "is unreachable" in result.output and "s3cret" not in result.output


def test_cli_dsn_from_a_folder_and_from_a_proxy_configuration(tmp_path: Path) -> None:
    cluster = EmbeddedCluster.layout(tmp_path / "c", 1, "127.0.0.251", "rsync")
    result = CliRunner().invoke(main, ["dsn", "--dir", str(cluster.dir)])
    assert result.exit_code == 1 and "no client endpoints are known" in result.output
    cluster.proxy.configure("127.0.0.250:3306", "127.0.0.250:3307")
    result = CliRunner().invoke(main, ["--dir", str(cluster.dir), "dsn", "--role", "writer", "--show-password"])
    credentials = cluster.credentials()
    secret = quote(credentials.admin_password, safe="")
    assert result.output.strip() == f"mysql://{credentials.admin_user}:{secret}@127.0.0.250:3306/", result.output
    result = CliRunner().invoke(main, ["-c", str(cluster.proxy.config_path), "dsn"])
    assert result.output.splitlines()[:2] == ["writer: mysql://USER@127.0.0.250:3306/",
                                              "reader: mysql://USER@127.0.0.250:3307/"]
