"""dcs/base.py: galera-pilot's records (initialize, members, roster, seed, bootstrap lock, history).

Run unchanged against every backend (SQLite, and a real etcd): see DCS_BACKENDS and conftest.py.
"""

from __future__ import annotations

import json
import time

from dcs_backends import Backend, TTLs

from galera_pilot.cluster import (
    Cluster,
    HistoryEvent,
    InitializeRecord,
    Member,
    Position,
    RosterEntry,
    SeedRecord,
)
from galera_pilot.dcs import DCS

DCS_BACKENDS = ("sqlite", "etcd")
UUID = "6b1c6d2e-86c4-11ee-a1a2-0242ac120002"


# ---- initialize ------------------------------------------------------------------------------------------


def test_empty_snapshot(dcs: DCS) -> None:
    cluster = dcs.snapshot()
    assert cluster.initialize is None
    assert cluster.members == {} and cluster.roster == {}
    assert cluster.seed is None and cluster.bootstrap_lock_holder is None
    assert cluster.history == ()
    assert not cluster.has_primary


def test_try_initialize_only_once(dcs: DCS) -> None:
    assert dcs.try_initialize("a", 60) is True
    assert dcs.try_initialize("b", 60) is False
    assert dcs.try_initialize("a", 60) is False
    record = dcs.snapshot().initialize
    assert isinstance(record, InitializeRecord)
    assert record.by == "a"
    assert record.cluster_uuid is None and not record.done
    assert record.version == dcs.get("initialize").version


def test_finish_initialize_only_by_the_initializer(dcs: DCS) -> None:
    assert dcs.finish_initialize("a", UUID) is False  # nothing to finish
    dcs.try_initialize("a", 60)
    assert dcs.finish_initialize("b", UUID) is False
    assert dcs.snapshot().initialize.cluster_uuid is None
    assert dcs.finish_initialize("a", UUID) is True
    record = dcs.snapshot().initialize
    assert record.by == "a" and record.cluster_uuid == UUID and record.done
    assert record.finished_at is not None and record.finished_at >= record.started_at


def test_initialize_lease_expires_and_frees_the_key(dcs: DCS, ttls: TTLs) -> None:
    dcs.try_initialize("a", ttls.short)
    time.sleep(ttls.past_short)
    assert dcs.snapshot().initialize is None
    assert dcs.finish_initialize("a", UUID) is False  # a dead initializer's lease is gone
    assert dcs.keep_initialize_lease("a", 60) is False
    assert dcs.try_initialize("b", 60) is True
    assert dcs.snapshot().initialize.by == "b"


def test_keep_initialize_lease_sets_the_new_ttl(dcs: DCS, ttls: TTLs) -> None:
    dcs.try_initialize("a", 600)
    assert dcs.keep_initialize_lease("b", ttls.short) is False  # not b's lease to touch
    assert dcs.keep_initialize_lease("a", ttls.short) is True  # shortened: observable by waiting
    time.sleep(ttls.past_short)
    assert dcs.get("initialize") is None


def test_keep_initialize_lease_keeps_the_record(dcs: DCS) -> None:
    dcs.try_initialize("a", 600)
    before = dcs.get("initialize")
    assert dcs.keep_initialize_lease("a", 600) is True
    after = dcs.get("initialize")
    assert after.value == before.value
    assert after.version != before.version


def test_finished_initialize_outlives_its_lease(dcs: DCS, ttls: TTLs) -> None:
    """finish_initialize writes without a TTL: the key no longer expires (on etcd: detached from its lease).
    The same on a fake clock, to the millisecond, is in test_dcs_sqlite.py."""
    dcs.try_initialize("a", ttls.short)
    assert dcs.finish_initialize("a", UUID) is True
    time.sleep(ttls.past_short)
    record = dcs.snapshot().initialize
    assert record is not None and record.cluster_uuid == UUID
    assert dcs.try_initialize("b", 30) is False


def test_finish_after_a_takeover_fails(dcs: DCS, ttls: TTLs) -> None:
    dcs.try_initialize("a", ttls.short)
    time.sleep(ttls.past_short)
    dcs.try_initialize("b", 60)
    assert dcs.finish_initialize("a", UUID) is False
    assert dcs.keep_initialize_lease("a", 60) is False
    assert dcs.snapshot().initialize.by == "b"


