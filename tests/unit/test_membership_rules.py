"""membership/rules.py: when `remove` and `reinit` refuse, whom they pick, and properties over any cluster."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.cli.output import removal_lines
from galera_pilot.cluster import REMOVED, ArbitratorReport, Cluster, Member, Pause, Removal, Roll, RosterEntry
from galera_pilot.membership.rules import choose_donor, reinit_refusal, removal_plan, removal_refusal

NAMES = ("node1", "node2", "node3", "node4", "node5")


def synced(name: str, **fields: object) -> Member:
    values: dict[str, object] = {"running": True, "state": "Synced", "cluster_status": "Primary",
                                 "gcomm_uuid": f"uuid-{name}"}
    values.update(fields)
    return Member(name=name, address=f"10.0.0.{name[-1]}", **values)  # type: ignore[arg-type]


def cluster(members: dict[str, Member], roster: tuple[str, ...] = (), writer: str | None = "node1",
            **fields: object) -> Cluster:
    names = set(roster) | set(members)
    return Cluster(members=members, roster={n: RosterEntry(n, f"10.0.0.{n[-1]}") for n in names}, writer=writer,
                   **fields)  # type: ignore[arg-type]


def whole(count: int) -> dict[str, Member]:
    return {n: synced(n) for n in NAMES[:count]}


def test_a_reader_of_four_is_removed_by_stopping_it() -> None:
    snapshot = cluster(whole(4))
    assert removal_refusal(snapshot, "node4") is None
    plan = removal_plan(snapshot, "node4")
    assert (plan.how, plan.instance, plan.remaining) == ("stop", "uuid-node4", ("node1", "node2", "node3"))


def test_the_writer_is_never_removed_even_forced() -> None:
    refusal = removal_refusal(cluster(whole(4)), "node1")
    assert refusal is not None and not refusal.forceable and "switchover" in refusal.reason


def test_a_donor_waits_for_its_transfer() -> None:
    members = whole(4) | {"node3": synced("node3", state="Donor/Desynced")}
    refusal = removal_refusal(cluster(members), "node3")
    assert refusal is not None and not refusal.forceable and "donor" in refusal.reason


def test_three_to_two_is_even_and_needs_force_or_an_arbitrator() -> None:
    refusal = removal_refusal(cluster(whole(3)), "node3")
    assert refusal is not None and refusal.forceable and "even" in refusal.reason
    assert removal_refusal(cluster(whole(3)), "node3", arbitrators=1) is None


def test_no_majority_of_what_remains_is_forceable() -> None:
    # node3 and node4 are down: removing node5 leaves node1, node2 serving of 4 remaining: not a majority.
    members = {n: synced(n) for n in ("node1", "node2", "node5")}
    refusal = removal_refusal(cluster(members, roster=NAMES), "node5")
    assert refusal is not None and refusal.forceable and "no majority" in refusal.reason


def test_a_dead_member_is_evicted_and_an_unknown_one_named() -> None:
    snapshot = cluster(whole(3) | {}, roster=("node1", "node2", "node3", "node4", "node5"))
    plan = removal_plan(snapshot, "node5")
    assert plan.how == "evict"
    refusal = removal_refusal(snapshot, "node9")
    assert refusal is not None and not refusal.forceable and "node1" in refusal.reason


def test_pause_and_roll_are_never_forced() -> None:
    for fields in ({"pause": Pause(by="ops")}, {"roll": Roll(id="r1", order=("node4",))}):
        refusal = removal_refusal(cluster(whole(5), **fields), "node4")
        assert refusal is not None and not refusal.forceable
        assert reinit_refusal(cluster(whole(5), **fields), "node4") is not None


def test_reinit_needs_two_other_synced_nodes() -> None:
    members = whole(3) | {"node2": synced("node2", state="Joined")}
    refusal = reinit_refusal(cluster(members), "node3")
    assert refusal is not None and "two other Synced" in refusal.reason
    assert reinit_refusal(cluster(whole(3)), "node3") is None


def test_the_donor_is_a_synced_non_writer_drained_first() -> None:
    snapshot = cluster(whole(4), maintenance=frozenset({"node3"}))
    assert choose_donor(snapshot, "node4") == "node3"
    assert choose_donor(cluster(whole(4)), "node4") == "node2"
    assert choose_donor(cluster(whole(4)), "node4", wanted="node1") is None  # the writer never donates
    assert choose_donor(cluster(whole(4)), "node4", wanted="node3") == "node3"


@st.composite
def snapshots(draw: st.DrawFn) -> Cluster:
    count = draw(st.integers(1, 5))
    names = NAMES[:count]
    members = {}
    for name in names:
        kind = draw(st.sampled_from(["synced", "donor", "down", "gone", "joiner"]))
        if kind == "synced":
            members[name] = synced(name)
        elif kind == "donor":
            members[name] = synced(name, state="Donor/Desynced")
        elif kind == "joiner":
            members[name] = synced(name, state="Joiner", cluster_status="Primary")
        elif kind == "down":
            members[name] = Member(name=name, address="10.0.0.1")
    writer = draw(st.sampled_from([None, *names]))
    return cluster(members, roster=names, writer=writer)


@given(snapshots(), st.sampled_from(NAMES), st.integers(0, 1))
def test_an_allowed_removal_leaves_a_serving_majority_of_odd_votes(snapshot: Cluster, name: str,
                                                                     arbitrators: int) -> None:
    if removal_refusal(snapshot, name, arbitrators) is not None:
        return
    remaining = (set(snapshot.roster) | set(snapshot.members)) - {name}
    serving = [n for n in remaining if n in snapshot.members and snapshot.members[n].is_primary]
    assert name != snapshot.writer
    assert 2 * (len(serving) + arbitrators) > len(remaining) + arbitrators
    assert (len(remaining) + arbitrators) % 2 == 1


@given(snapshots(), st.sampled_from(NAMES))
def test_an_allowed_rebuild_has_a_donor_that_is_neither_it_nor_the_writer(snapshot: Cluster, name: str) -> None:
    if reinit_refusal(snapshot, name) is not None:
        return
    donor = choose_donor(snapshot, name)
    assert donor is not None and donor not in (name, snapshot.writer) and snapshot.members[donor].is_synced


def garbd(primary: bool = True, weight: int = 1) -> ArbitratorReport:
    return ArbitratorReport("arbitrator1", "10.0.0.9", running=primary, state="SYNCED" if primary else "OPEN",
                            primary=primary, component_size=3, gcomm_uuid="uuid-arbitrator1", weight=weight)


def test_a_reporting_arbitrator_is_a_vote_that_makes_two_data_nodes_odd() -> None:
    with_garbd = cluster(whole(3), arbitrators={"arbitrator1": garbd()})
    assert removal_refusal(with_garbd, "node3") is None
    # Out of the Primary Component it is a vote that does not serve: 2 serving of 3 votes is still a majority.
    assert removal_refusal(cluster(whole(3), arbitrators={"arbitrator1": garbd(primary=False)}), "node3") is None
    # Weight 0: it relays, it never votes.
    refusal = removal_refusal(cluster(whole(3), arbitrators={"arbitrator1": garbd(weight=0)}), "node3")
    assert refusal is not None and refusal.forceable and "no arbitrator" in refusal.reason


def test_removing_the_arbitrator_of_two_nodes_leaves_an_even_count_and_needs_force() -> None:
    snapshot = cluster(whole(2), arbitrators={"arbitrator1": garbd()})
    refusal = removal_refusal(snapshot, "arbitrator1")
    assert refusal is not None and refusal.forceable and "even number of votes" in refusal.reason
    plan = removal_plan(snapshot, "arbitrator1")
    assert (plan.how, plan.instance, plan.remaining) == ("stop", "uuid-arbitrator1", ("node1", "node2"))
    assert removal_refusal(cluster(whole(3), arbitrators={"arbitrator1": garbd()}), "arbitrator1") is None


def test_one_node_and_an_arbitrator_are_even_too() -> None:
    refusal = removal_refusal(cluster(whole(2), arbitrators={"arbitrator1": garbd()}), "node2")
    assert refusal is not None and refusal.forceable and "1 members and 1 arbitrator" in refusal.reason


def test_list_names_the_removed_members_under_its_table() -> None:
    snapshot = cluster(whole(3), removed={"node5": Removal("node5", "alice@ops", 2.0, phase=REMOVED),
                                          "node4": Removal("node4", "bob@ops", 1.0)})
    lines = removal_lines(snapshot)
    assert [line.split(":")[0] for line in lines] == ["node4", "node5"]  # oldest first
    assert "being removed by bob@ops" in lines[0] and "removed by alice@ops" in lines[1]
    assert "remove --undo node5" in lines[1]
