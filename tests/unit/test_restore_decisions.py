"""`galera-pilot restore`: what every agent's ladder does under the order (agent/decisions.py), and the
plan the command shows and follows (restore/plan.py). Pure."""

from __future__ import annotations

from dataclasses import replace

import pytest
from decision_builders import CLUSTER_UUID, NOW, done, local_of, position, running, snapshot, stopped

from galera_pilot.agent.decisions import Action, RecoveryPolicy, decide
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.restore_order import RESTORING, STOPPING, RestoreOrder
from galera_pilot.cluster import InitializeRecord, Pause, Roll
from galera_pilot.restore.plan import plan_restore

POLICY = RecoveryPolicy()
ORDER = RestoreOrder("20261203-120000F", "n1", "galera-pilot restore (ops)", NOW, STOPPING, CLUSTER_UUID)


@pytest.mark.parametrize("me", [running("n2"), running("n2", status="non-Primary", state="Initialized"),
                                running("n2", state="Donor/Desynced")])
def test_while_the_order_stops_the_members_every_running_server_is_stopped(me: object) -> None:
    cluster = replace(snapshot(running("n1"), me), restore=ORDER)  # type: ignore[arg-type]
    decision = decide(local_of(me), cluster, POLICY, NOW)  # type: ignore[arg-type]
    assert decision.action == Action.RESTORE_STOP and ORDER.backup in decision.reason


@pytest.mark.parametrize("me", [stopped("n2", position(50, safe=True)), stopped("n2")])
def test_a_stopped_member_stays_stopped_whatever_it_holds(me: object) -> None:
    cluster = replace(snapshot(stopped("n1", position(10)), me, high_water=10), restore=ORDER)  # type: ignore[arg-type]
    decision = decide(local_of(me), cluster, POLICY, NOW)  # type: ignore[arg-type]
    assert decision.action == Action.WAIT and "stays stopped" in decision.reason


def test_the_ordered_member_restores_and_the_others_wait_for_it() -> None:
    record = InitializeRecord(by="n1", started_at=NOW, ordered_empty=True, replaces=CLUSTER_UUID,
                              restore_from=ORDER.backup)
    cluster = replace(snapshot(stopped("n1", position(10)), stopped("n2", position(12)), initialize=record),
                      restore=ORDER.moved(RESTORING))
    mine = decide(local_of(cluster.members["n1"]), cluster, POLICY, NOW)
    assert mine.action == Action.INITIALIZE and f"from backup {ORDER.backup}" in mine.reason
    other = decide(local_of(cluster.members["n2"]), cluster, POLICY, NOW)
    assert other.action == Action.WAIT and "n1 is initializing" in other.reason


def test_a_lost_initialize_record_never_lets_an_empty_node_start_a_new_empty_cluster() -> None:
    empty = stopped("n2")
    cluster = replace(snapshot(stopped("n1"), empty, no_init=True), restore=ORDER.moved(RESTORING))
    decision = decide(local_of(empty, has_data=False), cluster, POLICY, NOW)
    assert decision.action == Action.WAIT and "restore` again" in decision.reason
    assert decide(local_of(empty, has_data=False), replace(cluster, restore=None), POLICY, NOW).action \
        == Action.INITIALIZE  # the same node without the order: a brand-new cluster, as before


def test_the_old_datadirs_join_the_restored_cluster_by_a_full_state_transfer() -> None:
    new = "77777777-6666-5555-4444-333333333333"
    me = stopped("n2", position(12))  # the old cluster's datadir
    cluster = replace(snapshot(running("n1"), me, initialize=done("n1", new)), restore=ORDER.moved(RESTORING))
    decision = decide(local_of(me), cluster, POLICY, NOW)
    assert decision.action == Action.JOIN and decision.quarantine and "another cluster" in decision.quarantine


def test_a_pause_wins_over_the_order() -> None:
    cluster = replace(snapshot(running("n1")), restore=ORDER, pause=Pause(by="ops"))
    assert decide(local_of(running("n1")), cluster, POLICY, NOW).action == Action.NONE


# ---- the plan ---------------------------------------------------------------------------------------------

def manifest(set_id: str, kind: str = "full", parent: str | None = None) -> Manifest:
    return Manifest(set_id, kind, "galera", CLUSTER_UUID, started_at=1.0, node="n2", status="complete",  # type: ignore[arg-type]
                    finished_at=2.0, parent=parent, seqno=40)


def test_the_plan_names_the_member_the_others_and_who_serves() -> None:
    cluster = snapshot(running("n1"), running("n2"), stopped("n3", position(5)))
    plan = plan_restore(cluster, [manifest("f1"), manifest("i1", "incremental", "f1")], None)
    assert (plan.member, plan.others, plan.serving, plan.replaces) == ("n1", ("n2", "n3"), ("n1", "n2"), CLUSTER_UUID)
    text = "\n".join(plan.lines())
    assert "f1 (full, seqno 40) + i1 (incremental, seqno 40)" in text and "n2, n3 rejoin it" in text
    assert plan_restore(cluster, [manifest("f1")], "n2").member == "n2"


@pytest.mark.parametrize(("change", "member", "why"), [
    ({"pause": Pause(by="ops")}, None, "paused"),
    ({"roll": Roll(id="r1", order=("n1",))}, None, "rolling restart"),
    ({"backup_holder": "n2"}, None, "backup is running"),
    ({"restore": replace(ORDER, backup="other")}, None, "another restore"),
    ({}, "n3", "n3's agent is not running"),
    ({"members": {}}, None, "no member's agent is running"),
])
def test_the_plan_refuses(change: dict, member: str | None, why: str) -> None:
    cluster = replace(snapshot(running("n1"), running("n2"), roster=["n1", "n2", "n3"]), **change)
    with pytest.raises(ValueError, match=why):
        plan_restore(cluster, [manifest("f1")], member)
    with pytest.raises(ValueError, match="is logical"):
        plan_restore(snapshot(running("n1")), [manifest("l1", "logical")], None)


def test_a_resumed_restore_keeps_its_member_and_the_uuid_it_replaces() -> None:
    cluster = replace(snapshot(running("n1"), running("n2"), initialize=done("n1", "new")), restore=ORDER)
    plan = plan_restore(cluster, [manifest(ORDER.backup)], None)
    assert plan.member == "n1" and plan.replaces == CLUSTER_UUID
