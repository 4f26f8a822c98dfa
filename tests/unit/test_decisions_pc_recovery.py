"""pc.recovery first: when every member of the last Primary Component is back with the same saved view,
the agents let Galera re-form it instead of bootstrapping; in every other case the bootstrap path stays."""

from __future__ import annotations

from dataclasses import replace

import pytest
from decision_builders import CLUSTER_UUID, FOREIGN_UUID, NOW, local_of, position, running, snapshot, stopped

from galera_pilot.agent.decisions import PC_RECOVERY_TIMEOUT, Action, RecoveryPolicy, decide
from galera_pilot.cluster import ArbitratorReport, Member, Position, SavedView, SeedRecord

GCOMM = {"n1": "aaaaaaaa-0000-0000-0000-000000000001", "n2": "aaaaaaaa-0000-0000-0000-000000000002",
         "n3": "aaaaaaaa-0000-0000-0000-000000000003"}
VIEW_ID = "5 aaaaaaaa-0000-0000-0000-000000000001 7"
ALL = tuple(sorted(GCOMM.values()))
POLICY = RecoveryPolicy()


def saved(name: str, members: tuple[str, ...] = ALL, view_id: str = VIEW_ID) -> SavedView:
    return SavedView(GCOMM[name], view_id, members)


def crashed(name: str, seqno: int, view: SavedView | None, uuid: str = CLUSTER_UUID) -> Position:
    return replace(position(seqno, uuid), source="wsrep-recover", saved_view=view)


def outage(**positions: Position):
    members = [stopped(name, pos) for name, pos in positions.items()]
    return snapshot(*members), {m.name: m for m in members}


def test_all_members_of_the_saved_view_back_re_form_it_without_bootstrap() -> None:
    cluster, members = outage(n1=crashed("n1", 10, saved("n1")), n2=crashed("n2", 12, saved("n2")),
                              n3=crashed("n3", 11, saved("n3")))
    for name in ("n1", "n2", "n3"):
        decision = decide(local_of(members[name]), cluster, POLICY, NOW)
        assert decision.action == Action.PC_RECOVER, decision
        others = sorted(f"{members[n].address}:4567" for n in members if n != name)
        assert list(decision.peers) == others
        assert "pc.recovery" in decision.reason
        assert decision.inputs["view"] == VIEW_ID


def test_a_missing_member_means_no_pc_recovery() -> None:
    cluster, members = outage(n1=crashed("n1", 10, saved("n1")), n2=crashed("n2", 12, saved("n2")))
    cluster = snapshot(*members.values(), roster=["n1", "n2", "n3"])
    assert decide(local_of(members["n2"]), cluster, POLICY, NOW).action == Action.WAIT


@pytest.mark.parametrize("change", ["other_view", "other_members", "no_view", "foreign", "unusable", "unrecovered"])
def test_any_disagreement_falls_back_to_the_bootstrap_ladder(change: str) -> None:
    n3 = {
        "other_view": crashed("n3", 11, saved("n3", view_id="6 x 8")),
        "other_members": crashed("n3", 11, saved("n3", members=tuple(sorted((GCOMM["n2"], GCOMM["n3"]))))),
        "no_view": crashed("n3", 11, None),
        "foreign": crashed("n3", 11, saved("n3"), uuid=FOREIGN_UUID),
        "unusable": replace(crashed("n3", 11, saved("n3")), unusable="an SST was aborted here"),
        "unrecovered": crashed("n3", -1, saved("n3")),
    }[change]
    cluster, members = outage(n1=crashed("n1", 10, saved("n1")), n2=crashed("n2", 12, saved("n2")), n3=n3)
    decisions = {name: decide(local_of(members[name]), cluster, POLICY, NOW) for name in ("n1", "n2")}
    assert all(d.action != Action.PC_RECOVER for d in decisions.values()), decisions
    if change not in ("unrecovered",):
        assert decisions["n2"].action == Action.BOOTSTRAP  # the most advanced, as before


def test_a_view_naming_an_instance_nobody_claims_is_not_restored() -> None:
    """Three members saved a four-member view: the fourth instance is not back, Galera would wait."""
    four = (*ALL, "aaaaaaaa-0000-0000-0000-000000000004")
    cluster, members = outage(**{n: crashed(n, 10, saved(n, members=tuple(sorted(four)))) for n in GCOMM})
    assert decide(local_of(members["n1"]), cluster, POLICY, NOW).action == Action.BOOTSTRAP


def test_a_failed_attempt_is_not_repeated() -> None:
    cluster, members = outage(**{n: crashed(n, 10, saved(n)) for n in GCOMM})
    local = local_of(members["n1"], pc_recovery_allowed=False)
    assert decide(local, cluster, POLICY, NOW).action == Action.BOOTSTRAP


def test_a_single_node_never_pc_recovers_alone() -> None:
    """With no peer its gcomm address would be empty: a brand-new cluster, not a recovery."""
    view = SavedView(GCOMM["n1"], VIEW_ID, (GCOMM["n1"],))
    cluster, members = outage(n1=crashed("n1", 10, view))
    assert decide(local_of(members["n1"]), cluster, POLICY, NOW).action == Action.BOOTSTRAP


