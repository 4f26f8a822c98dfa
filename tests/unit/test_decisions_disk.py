"""The disk-full rung: a node out of space waits with the sentence, never restarts, joins or quarantines."""

from __future__ import annotations

from decision_builders import NOW, local_of, position, running, snapshot, stopped

from galera_pilot.agent.decisions import Action, RecoveryPolicy, decide

FULL = "out of disk space on /c/node3/data: 11 MB free of 260 MB; not starting mariadbd until at least 43 MB are free"


def test_out_of_space_waits_instead_of_joining_or_quarantining() -> None:
    me = stopped("n3", position(-1, unusable="--wsrep-recover failed: No space left on device"))
    cluster = snapshot(running("n1"), running("n2"), me)
    assert decide(local_of(me), cluster, RecoveryPolicy(), NOW).quarantine  # what issue 20 did
    decision = decide(local_of(me, disk_full=FULL), cluster, RecoveryPolicy(), NOW)
    assert decision.action == Action.WAIT and decision.reason == FULL and decision.quarantine is None


def test_out_of_space_wins_over_the_crash_backoff_but_not_over_a_halt_or_a_running_server() -> None:
    me = stopped("n3", position(5))
    cluster = snapshot(running("n1"), me)
    assert decide(local_of(me, disk_full=FULL, backoff_remaining=3.0), cluster, RecoveryPolicy(), NOW).reason == FULL
    halted = decide(local_of(me, disk_full=FULL, crash_loop="it exited 5 times"), cluster, RecoveryPolicy(), NOW)
    assert halted.action == Action.HALT
    alive = running("n3")
    assert decide(local_of(alive, disk_full=FULL), snapshot(running("n1"), alive), RecoveryPolicy(),
                  NOW).action == Action.NONE


def test_space_back_joins_by_ist() -> None:
    me = stopped("n3", position(5))
    decision = decide(local_of(me), snapshot(running("n1"), running("n2"), me), RecoveryPolicy(), NOW)
    assert decision.action == Action.JOIN and "IST" in decision.reason and decision.quarantine is None
