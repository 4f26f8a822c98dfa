"""decisions.py: the decision ladder, rung by rung."""

from __future__ import annotations

from dataclasses import replace

import pytest
from decision_builders import (
    ALL,
    CLUSTER_UUID,
    FOREIGN_UUID,
    HOST,
    MAJORITY,
    NOW,
    done,
    local_of,
    position,
    running,
    snapshot,
    stopped,
)

from galera_pilot.agent.decisions import (
    Action,
    LocalState,
    RecoveryPolicy,
    choose_bootstrap_node,
    decide,
    join_peers,
    member_for_list,
    rank,
    seed_usable,
)
from galera_pilot.cluster import UNKNOWN_UUID, ArbitratorReport, Cluster, InitializeRecord, Member, SeedRecord


def decide_for(member: Member, cluster: Cluster, policy: RecoveryPolicy = ALL, **local: object):
    return decide(local_of(member, **local), cluster, policy, NOW)


def actions(cluster: Cluster, policy: RecoveryPolicy = ALL, **local: object) -> dict[str, Action]:
    """Every stopped member's decision over the same snapshot."""
    return {name: decide_for(m, cluster, policy, **local).action for name, m in cluster.members.items()}


# ---- the top of the ladder -------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "state"), [("Primary", "Synced"), ("Primary", "Donor/Desynced"),
                                               ("non-Primary", "Initialized"), ("", "starting")])
def test_running_node_needs_nothing(status: str, state: str) -> None:
    me = running("n1", status, state)
    # Not even a crash-loop flag or a missing initialize record makes the agent act on a running server.
    for cluster in (snapshot(me), snapshot(me, no_init=True)):
        decision = decide_for(me, cluster, crash_loop="exited 5 times", backoff_remaining=3.0)
        assert decision.action == Action.NONE
        assert decision.peers == ()


def test_crash_loop_halts() -> None:
    me = stopped("n1", position(5))
    decision = decide_for(me, snapshot(me, running("n2")), crash_loop="it exited 5 times within 300 s")
    assert decision.action == Action.HALT
    assert "it exited 5 times within 300 s" in decision.reason


def test_crash_loop_beats_backoff() -> None:
    me = stopped("n1", position(5))
    assert decide_for(me, snapshot(me), crash_loop="loop", backoff_remaining=5.0).action == Action.HALT


def test_backoff_waits() -> None:
    me = stopped("n1", position(5))
    decision = decide_for(me, snapshot(me, running("n2")), backoff_remaining=2.5)
    assert decision.action == Action.WAIT
    assert "2.5 s" in decision.reason


# ---- initialization ---------------------------------------------------------------------------------------


def test_no_cluster_and_empty_datadir_initializes() -> None:
    me = stopped("n1")
    assert decide_for(me, snapshot(me, no_init=True)).action == Action.INITIALIZE


def test_no_cluster_but_data_refuses() -> None:
    me = stopped("n1", position(10))
    decision = decide_for(me, snapshot(me, no_init=True))
    assert decision.action == Action.WAIT
    assert "refusing" in decision.reason


def test_no_cluster_data_without_position_refuses() -> None:
    me = stopped("n1")
    assert decide_for(me, snapshot(me, no_init=True), has_data=True).action == Action.WAIT


@pytest.mark.parametrize("initialize", [None, InitializeRecord(by="n3", started_at=1.0)])
def test_never_initialize_next_to_a_primary_component(initialize: InitializeRecord | None) -> None:
    me = stopped("n3")
    cluster = Cluster(initialize=initialize, members={"n1": running("n1"), "n2": running("n2"), "n3": me})
    decision = decide_for(me, cluster)
    assert decision.action != Action.INITIALIZE


def test_initialization_in_progress_by_another_waits() -> None:
    me = stopped("n2")
    cluster = snapshot(me, initialize=InitializeRecord(by="n1", started_at=1.0))
    decision = decide_for(me, cluster)
    assert decision.action == Action.WAIT
    assert "n1" in decision.reason


def test_own_interrupted_initialization_resumes() -> None:
    me = stopped("n1", position(0))
    cluster = snapshot(me, initialize=InitializeRecord(by="n1", started_at=1.0))
    assert decide_for(me, cluster).action == Action.INITIALIZE
    assert decide_for(stopped("n1"), cluster).action == Action.INITIALIZE


