"""`up --dcs`: the cluster folder records its DCS URL and cluster name, and refuses to switch stores or to
lay out a cluster under a name an etcd already holds. (Layout only: no mariadbd is started here.)"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import yaml
from dcs_backends import EtcdServer

from galera_pilot.config import load_config, redact_dcs_url
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.errors import PilotError


def test_default_is_a_sqlite_file_in_the_folder(tmp_path: Path) -> None:
    cluster = EmbeddedCluster.layout(tmp_path / "c", 2, "127.0.0.140", "rsync")
    assert cluster.meta["dcs"] == f"sqlite://{tmp_path / 'c' / 'dcs.sqlite'}"
    assert cluster.meta["cluster_name"] == "galera"


def test_etcd_url_and_name_are_recorded_everywhere(tmp_path: Path, etcd_server: EtcdServer) -> None:
    name = f"layout{etcd_server.port}a"
    cluster = EmbeddedCluster.layout(tmp_path / "c", 3, "127.0.0.140", "rsync", cluster_name=name,
                                     dcs=etcd_server.url)
    meta = yaml.safe_load((tmp_path / "c" / "cluster.yaml").read_text())
    assert (meta["dcs"], meta["cluster_name"]) == (etcd_server.url, name)
    for node in cluster.nodes():
        assert (node.config.dcs, node.config.cluster_name) == (etcd_server.url, name)
    assert not (tmp_path / "c" / "dcs.sqlite").exists()
    # What list/history/bootstrap/down open is that store, under that name.
    store = cluster.dcs()
    assert store.prefix == f"/galera-pilot/{name}/" and repr(store).startswith("EtcdDCS(")
    store.close()
    # Extending the folder keeps both; asking for another store or name is refused.
    again = EmbeddedCluster.layout(tmp_path / "c", 4, "127.0.0.140", "rsync")
    assert load_config(again.node("node4").config_path).dcs == etcd_server.url
    with pytest.raises(PilotError, match="drop --dcs"):
        EmbeddedCluster.layout(tmp_path / "c", 4, "127.0.0.140", "rsync", dcs="etcd://127.0.0.1:1")
    with pytest.raises(PilotError, match="holds the cluster"):
        EmbeddedCluster.layout(tmp_path / "c", 4, "127.0.0.140", "rsync", cluster_name="other")


def test_a_name_the_etcd_already_holds_is_refused(tmp_path: Path, etcd_server: EtcdServer) -> None:
    name = f"layout{etcd_server.port}b"
    store = EmbeddedCluster.layout(tmp_path / "first", 1, "127.0.0.140", "rsync", cluster_name=name,
                                   dcs=etcd_server.url).dcs()
    store.put("initialize", "{}")  # as its agents would have written
    store.close()
    with pytest.raises(PilotError, match="already holds a cluster named"):
        EmbeddedCluster.layout(tmp_path / "second", 1, "127.0.0.145", "rsync", cluster_name=name,
                               dcs=etcd_server.url)
    assert not (tmp_path / "second" / "cluster.yaml").exists()


def test_invalid_cluster_name_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(PilotError, match="--cluster-name"):
        EmbeddedCluster.layout(tmp_path / "c", 1, "127.0.0.140", "rsync", cluster_name="1bad/name")
    assert not (tmp_path / "c").exists()


def test_unreachable_etcd_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PilotError, match="no etcd endpoint answered"):
        EmbeddedCluster.layout(tmp_path / "c", 1, "127.0.0.140", "rsync", dcs="etcd://127.0.0.1:1")


def test_a_dcs_password_keeps_the_folder_files_private(tmp_path: Path) -> None:
    url = "etcd://pilot:s3cret@127.0.0.1:1"
    assert redact_dcs_url(url) == "etcd://pilot:***@127.0.0.1:1"
    assert redact_dcs_url("etcd://127.0.0.1:2379,127.0.0.2:2379") == "etcd://127.0.0.1:2379,127.0.0.2:2379"
    with pytest.raises(PilotError) as failure:
        EmbeddedCluster.layout(tmp_path / "c", 1, "127.0.0.140", "rsync", dcs=url)
    assert "s3cret" not in str(failure.value)


def test_files_holding_a_password_are_0600(tmp_path: Path, etcd_server: EtcdServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # No etcd user exists here: check the writes, with the emptiness check answered by the real server.
    from galera_pilot.embedded import layout as embedded

    real_get_dcs = embedded.get_dcs
    monkeypatch.setattr(embedded, "get_dcs", lambda url, name, tls_files=None: real_get_dcs(etcd_server.url, name))
    url = etcd_server.url.replace("etcd://", "etcd://pilot:s3cret@")
    cluster = EmbeddedCluster.layout(tmp_path / "c", 1, "127.0.0.140", "rsync",
                                     cluster_name=f"layout{etcd_server.port}c", dcs=url)
    for path in (tmp_path / "c" / "cluster.yaml", cluster.node("node1").config_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_removed_node_keeps_its_name_and_address_out_of_reach(tmp_path: Path) -> None:
    """`remove` retires node2: `up --nodes 3` adds node4 on the next address, never node2's again."""
    cluster = EmbeddedCluster.layout(tmp_path / "c", 3, "127.0.0.140", "rsync", tls=False)
    cluster.retire_node("node2")
    assert [n.name for n in cluster.nodes()] == ["node1", "node3"]
    again = EmbeddedCluster.layout(tmp_path / "c", 3, "127.0.0.140", "rsync")
    assert [n.name for n in again.nodes()] == ["node1", "node3", "node4"]
    assert again.node("node4").config.address == "127.0.0.143"
    assert again.meta["removed"] == ["node2"]
    assert [n.name for n in EmbeddedCluster.layout(tmp_path / "c", 2, "127.0.0.140", "rsync").nodes()] == [
        "node1", "node3", "node4"]  # --nodes only ever adds


