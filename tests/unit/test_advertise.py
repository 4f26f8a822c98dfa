"""Listen vs advertised addresses (NAT, containers, published ports): what my.cnf binds, what it tells
peers, and what the member record publishes for peers' wsrep_cluster_address."""

from __future__ import annotations

import configparser
from dataclasses import replace
from pathlib import Path

import pytest
from unit_helpers import make_config

from galera_pilot.agent.decisions import join_peers
from galera_pilot.agent.ha import Ha
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.sqlite import SQLiteDCS
from galera_pilot.errors import ConfigError
from galera_pilot.mariadb.mycnf import render_mycnf

CREDENTIALS = Credentials("pilot_admin", "admin-secret", "pilot_sst", "sst-Secret_123")
PORTS = {"client": 3306, "galera": 4567, "ist": 4568, "sst": 4444, "api": 8008}


def server_section(config: NodeConfig) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(allow_no_value=True, strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(render_mycnf(config, CREDENTIALS, ()))
    return parser["mariadbd"]


def provider(config: NodeConfig) -> dict[str, str]:
    value = server_section(config)["wsrep_provider_options"].strip('"')
    return dict(item.split("=", 1) for item in value.split(";"))


@pytest.fixture
def natted() -> NodeConfig:
    """Listens on every interface of a container; reached as 203.0.113.7 with published ports."""
    return make_config(address="0.0.0.0", advertise_address="203.0.113.7", ports=PORTS,
                       advertise_ports={"client": 13306, "galera": 14567, "api": 18008})


def test_without_advertise_nothing_changes() -> None:
    config = make_config(address="10.77.0.11", ports=PORTS)
    server = server_section(config)
    assert server["wsrep_node_address"] == "10.77.0.11"
    assert "wsrep_node_incoming_address" not in server
    options = provider(config)
    assert options["ist.recv_addr"] == "10.77.0.11:4568"
    assert "ist.recv_bind" not in options
    assert config.api_url == "https://10.77.0.11:8008"


def test_binds_listen_addresses_and_advertises_published_ones(natted: NodeConfig) -> None:
    server = server_section(natted)
    assert server["bind-address"] == "0.0.0.0" and server["port"] == "3306"
    assert server["wsrep_node_address"] == "203.0.113.7:14567"
    assert server["wsrep_node_incoming_address"] == "203.0.113.7:13306"
    assert server["wsrep_sst_receive_address"] == "203.0.113.7:4444"
    options = provider(natted)
    assert options["gmcast.listen_addr"] == "tcp://0.0.0.0:4567"
    assert options["ist.recv_addr"] == "203.0.113.7:4568"
    assert options["ist.recv_bind"] == "0.0.0.0:4568"


def test_advertised_address_with_the_same_ports() -> None:
    config = make_config(address="10.77.0.11", advertise_address="198.51.100.4", ports=PORTS)
    server = server_section(config)
    assert server["wsrep_node_address"] == "198.51.100.4"  # no port: the galera port is the listen port
    assert server["wsrep_node_incoming_address"] == "198.51.100.4:3306"
    assert provider(config)["ist.recv_bind"] == "10.77.0.11:4568"


def test_member_record_publishes_what_peers_dial(natted: NodeConfig, tmp_path: Path) -> None:
    dcs = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    ha = Ha(natted, dcs, CREDENTIALS)
    member = ha.member()
    assert (member.address, member.client_port, member.galera_port) == ("203.0.113.7", 13306, 14567)
    assert member.api_url == "https://203.0.113.7:18008"
    assert ha._roster_entry(False).address == "203.0.113.7"
    assert ha._roster_entry(False).client_port == 13306
    dcs.close()


def test_peers_join_the_advertised_galera_address(natted: NodeConfig, tmp_path: Path) -> None:
    dcs = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    primary = replace(Ha(natted, dcs, CREDENTIALS).member(), running=True, cluster_status="Primary", state="Synced")
    dcs.publish_member(primary, 10)
    assert join_peers(dcs.snapshot(), "node9") == ("203.0.113.7:14567",)
    dcs.close()


def test_wildcard_listen_needs_an_advertised_address() -> None:
    with pytest.raises(ConfigError, match="needs advertise_address"):
        make_config(address="0.0.0.0")


def test_wildcard_cannot_be_advertised() -> None:
    with pytest.raises(ConfigError, match="advertise_address"):
        make_config(address="10.0.0.1", advertise_address="0.0.0.0")


@pytest.mark.parametrize(("label", "listen"), [("sst", 4444), ("ist", 4568)])
def test_state_transfer_ports_cannot_be_remapped(label: str, listen: int) -> None:
    with pytest.raises(ConfigError, match=rf"advertise_ports\.{label}"):
        make_config(address="10.0.0.1", advertise_ports={label: listen + 10000})
    assert make_config(address="10.0.0.1", advertise_ports={label: listen}).advertised_port(label) == listen


def test_unknown_advertised_port_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"advertise_ports\.mysql"):
        make_config(address="10.0.0.1", advertise_ports={"mysql": 1})