# ---- joining a Primary Component --------------------------------------------------------------------------


def test_join_primary_peers_sorted_excluding_self() -> None:
    me = stopped("n1", position(3))
    cluster = snapshot(
        me,
        running("n4", "Primary", "Synced", galera_port=4600),
        running("n2", "Primary", "Donor/Desynced"),
        running("n3", "non-Primary", "Initialized"),  # not part of the Primary Component
        stopped("n5", position(9)),
        running("n6", "Primary", "Joined", address="10.0.0.1"),
    )
    decision = decide_for(me, cluster)
    assert decision.action == Action.JOIN
    assert decision.peers == ("10.0.0.1:4567", "127.0.0.3:4567", "127.0.0.5:4600")
    assert decision.copy_seed is False
    assert "IST" in decision.reason


def test_join_peers_exclude_a_stale_record_of_self() -> None:
    stale_self = running("n1", "Primary", "Synced")
    cluster = snapshot(stale_self, running("n2"))
    assert join_peers(cluster, "n1") == ("127.0.0.3:4567",)
    decision = decide(LocalState("n1", HOST, has_data=True, position=position(4)), cluster, ALL, NOW)
    assert decision.action == Action.JOIN
    assert decision.peers == ("127.0.0.3:4567",)


def test_empty_joiner_gets_a_full_sst_without_seed() -> None:
    me = stopped("n3")
    decision = decide_for(me, snapshot(me, running("n1")), use_seed=False)
    assert decision.action == Action.JOIN
    assert decision.peers == ("127.0.0.2:4567",)
    assert not decision.copy_seed
    assert "full SST" in decision.reason


@pytest.mark.parametrize("state", ["Donor/Desynced", "Joining", "Joined"])
def test_primary_without_synced_member_is_still_joined(state: str) -> None:
    # Since af9ad04 a Primary Component is joined whether or not a member is Synced yet (the agent takes a
    # one-at-a-time join lease; Galera itself waits for a donor).
    me = stopped("n1", position(3))
    decision = decide_for(me, snapshot(me, running("n2", "Primary", state)))
    assert decision.action == Action.JOIN
    assert decision.peers == ("127.0.0.3:4567",)


def test_a_stale_primary_record_of_self_is_not_a_peer() -> None:
    # n1's own listed record still says Primary; the only real peer is n2.
    cluster = snapshot(running("n1", "Primary", "Synced"), running("n2", "Primary", "Joining"))
    decision = decide(LocalState("n1", HOST, has_data=True, position=position(4)), cluster, ALL, NOW)
    assert decision.action == Action.JOIN
    assert decision.peers == ("127.0.0.3:4567",)


def test_only_a_stale_primary_record_of_self_is_an_outage() -> None:
    cluster = snapshot(running("n1", "Primary", "Synced"), stopped("n2", position(9)))
    decision = decide(LocalState("n1", HOST, has_data=True, position=position(4)), cluster, ALL, NOW)
    assert decision.action == Action.WAIT
    assert "waiting for n2 to bootstrap" in decision.reason


SEED = SeedRecord(HOST, "/srv/n1/seed", CLUSTER_UUID, 3)


def test_seed_on_same_host_is_copied() -> None:
    me = stopped("n3")
    cluster = snapshot(me, running("n1"), seed=SEED)
    assert seed_usable(cluster, local_of(me))
    decision = decide_for(me, cluster)
    assert decision.action == Action.JOIN
    assert decision.copy_seed is True
    assert decision.peers == ("127.0.0.2:4567",)


@pytest.mark.parametrize(
    ("seed", "local"),
    [
        (SeedRecord("other-host", "/srv/n1/seed", CLUSTER_UUID, 3), {}),
        (SeedRecord(HOST, "/srv/n1/seed", FOREIGN_UUID, 3), {}),
        (SEED, {"use_seed": False}),
        (SEED, {"has_data": True}),
        (None, {}),
    ],
)
def test_seed_not_used(seed: SeedRecord | None, local: dict) -> None:
    me = stopped("n3")
    cluster = snapshot(me, running("n1"), seed=seed)
    assert not seed_usable(cluster, local_of(me, **local))
    decision = decide_for(me, cluster, **local)
    assert decision.action == Action.JOIN
    assert decision.copy_seed is False


