"""The writer failsafe: pure rules (failsafe.py), and three WriterKeepers on a simulated clock and DCS.

The simulation is the point: whatever the order of ticks, failsafe rounds, DCS outages (for some members
or all), unreachable peers and passing time, no two members may claim the writer role at once.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from keeper_world import FRESH_WITHIN, NAMES, TTL, FakeDcs, World, member, wsrep

from galera_pilot.routing.failsafe import FAILSAFE_AFTER, Peer, component_peers, grant, promise_length, should_ask
from galera_pilot.routing.health import LiveStatus
from galera_pilot.routing.keeper import WriterKeeper

MEMBERS = {name: member(name, i) for i, name in enumerate(NAMES, start=1)}


# ---- the pure rules -----------------------------------------------------------------------------------

def test_component_peers_are_the_other_members_galera_lists() -> None:
    peers, why = component_peers("node2", wsrep(), MEMBERS)
    assert why == ""
    assert peers == [Peer("node1", "http://10.0.0.1:8008"), Peer("node3", "http://10.0.0.3:8008")]
    alone, why = component_peers("node1", wsrep(1, "10.0.0.1:3306"), MEMBERS)
    assert (alone, why) == ([], "")  # a component of one: nobody else could take the role


def test_a_component_that_cannot_be_named_completely_gives_no_peers() -> None:
    cases = {
        "not in a Primary Component": wsrep(status="non-Primary"),
        "names 2 of the component's 3": wsrep(addresses="10.0.0.1:3306,10.0.0.2:3306"),
        "no member record has the address 10.0.0.9:3306": wsrep(addresses="10.0.0.1:3306,10.0.0.2:3306,10.0.0.9:3306"),
        "our own address": wsrep(2, "10.0.0.2:3306,10.0.0.3:3306"),
    }
    for fragment, status in cases.items():
        peers, why = component_peers("node1", status, MEMBERS)
        assert peers == [] and fragment in why, (fragment, why)
    peers, why = component_peers("node1", wsrep(size="x"), MEMBERS)  # type: ignore[arg-type]
    assert peers == [] and why
    without_api = {**MEMBERS, "node3": member("node3", 3, api=False)}
    peers, why = component_peers("node1", wsrep(), without_api)
    assert peers == [] and "node3 publishes no REST API address" in why


def test_an_arbitrator_is_the_empty_entry_and_is_never_asked() -> None:
    """garbd has no client address: Galera lists it as an empty entry, and it can never take the role."""
    peers, why = component_peers("node1", wsrep(3, "10.0.0.1:3306,10.0.0.2:3306,"), MEMBERS)
    assert why == "" and peers == [Peer("node2", "http://10.0.0.2:8008")]
    peers, why = component_peers("node1", wsrep(2, ""), MEMBERS)
    assert peers == [] and "names 0 of the component's 2" in why


def test_grant_rules() -> None:
    assert grant("node2", "node1", claiming=False, last_writer="node1")
    assert not grant("node2", "node1", claiming=True, last_writer="node1")
    assert "last saw is node3" in grant("node2", "node1", claiming=False, last_writer="node3").reason
    assert "last saw is nobody" in grant("node2", "node1", claiming=False, last_writer=None).reason
    assert not grant("node1", "node1", claiming=False, last_writer="node1")


def test_promise_length_is_the_longer_lease_and_refuses_nonsense() -> None:
    assert promise_length(3, 3.0) == 3.0
    assert promise_length(5.5, 3.0) == 5.5
    assert promise_length(2, 3.0) == 3.0
    for bad in (0, -1, 61, "3", None, True, float("nan")):
        assert promise_length(bad, 3.0) is None, bad


def test_should_ask_only_the_writer_whose_renewals_stalled() -> None:
    assert should_ask("node1", "node1", True, False, True, FAILSAFE_AFTER)
    assert not should_ask("node1", "node1", True, False, True, FAILSAFE_AFTER / 2)
    assert not should_ask("node2", "node1", True, False, True, 5)
    assert not should_ask(None, "node1", True, False, True, 5)
    assert not should_ask("node1", "node1", False, False, True, 5)
    assert not should_ask("node1", "node1", True, True, True, 5)
    # Once the claim ran out, asking on would only renew the peers' promises and block a failover.
    assert not should_ask("node1", "node1", True, False, False, 5)


# ---- three keepers on a simulated clock -------------------------------------------------------------------

def make_world() -> World:
    world = World()
    for name in NAMES:
        def ask(peers: list[Peer], request: dict[str, object], me: str = name) -> list[str]:
            refusals = []
            for peer in peers:
                if frozenset((me, peer.name)) in world.cut:
                    refusals.append(f"{peer.name} did not answer")
                    continue
                verdict = world.keepers[peer.name].grant_failsafe(request["writer"], request["ttl"])
                if not verdict:
                    refusals.append(f"{peer.name} refused ({verdict.reason})")
            return refusals

        world.keepers[name] = WriterKeeper(
            name, FakeDcs(world, name), lambda: LiveStatus(world.now, wsrep()), priority=0, ttl=TTL,
            fresh_within=FRESH_WITHIN, ask_peers=ask, clock=world.clock)
    return world


def claimers(world: World) -> set[str]:
    return {name for name, keeper in world.keepers.items() if world.now < keeper.claim_until()}


def test_the_writer_keeps_its_role_through_a_dcs_outage_when_every_peer_agrees() -> None:
    world = make_world()
    for keeper in world.keepers.values():
        keeper.tick()
    assert claimers(world) == {"node1"}
    world.dcs_down = set(NAMES)
    for _ in range(100):  # 20 s without the DCS, in 0.2 s steps
        world.now += 0.2
        for keeper in world.keepers.values():
            keeper.tick()
            keeper.failsafe_round()
        assert claimers(world) == {"node1"}
    assert "every other member of the Primary Component agreed (node2, node3)" in world.keepers[
        "node1"].failsafe_round()
    world.dcs_down = set()  # the key expired long ago: node1 takes it back, nobody else does
    for keeper in world.keepers.values():
        keeper.tick()
    assert world.key() == "node1" and claimers(world) == {"node1"}


def test_peers_that_still_reach_the_dcs_keep_their_promise_after_the_key_expired() -> None:
    world = make_world()
    for keeper in world.keepers.values():
        keeper.tick()
    world.dcs_down = {"node1"}  # only node1 lost the DCS; node2 and node3 see its key expire
    for _ in range(50):
        world.now += 0.2
        for keeper in world.keepers.values():
            keeper.tick()
            keeper.failsafe_round()
        assert claimers(world) == {"node1"}
    assert world.key() is None, "the key expired, yet nobody took it: node2 and node3 promised node1"


def test_one_silent_peer_ends_the_claim_and_the_role_moves_only_after_the_promise() -> None:
    world = make_world()
    for keeper in world.keepers.values():
        keeper.tick()
    world.dcs_down = {"node1"}  # node1 alone lost the DCS
    world.cut = {frozenset(("node1", "node3"))}  # and cannot reach node3 either
    took_over_at, said = None, set()
    for _ in range(60):
        world.now += 0.2
        for keeper in world.keepers.values():
            keeper.tick()
            said.add(keeper.failsafe_round())
        assert len(claimers(world)) <= 1
        if took_over_at is None and claimers(world) - {"node1"}:
            took_over_at = world.now
    assert any("node3 did not answer" in sentence for sentence in said), said
    assert world.keepers["node1"].failsafe_round() == "", "node1 stops asking once its claim ran out"
    assert took_over_at is not None and world.key() == "node2"


def test_a_member_that_claims_refuses_and_a_dropped_writer_stops_asking() -> None:
    world = make_world()
    for keeper in world.keepers.values():
        keeper.tick()
    assert not world.keepers["node1"].grant_failsafe("node2", TTL)
    world.dcs_down = set(NAMES)
    world.now += 1.0
    world.keepers["node1"].drop("mariadbd died")
    assert world.keepers["node1"].failsafe_round() == ""
    assert claimers(world) == set()


def test_bad_requests_are_refused_with_a_reason() -> None:
    keeper = make_world().keepers["node2"]
    assert "names no writer" in keeper.grant_failsafe(None, TTL).reason
    assert "ttl must be" in keeper.grant_failsafe("node1", "soon").reason


PAIRS = [frozenset(pair) for pair in (("node1", "node2"), ("node1", "node3"), ("node2", "node3"))]
PHASES = st.tuples(
    st.sets(st.sampled_from(NAMES)),  # who cannot reach the DCS during the phase
    st.sets(st.sampled_from(PAIRS)),  # which pairs cannot reach each other's REST API
    st.integers(1, 30),  # steps of 0.2 s (a tick and a failsafe round per member and step)
    st.permutations([*(("tick", n) for n in NAMES), *(("round", n) for n in NAMES)]),  # order within a step
    st.sampled_from([None, *NAMES]),  # a member whose mariadbd dies at the start of the phase
)


@settings(max_examples=300, deadline=None)
@given(st.lists(PHASES, min_size=1, max_size=8))
def test_never_two_claims_whatever_happens(phases: list[tuple]) -> None:
    world = make_world()
    for dcs_down, cut, steps, order, dies in phases:
        world.dcs_down, world.cut = dcs_down, cut
        if dies is not None:
            world.keepers[dies].drop("simulated")
        for _ in range(steps):
            world.now += 0.2
            for kind, name in order:
                keeper = world.keepers[name]
                keeper.tick() if kind == "tick" else keeper.failsafe_round()
                assert len(claimers(world)) <= 1, (kind, name, claimers(world))
