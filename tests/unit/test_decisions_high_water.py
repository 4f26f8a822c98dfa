"""Never come back with less than the cluster had (issue 18): the high-water mark, empty datadirs, seed
copies and unreadable grastate.dat in the decision ladder.

Every empty datadir is reported as EMPTY_POSITION (what ha.observe publishes for a stopped node without
data), so a recovery knows that member has nothing, rather than waiting for it or counting a seed copy as
the cluster's state.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from decision_builders import (
    ADDRESSES,
    ALL,
    CLUSTER_UUID,
    FOREIGN_UUID,
    HOST,
    MAJORITY,
    NOW,
    local_of,
    position,
    running,
    snapshot,
    stopped,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from galera_pilot.agent.decisions import Action, Decision, RecoveryPolicy, decide
from galera_pilot.agent.high_water import data_gone, never_served, shortfall, vouched_seqno
from galera_pilot.cluster import (
    EMPTY_POSITION,
    UNKNOWN_UUID,
    Cluster,
    HighWater,
    InitializeRecord,
    Member,
    Position,
    RosterEntry,
    SeedRecord,
)

SEED = SeedRecord(HOST, "/srv/n1/seed", CLUSTER_UUID, 3, "3 a 1",
                  {"n1": "a", "n2": "b", "n3": "c"}, {"n1": "127.0.0.2:4567", "n2": "127.0.0.3:4567",
                                                      "n3": "127.0.0.4:4567"})
NAMES = ("n1", "n2", "n3")


def empty(name: str) -> Member:
    return stopped(name, EMPTY_POSITION)


def decide_each(cluster: Cluster, policy: RecoveryPolicy = ALL, since: float | None = NOW - 60) -> dict[str, Decision]:
    return {name: decide(local_of(m, has_data=not (m.position is None or m.position.empty),
                                  no_primary_since=since), cluster, policy, NOW)
            for name, m in cluster.members.items()}


def bootstrappers(decisions: dict[str, Decision]) -> list[str]:
    return [n for n, d in decisions.items() if d.action == Action.BOOTSTRAP]


# ---- a brand-new cluster: the seed stands for it ---------------------------------------------------------

def test_a_new_cluster_copies_the_seed_and_forms_from_it() -> None:
    cluster = snapshot(stopped("n1", position(3, safe=True)), empty("n2"), empty("n3"), roster=[], seed=SEED,
                       lock="n1", high_water=3)
    assert never_served(cluster)
    assert decide_each(cluster)["n2"].action == Action.COPY_SEED
    copied = snapshot(stopped("n1", position(3, safe=True)), stopped("n2", position(3)), empty("n3"), roster=[],
                      seed=SEED, lock="n1", high_water=3)
    assert decide_each(copied)["n2"].action == Action.FORM


def test_a_store_without_a_mark_counts_as_new_only_before_anyone_joined() -> None:
    assert never_served(snapshot(empty("n2"), roster=[], seed=SEED))
    assert not never_served(snapshot(empty("n2"), seed=SEED))  # a roster: the cluster ran


# ---- after it served: no seed, no formation, empties wait -------------------------------------------------

def test_after_serving_an_empty_datadir_waits_and_never_copies_the_seed() -> None:
    cluster = snapshot(stopped("n1", position(12)), stopped("n2", position(11)), empty("n3"), seed=SEED,
                       high_water=12)
    decision = decide_each(cluster)["n3"]
    assert decision.action == Action.WAIT and not decision.copy_seed
    assert "empty datadir never starts a cluster" in decision.reason
    assert "waiting for n1 to bootstrap" in decision.reason


def test_after_serving_a_seed_copy_never_forms() -> None:
    cluster = snapshot(stopped("n1", position(3)), stopped("n2", position(3)), stopped("n3", position(3)),
                       seed=SEED, high_water=11)
    decisions = decide_each(cluster)
    assert not any(d.action == Action.FORM for d in decisions.values()), decisions
    assert bootstrappers(decisions) == []
    assert all("data is gone from every node" in d.reason for d in decisions.values()), decisions


def test_one_empty_datadir_counts_as_reported_and_the_most_advanced_bootstraps() -> None:
    """Policy `all` waits for every member; an agent that says "my datadir is empty" has answered."""
    cluster = snapshot(stopped("n1", position(12)), stopped("n2", position(10)), empty("n3"), seed=SEED,
                       high_water=12)
    decisions = decide_each(cluster)
    assert bootstrappers(decisions) == ["n1"], decisions
    assert "n3" not in decisions["n1"].reason.split("others:")[1], "an empty datadir is no candidate"


def test_the_lost_datadir_held_the_most_so_everyone_waits_for_a_person() -> None:
    cluster = snapshot(stopped("n1", position(10)), stopped("n2", position(10)), empty("n3"), seed=SEED,
                       high_water=HighWater(CLUSTER_UUID, 12, "n3"))
    decisions = decide_each(cluster)
    assert bootstrappers(decisions) == []
    reason = decisions["n1"].reason
    assert "would discard 2 committed transactions" in reason
    assert "last reported by n3" in reason and "bootstrap --member n1 --force" in reason


@pytest.mark.parametrize("lost", [("n2", "n3"), ("n1", "n3"), ("n1", "n2")])
def test_two_datadirs_lost(lost: tuple[str, str]) -> None:
    left = next(n for n in NAMES if n not in lost)
    members = [empty(n) if n in lost else stopped(n, position(12)) for n in NAMES]
    assert bootstrappers(decide_each(snapshot(*members, seed=SEED, high_water=12))) == [left]
    assert bootstrappers(decide_each(snapshot(*members, seed=SEED, high_water=13))) == []


@pytest.mark.parametrize("policy", [ALL, MAJORITY])
def test_every_datadir_lost_says_the_data_is_gone(policy: RecoveryPolicy) -> None:
    cluster = snapshot(empty("n1"), empty("n2"), empty("n3"), seed=SEED, high_water=HighWater(CLUSTER_UUID, 11, "n1"))
    decisions = decide_each(cluster, policy)
    for decision in decisions.values():
        assert decision.action == Action.WAIT
        assert decision.reason.startswith("the data is gone from every node")
        assert "seqno 11" in decision.reason and "n1" in decision.reason and "--empty" in decision.reason
        assert decision.inputs.get("data_gone") is True


def test_every_datadir_lost_in_a_new_cluster_starts_again_from_the_seed() -> None:
    """Nothing was committed beyond the seed, so the seed is the whole cluster: nothing is lost."""
    cluster = snapshot(empty("n1"), empty("n2"), empty("n3"), seed=SEED, high_water=3)
    assert all(d.action == Action.COPY_SEED for d in decide_each(cluster).values())


def test_a_member_not_yet_reported_may_still_hold_the_data() -> None:
    cluster = snapshot(empty("n1"), empty("n2"), roster=list(NAMES), seed=SEED, high_water=11)
    assert data_gone(cluster, {"n1": EMPTY_POSITION, "n2": EMPTY_POSITION}) is None
    assert all("data is gone" not in d.reason for d in decide_each(cluster).values())


# ---- grastate.dat: unreadable but recovered, or unrecoverable ----------------------------------------------

def recovered(seqno: int, problem: str = "grastate.dat is corrupt: uuid '' is not a UUID") -> Position:
    return Position(CLUSTER_UUID, seqno, False, "wsrep-recover", grastate_problem=problem)


def test_a_corrupt_grastate_recovered_from_innodb_is_the_most_advanced_and_bootstraps() -> None:
    cluster = snapshot(stopped("n1", recovered(24)), stopped("n2", position(18)), stopped("n3", position(17)),
                       high_water=24)
    decisions = decide_each(cluster)
    assert bootstrappers(decisions) == ["n1"]


def test_an_unrecoverable_datadir_that_may_have_held_the_most_makes_everyone_wait() -> None:
    gone = Position(UNKNOWN_UUID, -1, False, "wsrep-recover", "grastate.dat is missing, and InnoDB holds no "
                    "cluster position either", grastate_problem="grastate.dat is missing")
    cluster = snapshot(stopped("n1", gone), stopped("n2", position(18)), stopped("n3", position(17)),
                       high_water=HighWater(CLUSTER_UUID, 24, "n1"))
    decisions = decide_each(cluster)
    assert bootstrappers(decisions) == []
    assert "would discard 6 committed transactions" in decisions["n2"].reason
    # Behind the mark by nothing: the same unusable datadir does not stop the recovery.
    assert bootstrappers(decide_each(replace(cluster, high_water=HighWater(CLUSTER_UUID, 18, "n2")))) == ["n2"]


# ---- policies, pc.recovery and a person --------------------------------------------------------------------

def test_majority_never_bootstraps_below_the_mark_even_after_its_timeout() -> None:
    cluster = snapshot(stopped("n1", position(10)), stopped("n2", position(12)), roster=list(NAMES),
                       high_water=14)
    assert bootstrappers(decide_each(cluster, MAJORITY, since=NOW - 600)) == []
    assert bootstrappers(decide_each(replace(cluster, high_water=HighWater(CLUSTER_UUID, 12)), MAJORITY,
                                     since=NOW - 600)) == ["n2"]


def test_pc_recovery_does_not_reform_a_component_behind_the_mark() -> None:
    from galera_pilot.cluster import SavedView

    uuids = {"n1": "u1", "n2": "u2"}
    members = [stopped(n, replace(position(9), saved_view=SavedView(uuids[n], "3 u1 5", ("u1", "u2"))))
               for n in ("n1", "n2")]
    cluster = snapshot(*members, high_water=9)
    assert {d.action for d in decide_each(cluster).values()} == {Action.PC_RECOVER}
    behind = decide_each(replace(cluster, high_water=HighWater(CLUSTER_UUID, 10)))
    assert Action.PC_RECOVER not in {d.action for d in behind.values()}
    assert bootstrappers(behind) == []


def test_a_person_may_bootstrap_below_the_mark_and_is_told_what_it_discards() -> None:
    cluster = replace(snapshot(stopped("n1", position(10)), empty("n3"), high_water=12), forced_bootstrap="n1")
    decision = decide_each(cluster)["n1"]
    assert decision.action == Action.BOOTSTRAP
    assert "discards 2 committed transactions" in decision.reason and decision.inputs["discards"] == 2


def test_a_mark_of_another_cluster_uuid_does_not_count() -> None:
    cluster = snapshot(stopped("n1", position(10)), high_water=HighWater(FOREIGN_UUID, 99))
    assert shortfall(cluster, position(10)) == 0
    assert bootstrappers(decide_each(cluster)) == ["n1"]


# ---- what an agent vouches for ---------------------------------------------------------------------------

def test_vouched_seqno() -> None:
    assert vouched_seqno(True, "Primary", CLUSTER_UUID, 40, None, CLUSTER_UUID) == 40
    assert vouched_seqno(True, "non-Primary", CLUSTER_UUID, 40, None, CLUSTER_UUID) is None
    assert vouched_seqno(True, "Primary", FOREIGN_UUID, 40, None, CLUSTER_UUID) is None
    assert vouched_seqno(False, "", "", -1, position(12), CLUSTER_UUID) == 12
    assert vouched_seqno(False, "", "", -1, recovered(12), CLUSTER_UUID) == 12
    assert vouched_seqno(False, "", "", -1, position(12, unusable="aborted SST"), CLUSTER_UUID) is None
    assert vouched_seqno(False, "", "", -1, EMPTY_POSITION, CLUSTER_UUID) is None
    assert vouched_seqno(False, "", "", -1, position(12, uuid=FOREIGN_UUID), CLUSTER_UUID) is None
    assert vouched_seqno(False, "", "", -1, position(12), None) is None


# ---- the property: no bootstrap below the mark without a person, whatever the outage ----------------------

outage_positions = st.one_of(
    st.builds(position, st.integers(-1, 20)),  # grastate; -1: not recovered yet
    st.builds(recovered, st.integers(0, 20)),
    st.just(EMPTY_POSITION),
    st.just(position(3)),  # a seed copy
    st.just(position(9, unusable="an SST was aborted here (sst_in_progress marker)")),
    st.just(position(15, uuid=FOREIGN_UUID)),
    st.just(Position(UNKNOWN_UUID, -1, False, "wsrep-recover", "grastate.dat is corrupt: x, and InnoDB holds no "
                     "cluster position either", grastate_problem="grastate.dat is corrupt: x")),
    st.none(),  # not reported (agent down)
)


@st.composite
def outages(draw: st.DrawFn) -> tuple[Cluster, RecoveryPolicy, float | None]:
    names = draw(st.lists(st.sampled_from([f"n{i}" for i in range(1, 6)]), min_size=1, max_size=5, unique=True))
    members = {n: Member(n, ADDRESSES[n], host=HOST, position=draw(outage_positions, label=n)) for n in names}
    roster = draw(st.lists(st.sampled_from([*names, "n6"]), max_size=6, unique=True))
    mark = draw(st.none() | st.builds(HighWater, st.sampled_from([CLUSTER_UUID, CLUSTER_UUID, FOREIGN_UUID]),
                                      st.integers(0, 22), st.sampled_from(["", *names])))
    forced = draw(st.none() | st.sampled_from(names))
    cluster = Cluster(initialize=InitializeRecord("n1", CLUSTER_UUID, 1.0, 2.0, 1), members=members,
                      roster={n: RosterEntry(n, ADDRESSES.get(n, "127.0.1.1")) for n in roster},
                      seed=draw(st.none() | st.just(SEED)), high_water=mark, forced_bootstrap=forced, read_at=NOW)
    policy = draw(st.sampled_from([ALL, MAJORITY, RecoveryPolicy("majority", 0.0)]))
    return cluster, policy, draw(st.sampled_from([None, NOW - 10, NOW - 600]))


@settings(max_examples=600, deadline=None)
@given(outages())
def test_no_bootstrap_below_the_high_water_mark_without_a_person(drawn: tuple) -> None:
    cluster, policy, since = drawn
    decisions = decide_each(cluster, policy, since)
    mark = cluster.high_water
    for name, decision in decisions.items():
        if decision.action == Action.BOOTSTRAP and cluster.forced_bootstrap != name:
            mine = cluster.members[name].position
            assert mine is not None and mine.usable and not mine.empty
            if mark is not None and mark.uuid == CLUSTER_UUID:
                assert mine.seqno >= mark.seqno, (name, decision.reason)
        if decision.action in (Action.COPY_SEED, Action.FORM, Action.INITIALIZE):
            # The seed stands for the cluster only while nothing was committed beyond it.
            assert never_served(cluster), (name, decision)
            assert decision.action != Action.INITIALIZE
        if decision.action == Action.PC_RECOVER and mark is not None and mark.uuid == CLUSTER_UUID:
            best = max(m.position.seqno for m in cluster.members.values() if m.position is not None)
            assert best >= mark.seqno


def test_running_members_are_untouched() -> None:
    me = running("n1")
    assert decide(local_of(me), snapshot(me, high_water=99), ALL, NOW).action == Action.NONE


# ---- a person starts from nothing (`bootstrap --force --empty`) --------------------------------------------

def test_an_empty_start_is_refused_unless_the_member_reports_an_empty_datadir() -> None:
    from galera_pilot.agent.high_water import empty_start_refusal

    gone = snapshot(empty("n1"), stopped("n2", position(4)), high_water=11)
    assert empty_start_refusal(gone, "n1") is None
    assert "not empty" in (empty_start_refusal(gone, "n2") or "")
    assert "has not reported" in (empty_start_refusal(gone, "n9") or "")
    live = snapshot(empty("n1"), running("n2"), high_water=11)
    assert "a Primary Component exists" in (empty_start_refusal(live, "n1") or "")


def test_the_ordered_member_initializes_and_the_others_wait() -> None:
    order = InitializeRecord("n1", None, 1.0, None, 2, ordered_empty=True, replaces=CLUSTER_UUID)
    cluster = snapshot(empty("n1"), empty("n2"), roster=[], initialize=order)
    decisions = decide_each(cluster)
    assert decisions["n1"].action == Action.INITIALIZE and "--empty" in decisions["n1"].reason
    assert decisions["n2"].action == Action.WAIT and "n1 is initializing" in decisions["n2"].reason


def test_up_stops_waiting_only_when_every_agent_says_a_person_is_needed() -> None:
    from galera_pilot.agent.high_water import DATA_GONE, needs_a_person

    def said(activity: str) -> Member:
        return replace(empty("n1"), activity=activity)

    gone = f"{DATA_GONE}: all 3 members have empty datadirs"
    assert needs_a_person([said(gone), said(gone)]) == gone
    assert needs_a_person([said(gone), said("waiting for the positions of n3")]) is None
    assert needs_a_person([said(gone), None]) is None, "an agent without a fresh report may still start"
    assert needs_a_person([]) is None