def test_seed_of_an_unfinished_initialization_is_not_used() -> None:
    me = stopped("n3")
    cluster = snapshot(me, seed=SEED, initialize=InitializeRecord(by="n1"))
    assert not seed_usable(cluster, local_of(me))


def test_no_primary_empty_datadir_copies_the_seed_ahead_of_time() -> None:
    """Only in a brand-new cluster (nothing committed beyond the seed): test_decisions_high_water.py has
    the cluster that served."""
    me = stopped("n3")
    decision = decide_for(me, snapshot(me, stopped("n1", position(3)), seed=SEED, lock="n1", high_water=3))
    assert decision.action == Action.COPY_SEED
    assert decision.copy_seed is True


# ---- full outage ------------------------------------------------------------------------------------------


def test_full_outage_empty_datadir_waits() -> None:
    me = stopped("n3")
    cluster = snapshot(me, stopped("n1", position(3)))
    decision = decide_for(me, cluster)
    assert decision.action == Action.WAIT
    assert "empty datadir" in decision.reason


def test_full_outage_own_seqno_minus_one_waits() -> None:
    me = stopped("n1", position(-1))
    assert decide_for(me, snapshot(me)).action == Action.WAIT
    assert decide_for(me, snapshot(me, stopped("n2", position(-1)))).action == Action.WAIT


def test_full_outage_own_seqno_minus_one_asks_for_recovery() -> None:
    # Regression: the check used to be `usable and seqno < 0`, never true since usable requires seqno >= 0.
    me = stopped("n1", position(-1))
    decision = decide_for(me, snapshot(me, stopped("n2", position(5))))
    assert decision.action == Action.WAIT
    assert "wsrep-recover" in decision.reason


def test_unrecovered_peer_blocks_bootstrap() -> None:
    a = stopped("n1", position(10))
    b = stopped("n2", position(-1))  # crashed: its real seqno (maybe > 10) is still unknown
    assert decide_for(a, snapshot(a, b)).action == Action.WAIT


def test_lock_held_by_another_waits() -> None:
    me = stopped("n1", position(50))
    decision = decide_for(me, snapshot(me, stopped("n2", position(10)), lock="n2"))
    assert decision.action == Action.WAIT
    assert "n2 holds the bootstrap lock" in decision.reason


def test_lock_held_by_self_still_bootstraps() -> None:
    me = stopped("n1", position(50))
    assert decide_for(me, snapshot(me, stopped("n2", position(10)), lock="n1")).action == Action.BOOTSTRAP


def test_single_node_cluster_bootstraps_itself() -> None:
    me = stopped("n1", position(7))
    decision = decide_for(me, snapshot(me))
    assert decision.action == Action.BOOTSTRAP
    assert decision.inputs["policy"] == "all"
    assert decision.inputs["positions"]["n1"]["seqno"] == 7


def test_policy_all_waits_for_missing_roster_members() -> None:
    a, b = stopped("n1", position(10)), stopped("n2", position(5))
    cluster = snapshot(a, b, roster=["n1", "n2", "n3", "n4"])
    for member in (a, b):
        decision = decide_for(member, cluster, no_primary_since=0.0)  # waited forever: 'all' still waits
        assert decision.action == Action.WAIT
        assert "n3, n4" in decision.reason
    assert decide_for(a, snapshot(a, b, stopped("n3", position(1)), stopped("n4", position(2)))).action == \
        Action.BOOTSTRAP


def test_policy_all_waits_for_a_running_but_not_primary_roster_member() -> None:
    a = stopped("n1", position(10))
    cluster = snapshot(a, running("n2", "non-Primary", "Initialized"))
    decision = decide_for(a, cluster)
    assert decision.action == Action.WAIT
    assert "n2" in decision.reason