# ---- members, roster, seed -------------------------------------------------------------------------------


def full_member(name: str = "n1") -> Member:
    return Member(
        name=name, address="127.0.0.2", api_url="http://127.0.0.2:8008", client_port=3307, galera_port=4577,
        host="box", running=False, state="stopped", cluster_status="", cluster_size=0, cluster_uuid=UUID,
        seqno=-1, gcomm_uuid="g-1", activity="waiting",
        position=Position(UUID, 42, safe_to_bootstrap=True, source="wsrep-recover", unusable=None),
        updated_at=1234.5,
    )


def test_publish_member_round_trips(dcs: DCS) -> None:
    member = full_member()
    dcs.publish_member(member, 60)
    assert dcs.snapshot().members == {"n1": member}


def test_member_with_unusable_or_no_position_round_trips(dcs: DCS) -> None:
    unusable = Member("n2", "127.0.0.3", position=Position(UUID, -1, unusable="grastate.dat is corrupt: x"))
    running = Member("n3", "127.0.0.4", running=True, state="Synced", cluster_status="Primary", cluster_size=3)
    dcs.publish_member(unusable, 60)
    dcs.publish_member(running, 60)
    members = dcs.snapshot().members
    assert members == {"n2": unusable, "n3": running}
    assert members["n3"].is_synced and members["n3"].is_primary
    assert not members["n2"].position.usable


def test_member_heartbeat_expires_and_remove_member(dcs: DCS, ttls: TTLs) -> None:
    dcs.publish_member(full_member("short"), ttls.short)
    dcs.publish_member(full_member("long"), 600)
    dcs.publish_member(full_member("gone"), 600)
    dcs.remove_member("gone")
    time.sleep(ttls.past_short)
    assert set(dcs.snapshot().members) == {"long"}


def test_member_from_newer_agent_with_unknown_fields(dcs: DCS) -> None:
    data = full_member("n9").to_dict() | {"future_field": 1}
    data["position"] |= {"future": "x"}
    dcs.put("members/n9", json.dumps(data), 60)
    assert dcs.snapshot().members["n9"] == full_member("n9")


def test_update_roster(dcs: DCS) -> None:
    dcs.update_roster(RosterEntry("a", "127.0.0.2", "http://127.0.0.2:8008", 3306))
    dcs.update_roster(RosterEntry("b", "127.0.0.3"))
    dcs.update_roster(RosterEntry("a", "127.0.0.2", "http://127.0.0.2:8008", 3306, stopped_gracefully=True))
    roster = dcs.snapshot().roster
    assert roster == {
        "a": RosterEntry("a", "127.0.0.2", "http://127.0.0.2:8008", 3306, stopped_gracefully=True),
        "b": RosterEntry("b", "127.0.0.3"),
    }


def test_roster_survives_member_expiry(dcs: DCS, ttls: TTLs) -> None:
    dcs.publish_member(full_member("a"), ttls.short)
    dcs.update_roster(RosterEntry("a", "127.0.0.2"))
    time.sleep(ttls.past_short)
    cluster = dcs.snapshot()
    assert cluster.members == {}
    assert set(cluster.roster) == {"a"}


def test_publish_seed(dcs: DCS) -> None:
    dcs.publish_seed(SeedRecord("box", "/srv/n1/seed", UUID, 3))
    assert dcs.snapshot().seed == SeedRecord("box", "/srv/n1/seed", UUID, 3)
    dcs.publish_seed(SeedRecord("box", "/srv/n1/seed", UUID, 7))
    assert dcs.snapshot().seed.seqno == 7


# ---- bootstrap lock ---------------------------------------------------------------------------------------


def test_bootstrap_lock_second_holder_refused(dcs: DCS) -> None:
    assert dcs.acquire_bootstrap_lock("a", 600, "most advanced") is True
    assert dcs.acquire_bootstrap_lock("b", 600, "me too") is False
    assert dcs.snapshot().bootstrap_lock_holder == "a"
    value = json.loads(dcs.get("bootstrap").value)
    assert value["holder"] == "a" and value["reason"] == "most advanced"


