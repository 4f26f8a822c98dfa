"""The routing judgements (/health, /read, /writer) and the writer election, pure functions only."""

from __future__ import annotations

from galera_pilot.cluster import Cluster, Member
from galera_pilot.routing.health import (
    STALE_AFTER,
    LiveStatus,
    health,
    is_writer,
    may_keep_writer,
    may_read,
    parse_max_queue,
)
from galera_pilot.routing.writer import (
    CLAIM_MARGIN,
    Candidate,
    Step,
    candidates_from,
    choose_writer,
    claim_until,
    writer_step,
)

NOW = 100.0


def live(state: str = "Synced", cluster_status: str = "Primary", age: float = 0.1, **extra: str) -> LiveStatus:
    status = {"wsrep_local_state_comment": state, "wsrep_cluster_status": cluster_status, **extra}
    return LiveStatus(NOW - age, status)


def test_synced_primary_is_healthy_and_may_read() -> None:
    assert health(live(), NOW)
    assert may_read(live(), NOW, maintenance=False)


def test_not_synced_or_not_primary_is_unhealthy() -> None:
    for state, cluster_status in (("Joiner", "Primary"), ("Joined", "Primary"), ("Donor/Desynced", "Primary"),
                                  ("Synced", "non-Primary"), ("Initialized", "Disconnected")):
        verdict = health(live(state, cluster_status), NOW)
        assert not verdict, (state, cluster_status)
        assert not may_read(live(state, cluster_status), NOW, maintenance=False)


def test_no_answer_or_stale_answer_is_unhealthy() -> None:
    assert not health(LiveStatus(), NOW), "never observed"
    assert not health(LiveStatus(NOW, {}), NOW), "stopped / starting: the query failed"
    stale = live(age=STALE_AFTER + 0.01)
    assert "no answer" in health(stale, NOW).reason
    assert not may_read(stale, NOW, maintenance=False)
    assert not is_writer(stale, NOW, maintenance=False, lease_claim_until=NOW + 2)


def test_donor_reads_only_where_configured() -> None:
    donor = live("Donor/Desynced")
    assert not may_read(donor, NOW, maintenance=False, donor_reads=False)
    assert may_read(donor, NOW, maintenance=False, donor_reads=True)
    assert not may_read(live("Donor/Desynced", "non-Primary"), NOW, maintenance=False, donor_reads=True)
    assert not may_read(live("Donor/Desynced", age=5), NOW, maintenance=False, donor_reads=True)


def test_maintenance_drains_reads_and_writes_but_not_health() -> None:
    assert health(live(), NOW)
    assert not may_read(live(), NOW, maintenance=True)
    assert not is_writer(live(), NOW, maintenance=True, lease_claim_until=NOW + 2)


def test_max_queue() -> None:
    queued = live(wsrep_local_recv_queue="7")
    assert may_read(queued, NOW, maintenance=False, max_queue=7)
    assert not may_read(queued, NOW, maintenance=False, max_queue=6)
    assert may_read(queued, NOW, maintenance=False)
    assert parse_max_queue("max_queue=5") == 5
    assert parse_max_queue("a=1&max_queue=0") == 0
    assert parse_max_queue("max_queue=-1") is None
    assert parse_max_queue("") is None


def test_writer_needs_an_unexpired_claim_and_health() -> None:
    assert is_writer(live(), NOW, maintenance=False, lease_claim_until=NOW + 0.01)
    assert not is_writer(live(), NOW, maintenance=False, lease_claim_until=NOW)
    assert not is_writer(live("Joined"), NOW, maintenance=False, lease_claim_until=NOW + 2)


def test_a_writer_keeps_its_role_as_a_donor_but_a_donor_does_not_become_writer() -> None:
    donor = live("Donor/Desynced")
    assert may_keep_writer(donor, NOW)
    assert is_writer(donor, NOW, maintenance=False, lease_claim_until=NOW + 2)
    assert not health(donor, NOW)
    assert not may_keep_writer(live("Donor/Desynced", "non-Primary"), NOW)
    assert not may_keep_writer(live("Donor/Desynced", age=STALE_AFTER + 1), NOW)
    assert not may_keep_writer(live("Joiner"), NOW)


