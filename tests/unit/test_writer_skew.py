"""The writer election with clocks that disagree, and switchovers that cannot complete (issue 19).

Three writer keepers on the simulated clock of keeper_world: each member stamps its record with its own
(skewed) wall clock, and each keeper judges the others only by their records' versions on its own clock.
"""

from __future__ import annotations

import time

import pytest
from keeper_world import FRESH_WITHIN, NAMES, TTL, FakeDcs, World, wsrep

from galera_pilot.cluster import Switchover
from galera_pilot.routing.health import LiveStatus
from galera_pilot.routing.keeper import WriterKeeper
from galera_pilot.routing.writer import HANDBACK_AFTER, WRITER_TICK

SKEWS = [(role, offset) for role in ("writer", "target", "bystander") for offset in (30.0, -30.0)]
ROLES = {"writer": "node1", "target": "node3", "bystander": "node2"}


def make_world(offsets: dict[str, float] | None = None) -> World:
    world = World(wall_offsets=dict(offsets or {}))
    for name in NAMES:
        offset = world.wall_offsets.get(name, 0.0)
        world.keepers[name] = WriterKeeper(
            name, FakeDcs(world, name), lambda: LiveStatus(world.now, wsrep()), priority=0, ttl=TTL,
            fresh_within=FRESH_WITHIN, ask_peers=lambda peers, request: [], clock=world.clock,
            wall=lambda offset=offset: time.time() + offset)
    return world


def run(world: World, seconds: float, ticking: tuple[str, ...] = NAMES) -> list[tuple[float, str | None]]:
    """Tick the keepers named in `ticking` every WRITER_TICK; the key's holder after each round."""
    seen = []
    for _ in range(round(seconds / WRITER_TICK)):
        world.now += WRITER_TICK
        for name in ticking:
            world.keepers[name].tick()
        seen.append((world.now, world.key()))
    return seen


def without_writer(seen: list[tuple[float, str | None]]) -> float:
    return WRITER_TICK * sum(1 for _, holder in seen if holder is None)


@pytest.mark.parametrize(("role", "offset"), SKEWS)
def test_a_switchover_completes_within_a_tick_or_two_whoever_has_the_skewed_clock(role: str, offset: float) -> None:
    world = make_world({ROLES[role]: offset})
    run(world, 1.0)
    assert world.key() == "node1"
    world.switchover = Switchover("node1", "node3", time.time() + world.wall_offsets.get("node1", 0.0))
    seen = run(world, 2.0)
    assert world.key() == "node3", seen
    assert without_writer(seen) <= 2 * WRITER_TICK, seen
    assert world.switchover is None, "the new writer clears the request"


@pytest.mark.parametrize(("role", "offset"), SKEWS)
def test_a_dead_writer_is_replaced_once_its_lease_expires_whatever_its_records_say(role: str, offset: float) -> None:
    """A record stamped 30 s in the future no longer looks alive for 33 s after its agent died, nor does
    one stamped 30 s in the past look dead from the start."""
    world = make_world({ROLES[role]: offset})
    run(world, 1.0)
    assert world.key() == "node1"
    world.dcs_down = {"node1"}  # node1's agent is gone: no renewal, no heartbeat (its record stays)
    seen = run(world, 8.0, ticking=("node2", "node3"))
    took = next((at for at, holder in seen if holder not in (None, "node1")), None)
    assert took is not None, seen
    assert took - seen[0][0] <= TTL + FRESH_WITHIN, seen


def test_a_switchover_nobody_completes_returns_the_role_within_about_a_second() -> None:
    """The target's writer keeper is hung (its agent still heartbeats): the old writer takes the role back
    after HANDBACK_AFTER and marks the request failed, rather than leave the cluster without a writer."""
    world = make_world()
    run(world, 1.0)
    world.switchover = request = Switchover("node1", "node3")
    seen = run(world, 3.0, ticking=("node1", "node2"))
    assert world.key() == "node1", seen
    assert HANDBACK_AFTER <= without_writer(seen) <= HANDBACK_AFTER + 2 * WRITER_TICK, seen
    assert world.switchover is not None and world.switchover.failed.startswith("node3 did not take the writer role")
    assert world.switchover.from_member == request.from_member
    seen = run(world, 2.0)  # the failed request binds nobody, even once node3 ticks again
    assert all(holder == "node1" for _, holder in seen), seen


def test_a_switchover_to_a_member_the_writer_sees_as_stale_is_refused_and_the_role_kept() -> None:
    world = make_world()
    run(world, 1.0)
    world.dcs_down = {"node3"}  # node3's agent stopped heartbeating 4 s ago: its record is stale
    run(world, 4.0, ticking=("node1", "node2"))
    world.switchover = Switchover("node1", "node3")
    seen = run(world, 1.0, ticking=("node1", "node2"))
    assert all(holder == "node1" for _, holder in seen), seen
    assert world.switchover is not None and world.switchover.failed.startswith("node3 cannot take the writer role")


def test_a_writer_in_maintenance_still_hands_over_when_nobody_else_can_take_the_role() -> None:
    """The refusal above must not keep a drained writer: maintenance wins, the role is given up."""
    world = make_world()
    run(world, 1.0)
    world.switchover = Switchover("node1", "node9")  # a target that does not exist
    world.maintenance = {"node1"}
    run(world, 0.4, ticking=("node1",))
    assert world.key() is None, "a drained writer kept the role"


def test_a_switchover_just_after_a_failsafe_round_waits_for_the_promises_instead_of_failing() -> None:
    """Peers that granted the writer a failsafe promise take no role until it ends; a switchover in that
    time used to release the key for a target that could not take it, and the hand-back then failed it."""
    world = make_world()
    run(world, 1.0)

    def ask(peers: list, request: dict) -> list[str]:
        refusals = []
        for peer in peers:
            verdict = world.keepers[peer.name].grant_failsafe(request["writer"], request["ttl"])
            if not verdict:
                refusals.append(verdict.reason)
        return refusals

    world.keepers["node1"]._ask_peers = ask
    world.dcs_down = {"node1"}  # renewals stall: node1 asks its peers, who promise
    for _ in range(4):
        world.now += WRITER_TICK
        for keeper in world.keepers.values():
            keeper.tick()
        world.keepers["node1"].failsafe_round()
    assert world.keepers["node3"]._active_promise(world.now) is not None
    world.dcs_down = set()
    world.switchover = Switchover("node1", "node3")
    seen = run(world, 6.0)
    assert world.key() == "node3", seen
    assert world.switchover is None, f"the switchover failed: {world.switchover}"
    assert without_writer(seen) <= 2 * WRITER_TICK, seen
