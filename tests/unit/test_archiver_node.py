"""Who archives the binary logs (membership/archiver_node.py): exhaustively over small clusters, at most one
member ever decides to archive from one snapshot, the holder keeps the lease while Synced, and nobody
archives during a restore."""

from __future__ import annotations

import itertools

from galera_pilot.backup.restore_order import RestoreOrder
from galera_pilot.cluster import Cluster, Member, Removal
from galera_pilot.membership.archiver_node import archiver_turn

STATES = ("Synced", "Donor/Desynced", "Joining", "stopped")


def member(name: str, state: str) -> Member:
    return Member(name, "127.0.0.1", running=state != "stopped", state="" if state == "stopped" else state,
                  cluster_status="Primary" if state != "stopped" else "")


def cluster(states: dict[str, str], writer: str | None = "node1", removed: tuple[str, ...] = (),
            restore: RestoreOrder | None = None) -> Cluster:
    return Cluster(members={n: member(n, s) for n, s in states.items()}, writer=writer,
                   removed={n: Removal(n, "test") for n in removed}, restore=restore)


def test_a_free_lease_goes_to_a_synced_non_writer() -> None:
    snapshot = cluster({"node1": "Synced", "node2": "Synced", "node3": "Synced"})
    turns = {n: archiver_turn(snapshot, n, None, True) for n in snapshot.members}
    assert [n for n, t in turns.items() if t.archive] == ["node2"]
    assert turns["node1"].reason == "the archiver lease is free: node2 takes it (node2: Synced and not the writer)"
    only_writer = cluster({"node1": "Synced", "node2": "Joining"})
    assert archiver_turn(only_writer, "node1", None, True).archive


def test_the_holder_keeps_it_while_synced_and_gives_it_up_otherwise() -> None:
    snapshot = cluster({"node1": "Synced", "node2": "Synced", "node3": "Synced"})
    assert archiver_turn(snapshot, "node3", "node3", True).archive, "no move to the preferred node"
    assert not archiver_turn(snapshot, "node2", "node3", True).archive
    donor = cluster({"node1": "Synced", "node2": "Synced", "node3": "Donor/Desynced"})
    turn = archiver_turn(donor, "node3", "node3", True)
    assert not turn.archive and turn.release and "Donor/Desynced, not Synced" in turn.reason


def test_the_writer_hands_the_archive_to_a_synced_non_writer() -> None:
    snapshot = cluster({"node1": "Synced", "node2": "Synced"})
    turn = archiver_turn(snapshot, "node1", "node1", True)
    assert not turn.archive and turn.release and "writer and node2 is Synced" in turn.reason
    alone = cluster({"node1": "Synced", "node2": "Joining"})
    assert archiver_turn(alone, "node1", "node1", True).archive, "the only Synced member keeps it"


def test_off_and_restores_release() -> None:
    snapshot = cluster({"node1": "Synced", "node2": "Synced"})
    assert archiver_turn(snapshot, "node2", "node2", False).release
    restoring = cluster({"node1": "Synced", "node2": "Synced"}, restore=RestoreOrder("b1", "node1", "x", 0.0))
    turn = archiver_turn(restoring, "node2", "node2", True)
    assert not turn.archive and turn.release and "restore of backup b1" in turn.reason
    removed = cluster({"node1": "Synced", "node2": "Synced"}, removed=("node2",))
    assert archiver_turn(removed, "node2", "node2", True).release


def test_at_most_one_archiver_from_any_snapshot() -> None:
    names = ("node1", "node2", "node3")
    for states in itertools.product(STATES, repeat=3):
        for writer in (None, *names):
            for holder in (None, *names, "gone"):
                snapshot = cluster(dict(zip(names, states, strict=True)), writer=writer)
                deciding = [n for n in names if archiver_turn(snapshot, n, holder, True).archive]
                assert len(deciding) <= 1, (states, writer, holder, deciding)
                if deciding:
                    assert snapshot.members[deciding[0]].state == "Synced"
                    assert holder in (None, deciding[0])
                if holder is None and "Synced" in states:
                    assert deciding, (states, writer)
