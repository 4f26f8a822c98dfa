"""Replacing the node CA of a cluster whose bundles an operator copies to its hosts (issue 11): three
hosts, etcd over TLS with certificates of the same PKI, `pki rotate-ca --pki-dir P --dcs URL` run from
the operator's host (the root namespace), one phase per run, the bundles copied to the hosts between runs.

What must hold: a run refuses to go on while a host has not taken the last phase (it names the host);
the DCS is probed before anyone presents a certificate of the new CA, and before anyone trusts only it,
so an etcd that would refuse the agents stops the rotation with what to do, not the cluster; the last
run's rolling restart leaves every member Synced, trusting the new CA only, and Galera refusing a
certificate of the old CA that it accepted before.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from galera_pilot.tls import http, pki
from galera_pilot.tls.bundle import load_bundle
from galera_pilot.tls.contexts import client_context

from ..tls_probes import galera_accepts
from .harness import MultiHost, cli, wait_for


@pytest.fixture(scope="module")
def hosts() -> Iterator[MultiHost]:
    multi = MultiHost(3, cluster_name="rot")
    try:
        multi.create_network()
        multi.start_etcd()
        multi.write_configs()
        multi.start_agents_and_wait("three hosts to be Synced over etcd")
        yield multi
    finally:
        multi.close()


def deployed(multi: MultiHost) -> dict[str, Path]:
    """Where each bundle of PKI/issued lives on its host (the nodes' and the etcd members')."""
    places = {h.node: h.tls_bundle for h in multi.hosts}
    places |= {f"etcd{h.index}": h.dir / "etcd-tls" for h in multi.etcd_hosts}
    return places


def copy_to_hosts(multi: MultiHost) -> None:
    """What the operator does between runs (scp -rp), each file replaced whole."""
    issued = multi.authority().dir / "issued"
    for name, place in deployed(multi).items():
        for source in (issued / name).iterdir():
            staged = place / f".{source.name}.new"
            shutil.copy2(source, staged)
            os.replace(staged, place / source.name)


def restart_etcd(multi: MultiHost) -> None:
    """One member at a time, so the DCS keeps its quorum: etcd reads its CA file only when it starts."""
    for host in multi.etcd_hosts:
        process = multi.etcds[host.node]
        process.terminate()
        process.wait(30)
        multi.restart_etcd(host)
        wait_for(lambda h=host: multi._etcd_member_answers(h), 60, f"etcd member e{host.index} to answer")


def rotate(multi: MultiHost, check: bool = True, timeout: float = 10.0) -> str:
    result = cli("pki", "rotate-ca", "--pki-dir", str(multi.authority().dir), "--dcs", multi.operator_dcs_url,
                 "--cluster", multi.cluster_name, "--yes", "--timeout", str(timeout), check=check, timeout=900)
    return result.stdout + result.stderr


def test_the_node_ca_is_replaced_phase_by_phase_across_hosts(hosts: MultiHost, tmp_path: Path) -> None:
    authority = hosts.authority()
    for host in hosts.hosts:  # as if issued with `pki issue NODE`: the PKI keeps what it gave each host
        shutil.copytree(host.tls_bundle, authority.dir / "issued" / host.node)
    for host in hosts.etcd_hosts:
        shutil.copytree(host.dir / "etcd-tls", authority.dir / "issued" / f"etcd{host.index}")
    kept = shutil.copytree(hosts.host("node3").tls_bundle, tmp_path / "old-node3")
    old = pki.short_id(pki.describe(authority.node_ca().cert_pem))
    address = hosts.host("node1").address
    assert galera_accepts(address, authority.ca_file, kept), "control: the old certificate works now"

    said = rotate(hosts)
    assert "phase 1 of 3 (trust) is written to" in said and "copy each bundle to its host" in said, said
    # Not copied yet: the next run waits for the hosts, then refuses, naming them; nothing moves on.
    said = rotate(hosts, check=False, timeout=2)
    assert "phase 1 (trust) has not reached every host" in said and "node1 trusts" in said, said
    copy_to_hosts(hosts)
    # The hosts trust both CAs now, but etcd read its CA file when it started: it would refuse the agents'
    # new certificates, so phase 2 is refused before anyone gets one.
    said = rotate(hosts, check=False)
    assert "the DCS refuses the new CA" in said and "--trusted-ca-file" in said, said
    assert all(load_bundle(authority.dir / "issued" / h.node).signer_id() == old for h in hosts.hosts), \
        "nothing was re-issued"
    assert "phase 1 of 3 (trust) written, next: reissue" in cli("pki", "show", "--pki-dir",
                                                                 str(authority.dir)).stdout
    restart_etcd(hosts)
    said = rotate(hosts)
    assert "phase 2 of 3" in said and "phase 2 of 3 (reissue) is written to" in said, said
    copy_to_hosts(hosts)
    # etcd's own certificate was re-issued too, and etcd reads its certificate at every handshake (not its
    # CA file): the probe with the new CA alone passes without a restart.
    said = rotate(hosts)
    assert "phase 3 of 3 (drop) is written to" in said, said
    copy_to_hosts(hosts)
    said = rotate(hosts, timeout=30)
    assert "the CA rotation is complete" in said and "restarted" in said, said

    new = pki.short_id(pki.describe(authority.node_ca().cert_pem))
    assert new != old and len(pki.describe_all(authority.ca_file.read_bytes())) == 1
    http.use_for_process(client_context(authority.ca_file), authority.api_token())  # this process: the new CA
    wait_for(hosts.all_synced, 120, "every member Synced after the rolling restart")
    members = hosts.snapshot().members
    assert all(m.tls_trust == (new,) and m.tls_signer == new for m in members.values()), members
    for host in hosts.hosts:
        assert not galera_accepts(host.address, authority.ca_file, kept), f"{host.node} still trusts the old CA"
        assert galera_accepts(host.address, authority.ca_file, host.tls_bundle), host.node