def test_majority_waits_for_the_timeout() -> None:
    a, b = stopped("n1", position(10)), stopped("n2", position(5))
    cluster = snapshot(a, b, roster=["n1", "n2", "n3"])
    early = decide_for(a, cluster, MAJORITY, no_primary_since=NOW - 10)
    assert early.action == Action.WAIT
    assert "n3" in early.reason and "20 s" in early.reason
    assert decide_for(a, cluster, MAJORITY, no_primary_since=None).action == Action.WAIT
    assert decide_for(a, cluster, MAJORITY, no_primary_since=NOW - 30).action == Action.BOOTSTRAP
    late = decide_for(b, cluster, MAJORITY, no_primary_since=NOW - 300)
    assert late.action == Action.WAIT
    assert "waiting for n1 to bootstrap" in late.reason


def test_majority_proceeds_only_with_a_strict_majority() -> None:
    a, b = stopped("n1", position(10)), stopped("n2", position(5))
    even = snapshot(a, b, roster=["n1", "n2", "n3", "n4"])  # 2 of 4 is not a majority
    decision = decide_for(a, even, MAJORITY, no_primary_since=0.0)
    assert decision.action == Action.WAIT
    assert "minority" in decision.reason
    three_of_four = snapshot(a, b, stopped("n3", position(1)), roster=["n1", "n2", "n3", "n4"])
    assert decide_for(a, three_of_four, MAJORITY, no_primary_since=0.0).action == Action.BOOTSTRAP


def test_a_live_arbitrator_is_a_vote_in_the_majority_but_never_a_position() -> None:
    """Two data nodes and garbd: with n2 gone for good, n1 and the arbitrator are 2 votes of 3."""
    a = stopped("n1", position(10))
    garbd = {"arbitrator1": ArbitratorReport("arbitrator1", "10.0.0.9")}
    alone = snapshot(a, roster=["n1", "n2"])
    assert "minority" in decide_for(a, alone, MAJORITY, no_primary_since=0.0).reason
    with_garbd = replace(alone, arbitrators=garbd)
    assert decide_for(a, with_garbd, MAJORITY, no_primary_since=0.0).action == Action.BOOTSTRAP
    assert decide_for(a, with_garbd, MAJORITY, no_primary_since=NOW - 10).action == Action.WAIT
    assert decide_for(a, with_garbd).action == Action.WAIT  # policy all: every data member must report
    silent = replace(alone, arbitrators={"arbitrator1": ArbitratorReport("arbitrator1", "10.0.0.9", weight=0)})
    assert "minority" in decide_for(a, silent, MAJORITY, no_primary_since=0.0).reason  # weight 0: no vote
    # One position of three data members and the arbitrator: 2 of 4 votes, still not a majority.
    nobody = replace(snapshot(stopped("n3", position(3)), roster=["n1", "n2", "n3"]), arbitrators=garbd)
    assert decide_for(stopped("n3", position(3)), nobody, MAJORITY, no_primary_since=0.0).action == Action.WAIT


def test_minority_never_bootstraps() -> None:
    a = stopped("n1", position(100, safe=True))
    cluster = snapshot(a, roster=["n1", "n2", "n3"])
    for since in (NOW - 30, NOW - 1e6, 0.0):
        decision = decide_for(a, cluster, MAJORITY, no_primary_since=since)
        assert decision.action == Action.WAIT
        assert "minority" in decision.reason


def test_local_not_yet_in_roster_counts_itself() -> None:
    a = stopped("n1", position(10))
    cluster = snapshot(a, roster=[])
    assert decide_for(a, cluster).action == Action.BOOTSTRAP


def test_best_is_highest_seqno() -> None:
    cluster = snapshot(stopped("n1", position(10, safe=True)), stopped("n2", position(12)),
                       stopped("n3", position(11)))
    assert actions(cluster) == {"n1": Action.WAIT, "n2": Action.BOOTSTRAP, "n3": Action.WAIT}
    decision = decide_for(cluster.members["n1"], cluster)
    assert "waiting for n2 to bootstrap" in decision.reason


def test_tie_broken_by_safe_to_bootstrap() -> None:
    cluster = snapshot(stopped("n1", position(12)), stopped("n2", position(12, safe=True)),
                       stopped("n3", position(12)))
    assert actions(cluster) == {"n1": Action.WAIT, "n2": Action.BOOTSTRAP, "n3": Action.WAIT}


