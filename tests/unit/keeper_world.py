"""Writer keepers on a simulated clock: a DCS with a leased writer key, and who can reach whom.

Shared by the failsafe simulation and the keeper's start-up tests (imported by name, like unit_helpers).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from galera_pilot.cluster import Cluster, Member, Switchover
from galera_pilot.errors import DCSError
from galera_pilot.routing.keeper import WriterKeeper

NAMES = ("node1", "node2", "node3")
TTL = 3.0
FRESH_WITHIN = 3.0  # as the agent runs it: a record unchanged this long (by the keeper's clock) is stale


def member(name: str, i: int, api: bool = True) -> Member:
    return Member(name, f"10.0.0.{i}", api_url=f"http://10.0.0.{i}:8008" if api else "", client_port=3306,
                  running=True, state="Synced", cluster_status="Primary", cluster_size=3, updated_at=time.time())


def wsrep(size: int = 3, addresses: str = "10.0.0.1:3306,10.0.0.2:3306,10.0.0.3:3306",
          status: str = "Primary") -> dict[str, str]:
    return {"wsrep_cluster_size": str(size), "wsrep_incoming_addresses": addresses,
            "wsrep_cluster_status": status, "wsrep_local_state_comment": "Synced", "wsrep_ready": "ON",
            "wsrep_connected": "ON"}


@dataclass
class World:
    """A clock, a DCS with a leased writer key, and who can reach whom."""

    now: float = 1000.0
    writer: str | None = None
    writer_expires: float = 0.0
    dcs_down: set[str] = field(default_factory=set)  # members that cannot reach the DCS
    cut: set[frozenset[str]] = field(default_factory=set)  # pairs whose REST calls fail
    keepers: dict[str, WriterKeeper] = field(default_factory=dict)
    revision: int = 0  # the DCS's revision counter
    switchover: Switchover | None = None
    maintenance: set[str] = field(default_factory=set)
    wall_offsets: dict[str, float] = field(default_factory=dict)  # each member's wall clock minus the real one
    versions: dict[str, int] = field(default_factory=dict)  # each member record's version

    def clock(self) -> float:
        return self.now

    def key(self) -> str | None:
        return self.writer if self.writer is not None and self.now < self.writer_expires else None


class FakeDcs:
    def __init__(self, world: World, me: str) -> None:
        self.world, self.me = world, me

    def _reachable(self) -> None:
        if self.me in self.world.dcs_down:
            raise DCSError("DCS unreachable (simulated)")

    def routing_view(self) -> Cluster:
        self._reachable()
        records = {name: member(name, i) for i, name in enumerate(NAMES, start=1)}
        for name, offset in self.world.wall_offsets.items():  # stamped by each member's own (skewed) clock
            records[name] = Member(**{**records[name].__dict__, "updated_at": records[name].updated_at + offset})
        # A member that reaches the DCS heartbeats (a new record version at every look); one that cannot
        # stops (its version stays put), and the others judge it by that, on their own clocks.
        for name in NAMES:
            if name not in self.world.dcs_down:
                self.world.revision += 1
                self.world.versions[name] = self.world.revision
        return Cluster(members=records, writer=self.world.key(), member_versions=dict(self.world.versions),
                       switchover=self.world.switchover, maintenance=frozenset(self.world.maintenance))

    def acquire_writer(self, name: str, ttl: float, reason: str) -> bool:
        self._reachable()
        if self.world.key() not in (None, name):
            return False
        self.world.writer, self.world.writer_expires = name, self.world.now + ttl
        return True

    def release_writer(self, name: str) -> None:
        self._reachable()
        if self.world.key() == name:
            self.world.writer = None

    def clear_switchover(self) -> None:
        self._reachable()
        self.world.switchover = None

    def fail_switchover(self, request: Switchover, why: str, ttl: float = 30.0) -> bool:
        self._reachable()
        if self.world.switchover != request:
            return False
        self.world.switchover = Switchover(request.from_member, request.to_member, request.at, why)
        return True