def test_a_writer_keeps_its_role_while_it_catches_up_after_donating() -> None:
    """Seen in a 10x run of the routing tests: the writer donated node4's IST, went Donor -> Joined ->
    Synced, gave the role up while Joined, and HAProxy cut the writer sessions it should have kept."""
    joined = live("Joined", wsrep_ready="ON")
    assert may_keep_writer(joined, NOW)
    assert is_writer(joined, NOW, maintenance=False, lease_claim_until=NOW + 2)
    assert not health(joined, NOW) and not may_read(joined, NOW, maintenance=False), "not a new writer, no reads"
    assert not may_keep_writer(live("Joined", wsrep_ready="OFF"), NOW), "a node that refuses queries"
    assert not may_keep_writer(live("Joined"), NOW)
    assert not may_keep_writer(live("Joined", "non-Primary", wsrep_ready="ON"), NOW)
    assert not may_keep_writer(live("Joined", age=STALE_AFTER + 1, wsrep_ready="ON"), NOW)


def test_claim_ends_before_the_lease_can_expire() -> None:
    sent_at, ttl = 10.0, 3.0
    assert claim_until(sent_at, ttl) == sent_at + ttl - CLAIM_MARGIN
    assert claim_until(sent_at, ttl) < sent_at + ttl


def c(name: str, synced: bool = True, priority: int = 0, maintenance: bool = False) -> Candidate:
    return Candidate(name, synced, priority, maintenance)


def test_election_prefers_priority_then_name() -> None:
    assert choose_writer([c("node2"), c("node1"), c("node3")], None) == "node1"
    assert choose_writer([c("node1"), c("node2", priority=5), c("node3", priority=5)], None) == "node2"
    assert choose_writer([c("node1", synced=False), c("node2")], None) == "node2"
    assert choose_writer([c("node1", maintenance=True), c("node2")], None) == "node2"
    assert choose_writer([c("node1", synced=False)], None) is None
    assert choose_writer([], None) is None


def test_healthy_holder_keeps_the_role() -> None:
    assert choose_writer([c("node1", priority=9), c("node2")], "node2") == "node2"
    assert choose_writer([c("node1", priority=9), c("node2", synced=False)], "node2") == "node1"
    assert choose_writer([c("node1"), c("node2", maintenance=True)], "node2") == "node1"


def test_switchover() -> None:
    members = [c("node1"), c("node2"), c("node3", priority=3)]
    assert choose_writer(members, "node1", switchover_from="node1") == "node3"
    assert choose_writer(members, "node1", switchover_from="node1", switchover_to="node2") == "node2"
    # A target that cannot take it: nobody (the CLI checks the target first; the request expires).
    assert choose_writer([c("node1"), c("node2", synced=False)], "node1", "node1", "node2") is None
    # Once the new writer holds it, a pending request still names the target.
    assert choose_writer(members, "node2", switchover_from="node1", switchover_to="node2") == "node2"


def test_writer_steps() -> None:
    assert writer_step("node1", None, "node1") == Step.ACQUIRE
    assert writer_step("node1", None, "node2") == Step.NONE
    assert writer_step("node1", "node1", "node1") == Step.RENEW
    assert writer_step("node1", "node1", "node2") == Step.RELEASE
    assert writer_step("node1", "node1", None) == Step.RELEASE
    assert writer_step("node1", "node2", "node1") == Step.NONE, "never take a lease another member holds"


def test_candidates_from_dcs_view() -> None:
    wall = 1000.0
    synced = {"running": True, "state": "Synced", "cluster_status": "Primary"}
    view = Cluster(members={
        "node1": Member.from_dict({"name": "node1", "address": "a", "updated_at": wall, **synced}),
        "node2": Member.from_dict({"name": "node2", "address": "b", "updated_at": wall + 10, "priority": 4,
                                   **synced}),
        "node3": Member.from_dict({"name": "node3", "address": "c", "updated_at": wall, "running": True,
                                   "state": "Joined", "cluster_status": "Primary"}),
    }, maintenance=frozenset({"node4"}))
    found = {x.name: x for x in candidates_from(view, "node4", True, 2, fresh={"node1", "node3"})}
    assert found["node1"].eligible
    assert not found["node2"].eligible, "a stale record cannot take the lease, whatever time it says"
    assert found["node2"].priority == 4
    assert not found["node3"].eligible
    assert found["node4"].synced and found["node4"].maintenance and not found["node4"].eligible
    assert choose_writer(found.values(), None) == "node1"