def test_tie_broken_by_smallest_name() -> None:
    cluster = snapshot(stopped("n3", position(12, safe=True)), stopped("n2", position(12, safe=True)),
                       stopped("n4", position(12, safe=True)))
    assert actions(cluster) == {"n2": Action.BOOTSTRAP, "n3": Action.WAIT, "n4": Action.WAIT}


def test_foreign_uuid_never_chosen() -> None:
    cluster = snapshot(stopped("n1", position(999, uuid=FOREIGN_UUID, safe=True)), stopped("n2", position(3)))
    assert actions(cluster) == {"n1": Action.WAIT, "n2": Action.BOOTSTRAP}


@pytest.mark.parametrize("bad", [
    position(999, safe=True, unusable="an SST was aborted here (sst_in_progress marker)"),
    position(-1, uuid=UNKNOWN_UUID, unusable="grastate.dat is corrupt: x"),
    position(999, uuid=UNKNOWN_UUID),
])
def test_unusable_positions_never_chosen(bad) -> None:
    cluster = snapshot(stopped("n1", bad), stopped("n2", position(3)))
    assert actions(cluster) == {"n1": Action.WAIT, "n2": Action.BOOTSTRAP}


def test_nobody_usable_waits_and_says_why() -> None:
    cluster = snapshot(stopped("n1", position(9, uuid=FOREIGN_UUID)),
                       stopped("n2", position(-1, uuid=UNKNOWN_UUID, unusable="grastate.dat is missing")))
    for name in ("n1", "n2"):
        decision = decide_for(cluster.members[name], cluster)
        assert decision.action == Action.WAIT
        assert "foreign cluster UUID" in decision.reason
        assert "grastate.dat is missing" in decision.reason


def test_own_fresh_position_overrides_the_published_one() -> None:
    published = stopped("n1", position(1))
    cluster = snapshot(published, stopped("n2", position(5)))
    fresh = LocalState("n1", HOST, has_data=True, position=position(9))
    assert decide(fresh, cluster, ALL, NOW).action == Action.BOOTSTRAP


def test_after_a_primary_is_lost_everyone_recovers_to_the_same_choice() -> None:
    names = [f"n{i}" for i in range(1, 6)]
    cluster = snapshot(*(stopped(n, position(i * 10)) for i, n in enumerate(names, 1)), roster=names)
    assert [n for n, a in actions(cluster).items() if a == Action.BOOTSTRAP] == ["n5"]


# ---- the pieces -------------------------------------------------------------------------------------------


def test_rank_orders_best_first() -> None:
    positions = {"b": position(5), "a": position(5), "c": position(5, safe=True), "d": position(6)}
    assert sorted(positions, key=lambda n: rank(positions[n], n)) == ["d", "c", "a", "b"]


def test_choose_bootstrap_node_describes_every_position() -> None:
    cluster = snapshot(stopped("n1", position(4)), stopped("n2", position(9, uuid=FOREIGN_UUID)))
    choice = choose_bootstrap_node(cluster, local_of(cluster.members["n1"]), ALL, NOW)
    assert choice.chosen == "n1"
    assert choice.positions == {
        "n1": {"uuid": CLUSTER_UUID, "seqno": 4, "safe_to_bootstrap": False, "unusable": None},
        "n2": {"uuid": FOREIGN_UUID, "seqno": 9, "safe_to_bootstrap": False, "unusable": None},
    }


def test_decision_inputs_are_recorded() -> None:
    cluster = snapshot(stopped("n1", position(4)), stopped("n2", position(2)))
    decision = decide_for(cluster.members["n2"], cluster, MAJORITY)
    assert decision.inputs["policy"] == "majority"
    assert set(decision.inputs["positions"]) == {"n1", "n2"}


def test_member_for_list() -> None:
    assert member_for_list(None) == "unreachable"
    assert member_for_list(running("n1", state="Donor/Desynced")) == "Donor/Desynced"
    assert member_for_list(stopped("n1")) == "stopped"


def test_initialize_record_done() -> None:
    assert done().done
    assert not InitializeRecord(by="n1").done


# ---- a person's override: galera-pilot bootstrap --force ---------------------------------------------------


