"""Pure rules of the lifecycle: pause in the ladder and the writer election, a rolling restart's order,
readiness, IST coverage and the agent's restart request (lifecycle/, issue 13)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from decision_builders import ALL, NOW, local_of, position, running, snapshot, stopped
from hypothesis import given
from hypothesis import strategies as st
from keeper_world import TTL, FakeDcs, World, wsrep

from galera_pilot.agent.decisions import Action, decide
from galera_pilot.agent.write_rate import WriteRate
from galera_pilot.cluster import DONE, FAILED, REQUESTED, STOPPING, Cluster, Pause, RestartRequest, Roll
from galera_pilot.dcs.lifecycle import RollGone, create_roll, delete_roll, request_restart, save_roll, update_restart
from galera_pilot.dcs.sqlite import SQLiteDCS
from galera_pilot.lifecycle.restart import restart_confirmed, restart_due, restart_failing
from galera_pilot.lifecycle.roll import (
    DEFAULT_DOWNTIME,
    PlanError,
    blocker,
    describe,
    expected_downtime,
    ist_shortfall,
    next_member,
    plan,
    switchover_target,
)
from galera_pilot.lifecycle.upgrade import pending_upgrade, step_allowed, upgrade_refusal
from galera_pilot.mariadb.version import parse_version
from galera_pilot.routing.health import LiveStatus
from galera_pilot.routing.keeper import WriterKeeper
from galera_pilot.routing.writer import Step

MIB = 1024 * 1024
PAUSE = Pause("ops:1", 1.0)


def paused(cluster: Cluster) -> Cluster:
    return replace(cluster, pause=PAUSE)


# ---- pause: the ladder takes no action, whatever the state ------------------------------------------------
def test_a_paused_agent_does_not_restart_a_crashed_mariadbd() -> None:
    me = stopped("n1", position(10))
    cluster = snapshot(me, running("n2"), running("n3"))
    assert decide(local_of(me), cluster, ALL, NOW).action == Action.JOIN  # what it would do unpaused
    decision = decide(local_of(me), paused(cluster), ALL, NOW)
    assert decision.action == Action.NONE and "paused (by ops:1)" in decision.reason and "stopped" in decision.reason


def test_a_paused_agent_does_not_bootstrap_after_a_full_outage() -> None:
    nodes = [stopped(n, position(5 + i)) for i, n in enumerate(("n1", "n2", "n3"))]
    cluster = snapshot(*nodes)
    assert decide(local_of(nodes[2]), cluster, ALL, NOW).action == Action.BOOTSTRAP
    assert decide(local_of(nodes[2]), paused(cluster), ALL, NOW).action == Action.NONE


def test_a_paused_agent_carries_out_no_restart_request_and_no_disconnected_restart() -> None:
    me = running("n1", status="Disconnected", state="Initialized")
    cluster = paused(snapshot(me, running("n2"), running("n3")))
    assert decide(local_of(me, disconnected_for=60.0), cluster, ALL, NOW).action == Action.NONE
    synced = running("n1")
    assert decide(local_of(synced, restart_due=True), cluster, ALL, NOW).action == Action.NONE


@given(st.booleans(), st.sampled_from(["Primary", "non-Primary", "Disconnected", ""]),
       st.sampled_from(["Synced", "Joiner", "Donor/Desynced", "starting", "stopped"]), st.booleans(),
       st.floats(0, 100), st.floats(0, 100), st.booleans(), st.one_of(st.none(), st.text(min_size=1)))
def test_paused_means_no_action_in_every_state(is_running: bool, status: str, state: str, has_data: bool,
                                                 disconnected: float, backoff: float, due: bool,
                                                 crash: str | None) -> None:
    me = running("n1", status=status, state=state) if is_running else stopped("n1", position(3) if has_data else None)
    local = local_of(me, has_data=has_data, disconnected_for=disconnected, backoff_remaining=backoff,
                     restart_due=due, crash_loop=crash, pc_recovering_for=disconnected)
    for cluster in (snapshot(me, running("n2")), snapshot(me, stopped("n2", position(9))), snapshot(me, no_init=True)):
        assert decide(local, paused(cluster), ALL, NOW).action == Action.NONE


def test_a_restart_request_stops_a_primary_node_only() -> None:
    me = running("n1")
    cluster = snapshot(me, running("n2"), running("n3"))
    assert decide(local_of(me, restart_due=True), cluster, ALL, NOW).action == Action.ROLL_RESTART
    assert decide(local_of(me), cluster, ALL, NOW).action == Action.NONE
    joining = running("n1", status="non-Primary", state="Initialized")
    assert decide(local_of(joining, restart_due=True), cluster, ALL, NOW).action == Action.NONE


def test_a_reinit_request_says_it_rejoins_by_a_full_sst_from_its_donor() -> None:
    me = running("n1")
    request = RestartRequest("n1", "roll-1", NOW, rebuild_from="n2")
    cluster = replace(snapshot(me, running("n2"), running("n3")), restarts={"n1": request})
    decision = decide(local_of(me, restart_due=True), cluster, ALL, NOW)
    assert decision.action == Action.ROLL_RESTART and "full SST from n2" in decision.reason


# ---- pause: the writer election ------------------------------------------------------------------------------
def keeper(world: World, name: str, live: LiveStatus) -> WriterKeeper:
    return WriterKeeper(name, FakeDcs(world, name), lambda: live, priority=0, ttl=TTL, fresh_within=3.0,
                        ask_peers=lambda peers, request: [], clock=world.clock)


def test_paused_nobody_takes_the_writer_role_and_the_holder_keeps_it_even_unhealthy() -> None:
    world = World()
    node1 = keeper(world, "node1", LiveStatus(world.now, wsrep()))
    node1.paused = True
    assert node1.tick() == Step.NONE and world.key() is None
    node1.paused = None  # not known yet (a restarted agent before its first cycle): no acquisition either
    assert node1.tick() == Step.NONE and world.key() is None
    node1.paused = False
    assert node1.tick() == Step.ACQUIRE and world.key() == "node1"
    sick = keeper(world, "node1", LiveStatus(world.now, {}))  # mariadbd no longer answers
    sick.holder = "node1"
    sick.paused = True
    assert sick.tick() == Step.RENEW and world.key() == "node1"
    sick.paused = None
    assert sick.tick() == Step.RENEW and world.key() == "node1"
    sick.paused = False
    assert sick.tick() == Step.RELEASE and world.key() is None


# ---- a rolling restart's plan --------------------------------------------------------------------------------
def test_plan_puts_the_writer_last_and_rejects_unknown_names() -> None:
    assert plan({"n1", "n2", "n3"}, (), "n1") == ("n2", "n3", "n1")
    assert plan({"n1", "n2", "n3"}, ("n3", "n1"), "n1") == ("n3", "n1")
    assert plan({"n1", "n2", "n3"}, ("n2",), "n1") == ("n2",)
    assert plan({"n1", "n2"}, (), None) == ("n1", "n2")
    try:
        plan({"n1", "n2"}, ("n1", "n9"), None)
    except PlanError as error:
        assert "n9" in str(error) and "n1, n2" in str(error)
    else:
        raise AssertionError("an unknown member was planned")


names = st.lists(st.sampled_from([f"n{i}" for i in range(1, 8)]), min_size=1, max_size=7, unique=True)


@given(names, st.data())
def test_whoever_holds_the_writer_role_along_the_way_goes_last_and_everyone_exactly_once(order: list[str],
                                                                                          data: st.DataObject) -> None:
    roll = Roll("r", tuple(order))
    restarted: list[str] = []
    while True:
        writer = data.draw(st.one_of(st.none(), st.sampled_from(order)))  # failovers may move it at any time
        member = next_member(roll, writer)
        if member is None:
            break
        if member == writer:
            assert set(roll.remaining) == {writer}, "the writer went before other members"
        assert member not in restarted
        restarted.append(member)
        roll = replace(roll, done=(*roll.done, member))
    assert sorted(restarted) == sorted(order)


def test_a_resumed_roll_goes_on_with_the_member_it_was_restarting() -> None:
    roll = Roll("r", ("n1", "n2", "n3"), done=("n1",), current="n3")
    assert next_member(roll, "n3") == "n3"
    assert next_member(replace(roll, current=None), "n3") == "n2"


# ---- readiness -------------------------------------------------------------------------------------------------
def calm() -> Cluster:
    return snapshot(running("n1"), running("n2"), running("n3"))


def test_a_calm_whole_cluster_is_ready() -> None:
    assert blocker(calm()) == ""


def test_what_blocks_the_next_node() -> None:
    cluster = calm()
    assert "paused" in blocker(paused(cluster))
    gone = replace(cluster, members={n: m for n, m in cluster.members.items() if n != "n2"})
    assert blocker(gone) == "n2 does not report (agent or host down)"
    donor = replace(cluster, members={**cluster.members, "n3": running("n3", state="Donor/Desynced")})
    assert "n3 is a donor" in blocker(donor)
    joiner = replace(cluster, members={**cluster.members, "n3": running("n3", state="Joiner")})
    assert "n3 is not Synced (Joiner" in blocker(joiner)
    queue = replace(cluster, members={**cluster.members, "n1": replace(running("n1"), recv_queue=500)})
    assert "500 write-sets" in blocker(queue)
    drained = replace(cluster, maintenance=frozenset({"n2"}))
    assert "n2 is in maintenance" in blocker(drained)
    assert blocker(drained, Roll("r", ("n1", "n2", "n3"), current="n2", drained=("n2",))) == ""
    outage = snapshot(stopped("n1", position(3)), stopped("n2", position(3)))
    assert "n1 is not Synced" in blocker(outage) or "no Primary" in blocker(outage)


# ---- IST coverage ----------------------------------------------------------------------------------------------
def with_gcache(cluster: Cluster, gcache: int, rate: float) -> Cluster:
    return replace(cluster, members={n: replace(m, gcache_bytes=gcache, write_rate=rate)
                                     for n, m in cluster.members.items()})


def test_the_donors_gcache_must_hold_twice_the_expected_downtimes_writes() -> None:
    cluster = with_gcache(calm(), 128 * MIB, 1 * MIB)  # 1 MiB/s: 60 s doubled is 120 MiB, fits 128 MiB
    assert ist_shortfall(cluster, "n1", DEFAULT_DOWNTIME) == ""
    why = ist_shortfall(cluster, "n1", 70.0)  # 140 MiB
    assert "would miss about 140 MiB" in why and "full state transfer" in why
    small = replace(cluster, members={**cluster.members, "n2": replace(cluster.members["n2"], gcache_bytes=16 * MIB)})
    assert "n2's gcache holds (16 MiB)" in ist_shortfall(small, "n1", 10.0)
    assert ist_shortfall(small, "n2", 10.0) == ""  # its own gcache does not matter: it is not its donor
    assert ist_shortfall(with_gcache(calm(), 0, 10 * MIB), "n1", 60.0) == ""  # agents that do not report it


def test_expected_downtime_is_the_longest_measured_else_the_default() -> None:
    assert expected_downtime(Roll("r", ("n1",))) == DEFAULT_DOWNTIME
    assert expected_downtime(Roll("r", ("n1", "n2"), downtimes={"n1": 4.0, "n2": 7.5})) == 7.5


def test_the_writer_moves_to_a_restarted_synced_member_out_of_maintenance() -> None:
    cluster = calm()
    roll = Roll("r", ("n2", "n3", "n1"), done=("n2", "n3"))
    assert switchover_target(cluster, roll, "n1") == "n2"
    assert switchover_target(replace(cluster, maintenance=frozenset({"n2"})), roll, "n1") == "n3"
    assert switchover_target(cluster, Roll("r", ("n1",)), "n1") is None


def test_describe_says_how_to_go_on() -> None:
    roll = Roll("r1", ("n1", "n2", "n3"), done=("n1",), current="n2")
    assert describe(roll, driven=True) == "rolling restart r1: 1 of 3 restarted (n1); n2 is being restarted"
    assert "INTERRUPTED" in describe(roll, driven=False) and "--resume" in describe(roll, driven=False)
    halted = describe(replace(roll, halted="n2 did not come back: boom\nlog"), driven=False)
    assert "HALTED: n2 did not come back: boom (" in halted and "\n" not in halted  # one line: the first


# ---- the agent's side of a restart request ---------------------------------------------------------------------
def test_restart_request_lifecycle_survives_an_agent_restarted_in_the_middle() -> None:
    request = RestartRequest("n1", "r", phase=REQUESTED)
    assert restart_due(request, 100, paused=False)
    assert not restart_due(request, 100, paused=True)
    assert not restart_due(request, None, paused=False)  # nothing running to stop
    stopping = request.moved(STOPPING, stopped_pid=100)
    assert restart_due(stopping, 100, paused=False), "the stop never happened (agent restarted): stop again"
    assert not restart_due(stopping, 200, paused=False), "a new server runs: never restart it twice"
    assert not restart_confirmed(stopping, 200, synced=False)
    assert restart_confirmed(stopping, 200, synced=True)
    assert not restart_confirmed(stopping, 100, synced=True), "the old server is not a restart"
    assert restart_failing(stopping, None) and restart_failing(stopping, 200)
    assert not restart_failing(request, None)
    failed = stopping.moved(FAILED, detail="boom")
    assert restart_confirmed(failed, 300, synced=True), "a node that recovered after all is done"
    assert not restart_due(stopping.moved(DONE), 300, paused=False)


def test_records_round_trip() -> None:
    roll = Roll("r", ("n1", "n2"), done=("n1",), current="n2", drained=("n2",), downtimes={"n1": 3.5})
    assert Roll.from_dict(roll.to_dict()) == roll
    request = RestartRequest("n1", "r", 1.0, STOPPING, 42, "x")
    assert RestartRequest.from_dict(request.to_dict() | {"future": 1}) == request


def test_write_rate_over_the_window() -> None:
    rate = WriteRate(window=10.0)
    assert rate.per_second() == 0.0
    for second in range(0, 30):
        rate.add(float(second), {"wsrep_replicated_bytes": str(second * 1000), "wsrep_received_bytes": "0"})
    assert rate.per_second() == 1000.0
    rate.add(31.0, {"wsrep_replicated_bytes": "5", "wsrep_received_bytes": "0"})  # a restarted server
    assert rate.per_second() == 0.0
    rate.add(32.0, None)
    assert rate.per_second() == 0.0


# ---- rolling upgrade: versions -----------------------------------------------------------------------------------


def versions(**pairs: tuple[str, str]) -> Cluster:
    return snapshot(*(replace(running(name), version=f"{run}-MariaDB-0+deb12u1",
                              installed_version=f"{inst}-MariaDB-0+deb12u1") for name, (run, inst) in pairs.items()))


def test_parse_version() -> None:
    assert parse_version("10.11.19-MariaDB-0+deb12u1") == (10, 11, 19)
    assert parse_version("mariadbd  Ver 11.4.2-MariaDB for debian") == (11, 4, 2)
    assert parse_version("") is None and parse_version("garbage") is None


def test_one_major_step_at_a_time() -> None:
    assert step_allowed((10, 11, 19), (10, 11, 20))  # a minor update
    assert step_allowed((10, 6, 1), (10, 7, 0))  # the next series
    assert step_allowed((10, 6, 1), (10, 11, 2))  # a long-term series to the next long-term one
    assert step_allowed((10, 11, 9), (11, 4, 2))
    assert not step_allowed((10, 6, 1), (11, 4, 2))  # two long-term steps
    assert not step_allowed((10, 7, 1), (10, 11, 2))  # not from a long-term series
    assert not step_allowed((9, 9, 9), (10, 3, 0))  # unknown series


def test_upgrade_refusals() -> None:
    ok = versions(n1=("10.11.19", "10.11.20"), n2=("10.11.19", "10.11.20"), n3=("10.11.19", "10.11.20"))
    assert upgrade_refusal(ok) == ("", "10.11.20-MariaDB-0+deb12u1")
    half = versions(n1=("10.11.19", "10.11.20"), n2=("10.11.19", "10.11.19"))
    assert "install the same packages on every host first" in upgrade_refusal(half)[0]
    down = versions(n1=("10.11.19", "10.11.18"), n2=("10.11.19", "10.11.18"))
    assert "downgrade is refused" in upgrade_refusal(down)[0]
    leap = versions(n1=("10.6.20", "11.4.2"), n2=("10.6.20", "11.4.2"))
    assert "one major step" in upgrade_refusal(leap)[0]
    done = versions(n1=("10.11.20", "10.11.20"), n2=("10.11.20", "10.11.20"))
    assert "nothing to upgrade" in upgrade_refusal(done)[0]
    mixed = versions(n1=("10.6.20", "10.11.2"), n2=("10.11.2", "10.11.2"))
    assert "different series" in upgrade_refusal(mixed)[0]
    silent = replace(ok, members={**ok.members, "n2": replace(ok.members["n2"], installed_version="")})
    assert "n2 does not report" in upgrade_refusal(silent)[0]


def test_pending_upgrade() -> None:
    assert pending_upgrade("10.11.19-MariaDB", "10.11.20-MariaDB")
    assert not pending_upgrade("10.11.19-MariaDB", "10.11.19-MariaDB")
    assert not pending_upgrade("", "10.11.20") and not pending_upgrade("10.11.19", "")


# ---- the records in a real (SQLite) DCS: a driver that lost its roll never writes it back ----------------------
def test_a_driver_never_writes_back_an_aborted_roll_nor_resets_a_request(tmp_path: Path) -> None:
    dcs = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    roll = Roll("r1", ("n1", "n2"))
    assert create_roll(dcs, roll) and not create_roll(dcs, Roll("r2", ("n1",)))
    save_roll(dcs, replace(roll, current="n1"))
    assert dcs.snapshot().roll == replace(roll, current="n1")
    assert request_restart(dcs, RestartRequest("n1", "r1"))
    moved = RestartRequest("n1", "r1").moved(DONE, stopped_pid=7)
    assert update_restart(dcs, moved)
    assert not request_restart(dcs, RestartRequest("n1", "r1")), "a resumed driver reset a request"
    assert dcs.snapshot().restarts["n1"].phase == DONE
    delete_roll(dcs, "r1")  # --abort
    snapshot = dcs.snapshot()
    assert snapshot.roll is None and not snapshot.restarts
    with pytest.raises(RollGone):
        save_roll(dcs, replace(roll, done=("n1",)))
    assert dcs.snapshot().roll is None
    assert not update_restart(dcs, moved), "a late agent update revived an aborted request"
    assert request_restart(dcs, RestartRequest("n1", "r3"))  # a new roll's request replaces nothing it should not
