"""A restarted agent's writer keeper before its first look at mariadbd (issue 17).

The keeper ticks as soon as the agent starts; the status observer's first answer comes a moment later.
Until then the node is neither healthy nor unhealthy: the holder of a still-valid lease must not give it
up (that forced a failover on every restart of the writer's agent), and nobody may take the role blind.
"""

from __future__ import annotations

from keeper_world import FRESH_WITHIN, TTL, FakeDcs, World, wsrep

from galera_pilot.routing.health import LiveStatus
from galera_pilot.routing.keeper import WriterKeeper
from galera_pilot.routing.writer import Step


def keeper(world: World, name: str, live: list[LiveStatus]) -> WriterKeeper:
    return WriterKeeper(name, FakeDcs(world, name), lambda: live[0], priority=0, ttl=TTL, fresh_within=FRESH_WITHIN,
                        ask_peers=lambda peers, request: [], clock=world.clock)


def test_the_holder_keeps_its_lease_until_the_first_observation_then_renews_it() -> None:
    world = World(writer="node1", writer_expires=1000.0 + TTL)  # the previous agent's lease, still valid
    live = [LiveStatus()]
    node1 = keeper(world, "node1", live)
    for _ in range(3):  # 0.6 s of ticks without an observation
        assert node1.tick() == Step.NONE
        world.now += 0.2
    assert world.key() == "node1", "the lease was given up before mariadbd was even looked at"
    assert node1.holder == "node1"
    live[0] = LiveStatus(world.now, wsrep())
    assert node1.tick() == Step.RENEW
    assert world.key() == "node1" and world.now < node1.claim_until()


def test_a_first_observation_that_finds_mariadbd_down_gives_the_role_up() -> None:
    world = World(writer="node1", writer_expires=1000.0 + TTL)
    live = [LiveStatus()]
    node1 = keeper(world, "node1", live)
    assert node1.tick() == Step.NONE
    live[0] = LiveStatus(world.now, {})  # the first look: no answer
    assert node1.tick() == Step.RELEASE
    assert world.key() is None


def test_a_candidate_takes_no_role_before_its_first_observation() -> None:
    world = World()
    live = [LiveStatus()]
    node1 = keeper(world, "node1", live)
    assert node1.tick() == Step.NONE
    assert world.key() is None
    live[0] = LiveStatus(world.now, wsrep())
    assert node1.tick() == Step.ACQUIRE
    assert world.key() == "node1"


def test_an_unobserved_peer_does_not_stop_a_healthy_holder() -> None:
    world = World(writer="node2", writer_expires=1000.0 + TTL)
    observed, unobserved = [LiveStatus(world.now, wsrep())], [LiveStatus()]
    node2 = keeper(world, "node2", observed)
    node1 = keeper(world, "node1", unobserved)
    assert node1.tick() == Step.NONE
    assert node2.tick() == Step.RENEW
    assert node1.holder == "node2"
