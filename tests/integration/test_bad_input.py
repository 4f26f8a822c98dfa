"""Bad input gets one clear message (naming the field, path or port), exit code 1, and no traceback."""

from __future__ import annotations

import socket
from pathlib import Path

import yaml

from galera_pilot.embedded.cluster import EmbeddedCluster

from .conftest import cli, test_address


def assert_clean_failure(result, *fragments: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, f"{fragment!r} not in: {result.stderr}"


def test_malformed_agent_config_names_the_field(tmp_path: Path) -> None:
    config = tmp_path / "node.yaml"
    config.write_text(yaml.safe_dump({
        "name": "node1", "address": "127.0.0.40", "dcs": f"sqlite://{tmp_path}/dcs.sqlite",
        "base_dir": str(tmp_path / "n1"), "credentials_file": str(tmp_path / "c.yaml"),
        "ports": {"client": "not-a-port"}, "colour": "blue",
    }))
    result = cli("agent", str(config), check=False)
    assert_clean_failure(result, "field 'ports.client'", "field 'colour': unknown field")


def test_agent_with_unreachable_dcs_and_missing_credentials(tmp_path: Path) -> None:
    config = tmp_path / "node.yaml"
    body = {"name": "node1", "address": "127.0.0.40", "dcs": "sqlite:///nonexistent/folder/dcs.sqlite",
            "base_dir": str(tmp_path / "n1"), "credentials_file": str(tmp_path / "missing.yaml")}
    config.write_text(yaml.safe_dump(body))
    assert_clean_failure(cli("agent", str(config), check=False), "cannot read credentials file")
    from galera_pilot.credentials import Credentials, save_credentials

    save_credentials(tmp_path / "missing.yaml", Credentials.generate())
    # TLS is on by default: a node without its bundle says where it looked and how to make one.
    assert_clean_failure(cli("agent", str(config), check=False), f"TLS bundle folder {tmp_path / 'n1' / 'tls'}",
                         "galera-pilot pki issue node1 --ip 127.0.0.40")
    from galera_pilot.tls.authority import init_authority

    init_authority(tmp_path / "pki", "galera").issue_bundle("node1", ["127.0.0.40"], out=tmp_path / "n1" / "tls")
    assert_clean_failure(cli("agent", str(config), check=False), "/nonexistent/folder", "does not exist")


def test_folder_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("user data")
    result = cli("up", "--dir", str(tmp_path), check=False)
    assert_clean_failure(result, "not a galera-pilot cluster folder")
    assert (tmp_path / "precious.txt").read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_corrupt_cluster_description_is_reported(tmp_path: Path) -> None:
    (tmp_path / "cluster.yaml").write_text("nodes: [unclosed")
    assert_clean_failure(cli("list", "--dir", str(tmp_path), check=False), "cluster.yaml is not valid YAML")


def test_port_in_use_is_named(tmp_path: Path) -> None:
    address = test_address("127.0.0.41")  # where `up` will really try (GP_TEST_ADDRESS_BASE may move it)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind((address, 3306))
        squatter.listen()
        result = cli("up", "--dir", str(tmp_path / "c"), "--nodes", "1", "--base-address", "127.0.0.41", check=False)
    assert_clean_failure(result, f"node1: {address}:3306 (client port) cannot be used")


def test_missing_mariadbd_is_named(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    EmbeddedCluster.layout(directory, 1, "127.0.0.42", "mariabackup")
    config_path = directory / "node1" / "agent.yaml"
    config = yaml.safe_load(config_path.read_text())
    config.setdefault("binaries", {})["mariadbd"] = "/opt/nowhere/mariadbd"
    config_path.write_text(yaml.safe_dump(config))
    result = cli("up", "--dir", str(directory), "--nodes", "1", check=False)
    assert_clean_failure(result, "/opt/nowhere/mariadbd (binaries.mariadbd) not found")


def test_query_on_a_stopped_cluster_says_so(tmp_path: Path) -> None:
    directory = tmp_path / "c"
    EmbeddedCluster.layout(directory, 1, "127.0.0.43", "mariabackup")
    assert_clean_failure(cli("query", "--dir", str(directory), "SELECT 1", check=False), "no member is Synced")


def test_bad_cli_values_are_refused(tmp_path: Path) -> None:
    result = cli("up", "--dir", str(tmp_path / "c"), "--base-address", "not-an-ip", check=False)
    assert_clean_failure(result, "--base-address 'not-an-ip' is not an IP address")
