"""A host behind NAT, as a container with published ports: node3 listens on 0.0.0.0 with the standard
ports, which are reachable from the other hosts only as 13306, 14567 and 18008 (iptables REDIRECT in its
namespace; dialling 3306/4567/8008 directly is dropped). It advertises its address and the published ports:
the cluster forms, replicates both ways, and node3 rejoins by IST after a crash. The IST and SST ports keep
their numbers (Galera's IST request names the port the receiver is bound to: a first version of this test
published 14568 for IST, and the donor dialled 4568 and timed out)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import psutil
import pytest

from .harness import MultiHost, wait_for
from .test_multihost import api

PUBLISHED = {"client": (13306, 3306), "galera": (14567, 4567), "api": (18008, 8008)}


@pytest.fixture(scope="module")
def natted() -> Iterator[MultiHost]:
    multi = MultiHost(3, cluster_name="nat")
    try:
        multi.create_network()
        multi.start_etcd()
        node3 = multi.host("node3")
        multi.publish_ports(node3, dict(PUBLISHED.values()))
        multi.write_configs(per_host={"node3": {
            "address": "0.0.0.0", "advertise_address": node3.address,
            "advertise_ports": {label: outside for label, (outside, _) in PUBLISHED.items()},
        }})
        multi.start_agents_and_wait("three hosts, one behind NAT, to be Synced")
        yield multi
    finally:
        multi.close()


def run_sql(multi: MultiHost, node: str, statement: str, causal: bool = False) -> list[tuple]:
    """node3 is reached at its published client port."""
    return multi.run_sql(node, statement, PUBLISHED["client"][0] if node == "node3" else 3306, causal)


def test_a_natted_host_joins_through_its_advertised_ports(natted: MultiHost) -> None:
    node3 = natted.host("node3")
    member = natted.snapshot().members["node3"]
    assert (member.address, member.client_port, member.galera_port) == (node3.address, 13306, 14567)
    assert member.api_url == f"https://{node3.address}:18008"
    # The DCS report and the API's own status sampler (every 0.25 s) reach Synced a moment apart.
    wait_for(lambda: api(member.api_url + "/health")[0] == 200, 10, "node3's /health through its published port")
    # Either other node shows node3's advertised client address. Not always both: a node that finished its
    # own SST while node3 entered the group keeps the view recovered from that SST (without node3) in
    # wsrep_incoming_addresses until the next view change (seen on MariaDB 10.11).
    incoming = {node: run_sql(natted, node, "SHOW STATUS LIKE 'wsrep_incoming_addresses'")[0][1].split(",")
                for node in ("node1", "node2")}
    assert any(f"{node3.address}:13306" in addresses for addresses in incoming.values()), incoming
    assert not any(f"{node3.address}:3306" in addresses for addresses in incoming.values()), incoming
    run_sql(natted, "node1", "CREATE DATABASE nat")
    run_sql(natted, "node1", "CREATE TABLE nat.t (id INT PRIMARY KEY)")
    run_sql(natted, "node3", "INSERT INTO nat.t VALUES (1)", causal=True)  # the table was made on node1
    wait_for(lambda: run_sql(natted, "node2", "SELECT COUNT(*) FROM nat.t") == [(1,)], 30, "node3's row on node2")


def test_a_natted_host_rejoins_by_ist_after_a_crash(natted: MultiHost) -> None:
    node3 = natted.host("node3")
    wait_for(natted.all_synced, 60, "a healthy cluster")
    run_sql(natted, "node1", "CREATE DATABASE IF NOT EXISTS nat")
    run_sql(natted, "node1", "CREATE TABLE IF NOT EXISTS nat.crash (id INT PRIMARY KEY)")
    error_log = node3.dir / "node" / "log" / "mariadbd.err"
    logged_before = error_log.stat().st_size
    pid = int((node3.dir / "node" / "run" / "mariadbd.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(pid), 10, "node3's mariadbd to die")
    run_sql(natted, "node1", "INSERT INTO nat.crash VALUES (1), (2), (3)")
    wait_for(lambda: natted.all_synced() and natted.snapshot().members["node3"].running, 180,
             "node3 to be restarted and Synced")
    assert run_sql(natted, "node3", "SELECT COUNT(*) FROM nat.crash") == [(3,)]
    with open(error_log, "rb") as log:
        log.seek(logged_before)
        since_crash = log.read().decode(errors="replace")
    transfer = "\n".join(line for line in since_crash.splitlines() if "IST" in line or "SST" in line)
    assert "IST received" in since_crash, transfer[-6000:]
    # The SST script runs even for an IST; with rsync it says which of the two it did.
    assert "rsync IST completed on joiner" in since_crash, ("node3 needed a full SST:\n"
                                                         + transfer[-6000:] + "\n" + natted.agent_log(node3))