def test_a_live_primary_is_joined_not_pc_recovered() -> None:
    n1 = stopped("n1", crashed("n1", 10, saved("n1")))
    cluster = snapshot(n1, running("n2"), running("n3"))
    assert decide(local_of(n1), cluster, POLICY, NOW).action == Action.JOIN


def test_stuck_pc_recovery_is_stopped_after_its_timeout() -> None:
    me = running("n1", status="non-Primary", state="Initialized")
    cluster = snapshot(me, stopped("n2"), stopped("n3"))
    waiting = decide(local_of(me, pc_recovering_for=PC_RECOVERY_TIMEOUT - 1), cluster, POLICY, NOW)
    assert waiting.action == Action.NONE
    stuck = decide(local_of(me, pc_recovering_for=PC_RECOVERY_TIMEOUT), cluster, POLICY, NOW)
    assert stuck.action == Action.RESTART and "pc.recovery" in stuck.reason


# ---- forming a new cluster's first component from the seed -------------------------------------------

def formed_seed(seqno: int = 7) -> SeedRecord:
    return SeedRecord("box1", "/seed", CLUSTER_UUID, seqno, VIEW_ID,
                      {n: GCOMM[n] for n in ("n1", "n2", "n3")},
                      {"n1": "127.0.0.2:4567", "n2": "127.0.0.3:4567", "n3": "127.0.0.4:4567"})


def seed_copy(name: str, seqno: int = 7) -> Member:
    return stopped(name, position(seqno))


def formation_cluster(*members: Member, seed: SeedRecord | None = None, lock: str | None = "n1"):
    return snapshot(*members, roster=[], seed=seed or formed_seed(), lock=lock)


def test_formation_members_with_the_pristine_seed_form_together() -> None:
    members = [seed_copy(n) for n in ("n1", "n2", "n3")]
    cluster = formation_cluster(*members)
    for member in members:
        decision = decide(local_of(member), cluster, POLICY, NOW)
        assert decision.action == Action.FORM, decision
        assert member.address + ":4567" not in decision.peers and len(decision.peers) == 2


def test_an_empty_formation_member_copies_the_seed_first() -> None:
    empty = stopped("n2")
    decision = decide(local_of(empty, has_data=False), formation_cluster(empty), POLICY, NOW)
    assert decision.action == Action.COPY_SEED


@pytest.mark.parametrize("why", ["not_named", "moved_on", "failed_before", "unusable", "no_view"])
def test_no_formation_outside_its_conditions(why: str) -> None:
    member = seed_copy("n4") if why == "not_named" else seed_copy("n2", 9 if why == "moved_on" else 7)
    if why == "unusable":
        member = stopped("n2", position(7, unusable="grastate.dat is corrupt"))
    seed = replace(formed_seed(), view_id="") if why == "no_view" else formed_seed()
    local = local_of(member, pc_recovery_allowed=why != "failed_before")
    decision = decide(local, formation_cluster(member, seed=seed), POLICY, NOW)
    assert decision.action != Action.FORM, decision


def test_a_live_primary_is_joined_not_formed() -> None:
    member = seed_copy("n2")
    decision = decide(local_of(member), formation_cluster(member, running("n1")), POLICY, NOW)
    assert decision.action == Action.JOIN


def test_a_formation_of_one_is_a_bootstrap_not_a_formation() -> None:
    member = seed_copy("n1")
    alone = replace(formed_seed(), formation={"n1": GCOMM["n1"]}, addresses={"n1": "127.0.0.2:4567"})
    decision = decide(local_of(member), formation_cluster(member, seed=alone, lock=None), POLICY, NOW)
    assert decision.action == Action.BOOTSTRAP


GARBD = "aaaaaaaa-0000-0000-0000-000000000009"


def test_a_saved_view_with_the_arbitrator_re_forms_once_its_agent_reports_the_same_instance() -> None:
    """Two data nodes and garbd crashed together: the view names garbd's instance, which its agent reports
    (gvwstate.dat kept in its work dir); every data node then dials the other and the arbitrator."""
    view = tuple(sorted((GCOMM["n1"], GCOMM["n2"], GARBD)))
    cluster, members = outage(n1=crashed("n1", 10, saved("n1", members=view)),
                              n2=crashed("n2", 10, saved("n2", members=view)))
    # Without the arbitrator's report, its instance is not known to be back: the bootstrap ladder.
    assert decide(local_of(members["n1"]), cluster, POLICY, NOW).action == Action.BOOTSTRAP
    garbd = ArbitratorReport("arbitrator1", "10.0.0.9", gcomm_uuid=GARBD)
    with_garbd = replace(cluster, arbitrators={"arbitrator1": garbd})
    decision = decide(local_of(members["n1"]), with_garbd, POLICY, NOW)
    assert decision.action == Action.PC_RECOVER, decision
    assert list(decision.peers) == sorted([f"{members['n2'].address}:4567", "10.0.0.9:4567"])
    # garbd started again without its work dir: a new instance, so the saved view cannot re-form.
    renewed = replace(garbd, gcomm_uuid="bbbbbbbb-0000-0000-0000-000000000009")
    fresh = replace(cluster, arbitrators={"arbitrator1": renewed})
    assert decide(local_of(members["n1"]), fresh, POLICY, NOW).action == Action.BOOTSTRAP
