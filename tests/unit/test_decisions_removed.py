"""A removed member (`galera-pilot remove`) leaves, whatever else the ladder would do; paused, it waits."""

from __future__ import annotations

from dataclasses import replace

import pytest
from decision_builders import NOW, done, local_of, position, running, snapshot, stopped

from galera_pilot.agent.decisions import Action, RecoveryPolicy, decide
from galera_pilot.cluster import Pause

POLICY = RecoveryPolicy()
REMOVED = "by ops:1 at 2026-12-02 12:00:00"


@pytest.mark.parametrize("me", [
    running("n3"),  # Synced: stop it cleanly
    running("n3", status="non-Primary", state="Initialized"),
    stopped("n3", position(10)),  # stopped with data: never rejoins by itself
    stopped("n3"),  # empty: never takes an SST either
])
def test_a_removed_member_leaves(me: object) -> None:
    cluster = snapshot(running("n1"), running("n2"), me, initialize=done())  # type: ignore[arg-type]
    decision = decide(local_of(me, removed=REMOVED), cluster, POLICY, NOW)  # type: ignore[arg-type]
    assert decision.action == Action.LEAVE and REMOVED in decision.reason
    assert ("stopping mariadbd cleanly" in decision.reason) == me.running  # type: ignore[attr-defined]


def test_a_removed_member_beside_no_primary_neither_bootstraps_nor_waits() -> None:
    me = stopped("n3", position(99, safe=True))
    cluster = snapshot(stopped("n1", position(5)), stopped("n2", position(5)), me)
    assert decide(local_of(me, removed=REMOVED), cluster, POLICY, NOW).action == Action.LEAVE


def test_paused_even_a_removed_member_takes_no_action() -> None:
    me = running("n3")
    cluster = replace(snapshot(running("n1"), me), pause=Pause(by="ops"))
    assert decide(local_of(me, removed=REMOVED), cluster, POLICY, NOW).action == Action.NONE