def test_an_arbitrator_gets_the_next_address_and_data_nodes_keep_their_numbering(tmp_path: Path) -> None:
    cluster = EmbeddedCluster.layout(tmp_path / "c", 2, "127.0.0.140", "rsync", tls=False, arbitrator=True)
    assert [n.name for n in cluster.nodes()] == ["node1", "node2"]
    (garbd,) = cluster.arbitrators()
    assert (garbd.name, garbd.config.role, garbd.config.address) == ("arbitrator1", "arbitrator", "127.0.0.142")
    again = EmbeddedCluster.layout(tmp_path / "c", 3, "127.0.0.140", "rsync", arbitrator=True)  # one only
    assert again.arbitrator_names == ["arbitrator1"]
    assert (again.node("node3").config.address, again.node("arbitrator1").config.role) == ("127.0.0.143", "arbitrator")
    again.retire_node("arbitrator1")
    assert "arbitrators" not in again.meta and again.meta["removed"] == ["arbitrator1"]
    assert EmbeddedCluster.layout(tmp_path / "c", 4, "127.0.0.140", "rsync").node("node4").config.address == \
        "127.0.0.144"
    replaced = EmbeddedCluster.layout(tmp_path / "c", None, None, "rsync", arbitrator=True)
    assert replaced.arbitrator_names == ["arbitrator2"]  # never the removed one's name
    assert replaced.node("arbitrator2").config.address == "127.0.0.145"


def test_an_existing_folder_keeps_its_base_address(tmp_path: Path) -> None:
    """`up --dir DIR --nodes 3` on a folder made at .140 adds node3 at .142, not at the default .2 + 2."""
    EmbeddedCluster.layout(tmp_path / "c", 2, "127.0.0.140", "rsync", tls=False)
    assert EmbeddedCluster.layout(tmp_path / "c", 3, None, "rsync").node("node3").config.address == "127.0.0.142"
    with pytest.raises(PilotError, match=r"nodes start at 127\.0\.0\.140, not 127\.0\.0\.9"):
        EmbeddedCluster.layout(tmp_path / "c", 4, "127.0.0.9", "rsync")
    meta = yaml.safe_load((tmp_path / "c" / "cluster.yaml").read_text())
    del meta["base_address"]  # a folder made before the address was recorded: node1's is the base
    (tmp_path / "c" / "cluster.yaml").write_text(yaml.safe_dump(meta))
    assert EmbeddedCluster.layout(tmp_path / "c", 4, None, "rsync").node("node4").config.address == "127.0.0.143"