def test_bootstrap_lock_renew_by_holder(dcs: DCS) -> None:
    assert dcs.acquire_bootstrap_lock("a", 600, "first")
    before = dcs.get("bootstrap").version
    assert dcs.acquire_bootstrap_lock("a", 600, "renewed") is True
    after = dcs.get("bootstrap")
    assert after.version != before
    assert json.loads(after.value)["reason"] == "renewed"
    assert dcs.acquire_bootstrap_lock("b", 600, "x") is False


def test_bootstrap_lock_renewal_extends_the_lease(dcs: DCS, ttls: TTLs) -> None:
    dcs.acquire_bootstrap_lock("a", ttls.short, "short")
    assert dcs.acquire_bootstrap_lock("a", 600, "long") is True  # renewed (or re-taken if it had lapsed)
    time.sleep(ttls.past_short)
    assert dcs.snapshot().bootstrap_lock_holder == "a"
    assert dcs.acquire_bootstrap_lock("b", 600, "x") is False


def test_bootstrap_lock_release_only_by_holder(dcs: DCS) -> None:
    dcs.acquire_bootstrap_lock("a", 600, "r")
    dcs.release_bootstrap_lock("b")
    assert dcs.snapshot().bootstrap_lock_holder == "a"
    assert dcs.acquire_bootstrap_lock("b", 600, "r") is False
    dcs.release_bootstrap_lock("a")
    assert dcs.snapshot().bootstrap_lock_holder is None
    assert dcs.acquire_bootstrap_lock("b", 600, "r") is True
    dcs.release_bootstrap_lock("a")  # a no longer holds it: no effect
    assert dcs.snapshot().bootstrap_lock_holder == "b"


def test_release_when_nobody_holds_is_harmless(dcs: DCS) -> None:
    dcs.release_bootstrap_lock("a")
    assert dcs.acquire_bootstrap_lock("a", 600, "r") is True


def test_bootstrap_lock_expires_after_ttl(dcs: DCS, ttls: TTLs) -> None:
    dcs.acquire_bootstrap_lock("a", ttls.short, "r")
    time.sleep(ttls.past_short)
    assert dcs.snapshot().bootstrap_lock_holder is None
    assert dcs.acquire_bootstrap_lock("b", 600, "r") is True
    assert dcs.snapshot().bootstrap_lock_holder == "b"
    assert dcs.acquire_bootstrap_lock("a", 600, "r") is False


def test_bootstrap_lock_is_per_cluster(backend: Backend) -> None:
    one = backend.open("one")
    two = backend.open("two")
    assert one.acquire_bootstrap_lock("a", 600, "r")
    assert two.acquire_bootstrap_lock("b", 600, "r")
    assert one.snapshot().bootstrap_lock_holder == "a"
    assert two.snapshot().bootstrap_lock_holder == "b"
    one.close()
    two.close()


# ---- history ----------------------------------------------------------------------------------------------


def test_record_history_is_ordered_by_time(dcs: DCS) -> None:
    times = [1_700_000_100.5, 1_700_000_000.25, 1_700_000_050.0, 9.5, 10.25, 1_700_000_000.250001]
    for i, at in enumerate(times):
        dcs.record_history(HistoryEvent(at, f"n{i}", "bootstrap", f"reason {i}", {"i": i, "nested": {"x": [1]}}))
    history = dcs.snapshot().history
    assert [event.at for event in history] == sorted(times)
    first = history[0]
    assert first == HistoryEvent(9.5, "n3", "bootstrap", "reason 3", {"i": 3, "nested": {"x": [1]}})


def test_history_events_at_the_same_time_from_two_members_are_both_kept(dcs: DCS) -> None:
    dcs.record_history(HistoryEvent(100.0, "b", "wait", "x"))
    dcs.record_history(HistoryEvent(100.0, "a", "join", "y"))
    assert [(e.member, e.action) for e in dcs.snapshot().history] == [("a", "join"), ("b", "wait")]


