"""The survivor of a crash that took every other member: it runs non-Primary and would hold the
full-outage recovery up forever (found by killing two of three servers); it stops itself, cleanly, once
every other member is known to be stopped with a known position, and only then."""

from __future__ import annotations

from dataclasses import replace

from decision_builders import ALL, NOW, local_of, position, running, snapshot, stopped

from galera_pilot.agent.decisions import ALONE_RESTART_AFTER, Action, alone_without_primary, decide
from galera_pilot.cluster import Position

SURVIVOR = running("n1", status="non-Primary", state="Initialized")


def decide_survivor(cluster, **overrides):  # type: ignore[no-untyped-def]
    fields = {"not_primary_for": ALONE_RESTART_AFTER} | overrides
    return decide(local_of(SURVIVOR, **fields), cluster, ALL, NOW)


def test_the_survivor_of_two_crashes_stops_itself_so_that_recovery_can_choose() -> None:
    cluster = snapshot(SURVIVOR, stopped("n2", position(40)), stopped("n3", position(38)))
    assert alone_without_primary(local_of(SURVIVOR), cluster)
    decision = decide_survivor(cluster)
    assert decision.action == Action.RESTART and "every other member is stopped" in decision.reason
    # Once stopped it reports its position like the others, and the ordinary recovery goes on from there.
    after = stopped("n1", position(41))
    assert decide(local_of(after), snapshot(after, stopped("n2", position(40)), stopped("n3", position(38))),
                  ALL, NOW).action == Action.BOOTSTRAP


def test_not_before_the_others_are_known_stopped_nor_too_soon() -> None:
    others = (stopped("n2", position(40)), stopped("n3", position(38)))
    assert decide_survivor(snapshot(SURVIVOR, *others), not_primary_for=3.0).action == Action.NONE
    silent = snapshot(SURVIVOR, others[0], roster=("n1", "n2", "n3"))  # n3's agent does not report
    assert decide_survivor(silent).action == Action.NONE
    crashed = stopped("n3", Position(others[1].position.uuid, -1))  # type: ignore[union-attr]
    assert decide_survivor(snapshot(SURVIVOR, others[0], crashed)).action == Action.NONE  # not recovered yet
    starting = replace(running("n3", status="", state="starting"))
    assert decide_survivor(snapshot(SURVIVOR, others[0], starting)).action == Action.NONE
    beside_primary = snapshot(SURVIVOR, running("n2"), running("n3"))  # a partition: Galera merges it back
    assert decide_survivor(beside_primary).action == Action.NONE
    alone_in_roster = snapshot(SURVIVOR)
    assert decide_survivor(alone_in_roster).action == Action.NONE


def test_a_node_waiting_for_pc_recovery_is_left_alone() -> None:
    cluster = snapshot(SURVIVOR, stopped("n2", position(40)), stopped("n3", position(38)))
    assert decide_survivor(cluster, pc_recovering_for=5.0).action == Action.NONE