def test_forced_member_bootstraps_without_waiting_for_missing_members() -> None:
    from dataclasses import replace

    me = stopped("n2", position(5))
    cluster = replace(snapshot(me, roster=["n1", "n2", "n3"]), forced_bootstrap="n2")
    decision = decide_for(me, cluster)
    assert decision.action == Action.BOOTSTRAP
    assert "a person ordered it" in decision.reason and decision.inputs["policy"] == "forced"


def test_others_wait_for_the_forced_member_even_when_more_advanced() -> None:
    from dataclasses import replace

    me, other = stopped("n1", position(50)), stopped("n2", position(5))
    cluster = replace(snapshot(me, other), forced_bootstrap="n2")
    decision = decide_for(me, cluster)
    assert decision.action == Action.WAIT and "ordered n2" in decision.reason


def test_forced_order_never_overrides_a_live_primary_or_an_unusable_datadir() -> None:
    from dataclasses import replace

    me = stopped("n2", position(5))
    with_primary = replace(snapshot(me, running("n1")), forced_bootstrap="n2")
    assert decide_for(me, with_primary).action == Action.JOIN
    broken = stopped("n2", position(5, unusable="an SST was aborted here"))
    assert decide_for(broken, replace(snapshot(broken), forced_bootstrap="n2")).action == Action.WAIT


def test_recovery_policy_comes_from_the_config() -> None:
    from unit_helpers import make_config

    config = make_config(recovery={"policy": "majority", "majority_timeout": 5})
    assert (config.recovery.policy, config.recovery.majority_timeout) == ("majority", 5.0)


# ---- datadirs that must not be joined as they are -------------------------------------------------------


@pytest.mark.parametrize(("pos", "why"), [
    (position(7, uuid=UNKNOWN_UUID, unusable="an SST was aborted here (sst_in_progress marker)"), "aborted"),
    (position(-1, uuid=UNKNOWN_UUID, unusable="grastate.dat is corrupt: seqno 'x' is not a number"), "corrupt"),
    (position(900, uuid=FOREIGN_UUID), "another cluster"),
])
def test_unusable_or_foreign_datadir_joins_with_a_full_sst_after_quarantine(pos, why: str) -> None:
    me = stopped("n3", pos)
    decision = decide_for(me, snapshot(me, running("n1")))
    assert decision.action == Action.JOIN
    assert decision.quarantine is not None and why in decision.quarantine
    assert "moved aside" in decision.reason


def test_healthy_datadir_joins_without_quarantine() -> None:
    me = stopped("n3", position(12))
    decision = decide_for(me, snapshot(me, running("n1")))
    assert decision.action == Action.JOIN and decision.quarantine is None


def test_disconnected_mariadbd_is_restarted_only_after_a_while_and_only_beside_a_primary() -> None:
    from dataclasses import replace

    me = replace(running("n3", status="Disconnected", state="Initialized"))
    beside_primary = snapshot(me, running("n1"))
    assert decide_for(me, beside_primary, disconnected_for=2.0).action == Action.NONE
    assert decide_for(me, beside_primary, disconnected_for=11.0).action == Action.RESTART
    alone = snapshot(me)
    assert decide_for(me, alone, disconnected_for=60.0).action == Action.NONE
    partitioned = replace(running("n3", status="non-Primary", state="Initialized"))
    assert decide_for(partitioned, snapshot(partitioned, running("n1")), disconnected_for=60.0).action == Action.NONE
    waiting = decide_for(me, beside_primary, disconnected_for=2.0)
    assert "restarted if it stays so for 10 s" in waiting.reason and "by itself" not in waiting.reason


def test_a_node_that_lost_a_consistency_vote_is_restarted_at_once_beside_a_primary() -> None:
    # Galera never lets an Inconsistent node back into the group; the 10 s grace only delayed its rejoin.
    me = running("n3", status="Disconnected", state="Inconsistent")
    decision = decide_for(me, snapshot(me, running("n1")), disconnected_for=0.1)
    assert decision.action == Action.RESTART and "consistency vote" in decision.reason
    assert decide_for(me, snapshot(me), disconnected_for=0.1).action == Action.NONE  # no Primary to rejoin