def test_snapshot_gathers_everything(dcs: DCS) -> None:
    dcs.try_initialize("a", 60)
    dcs.finish_initialize("a", UUID)
    dcs.publish_member(full_member("a"), 60)
    dcs.update_roster(RosterEntry("a", "127.0.0.2"))
    dcs.publish_seed(SeedRecord("box", "/s", UUID, 1))
    dcs.acquire_bootstrap_lock("a", 60, "r")
    dcs.record_history(HistoryEvent(1.0, "a", "initialize", "won"))
    before = time.time()
    cluster = dcs.snapshot()
    assert isinstance(cluster, Cluster)
    assert cluster.initialize.cluster_uuid == UUID
    assert set(cluster.members) == {"a"} and set(cluster.roster) == {"a"}
    assert cluster.seed.path == "/s"
    assert cluster.bootstrap_lock_holder == "a"
    assert len(cluster.history) == 1
    assert cluster.read_at >= before


# ---- routing: writer lease, switchover, maintenance -------------------------------------------------------


def test_writer_lease_has_one_holder_and_is_released_only_by_it(dcs: DCS) -> None:
    assert dcs.acquire_writer("a", 60, "elected") is True
    assert dcs.acquire_writer("b", 60, "elected") is False
    assert dcs.acquire_writer("a", 60, "renewed") is True
    dcs.release_writer("b")  # not b's to release
    assert dcs.snapshot().writer == "a" and dcs.routing_view().writer == "a"
    dcs.release_writer("a")
    assert dcs.snapshot().writer is None
    assert dcs.acquire_writer("b", 60, "elected") is True


def test_writer_lease_expires(dcs: DCS, ttls: TTLs) -> None:
    dcs.acquire_writer("a", ttls.short, "elected")
    time.sleep(ttls.past_short)
    assert dcs.routing_view().writer is None
    assert dcs.acquire_writer("b", 60, "elected") is True


def test_routing_view_has_members_maintenance_and_switchover(dcs: DCS) -> None:
    dcs.publish_member(Member("n1", "127.0.0.2", running=True, state="Synced", cluster_status="Primary",
                              priority=7), 60)
    dcs.set_maintenance("n2", True)
    dcs.set_maintenance("n3", True)
    dcs.set_maintenance("n3", False)
    assert dcs.request_switchover("n1", "n2", 60) is True
    assert dcs.request_switchover("n1", None, 60) is False, "one request at a time"
    for view in (dcs.routing_view(), dcs.snapshot()):
        assert view.members["n1"].priority == 7 and view.members["n1"].is_synced
        assert view.maintenance == frozenset({"n2"})
        assert view.switchover is not None
        assert (view.switchover.from_member, view.switchover.to_member) == ("n1", "n2")
    dcs.clear_switchover()
    assert dcs.routing_view().switchover is None


# ---- a person's start from nothing (bootstrap --force --empty) ----------------------------------------------


def test_an_empty_start_swaps_the_initialize_record_and_drops_the_old_cluster(dcs: DCS) -> None:
    assert dcs.try_initialize("node1", 60)
    assert dcs.finish_initialize("node1", UUID)
    dcs.publish_seed(SeedRecord("box", "/seed", UUID, 3))
    dcs.update_roster(RosterEntry("node1", "127.0.0.2"))
    dcs.update_roster(RosterEntry("node2", "127.0.0.3"))
    dcs.raise_high_water(UUID, 40, "node2")
    dcs.record_history(HistoryEvent(time.time(), "node1", "bootstrap", "kept"))
    assert dcs.order_empty_start("node2", ttl=60)
    cluster = dcs.snapshot()
    assert cluster.initialize is not None and not cluster.initialize.done
    assert (cluster.initialize.by, cluster.initialize.ordered_empty, cluster.initialize.replaces) == (
        "node2", True, UUID)
    assert cluster.seed is None and cluster.roster == {} and cluster.high_water is None
    assert [e.reason for e in cluster.history] == ["kept"], "the history stays"
    assert not dcs.try_initialize("node3", 60), "nobody else may initialize meanwhile"
    assert dcs.finish_initialize("node2", "7b1c6d2e-86c4-11ee-a1a2-0242ac120002")
    done = dcs.snapshot().initialize
    assert done is not None and done.done and done.replaces == UUID
