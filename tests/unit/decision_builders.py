"""Builders for decision tests: members, snapshots and the LocalState a member's agent would observe."""

from __future__ import annotations

from typing import Any

from galera_pilot.agent.decisions import LocalState, RecoveryPolicy
from galera_pilot.cluster import Cluster, HighWater, InitializeRecord, Member, Position, RosterEntry, SeedRecord

CLUSTER_UUID = "11111111-2222-3333-4444-555555555555"
FOREIGN_UUID = "99999999-8888-7777-6666-555555555555"
HOST = "box1"
NOW = 10_000.0

ALL = RecoveryPolicy("all")
MAJORITY = RecoveryPolicy("majority", majority_timeout=30.0)

ADDRESSES = {f"n{i}": f"127.0.0.{i + 1}" for i in range(1, 10)}


def position(seqno: int, uuid: str = CLUSTER_UUID, safe: bool = False, unusable: str | None = None) -> Position:
    return Position(uuid, seqno, safe, "grastate", unusable)


def stopped(name: str, pos: Position | None = None, host: str = HOST) -> Member:
    return Member(name=name, address=ADDRESSES.get(name, "127.0.1.1"), host=host, running=False, state="stopped",
                  position=pos)


def running(name: str, status: str = "Primary", state: str = "Synced", galera_port: int = 4567,
            address: str | None = None) -> Member:
    return Member(name=name, address=address or ADDRESSES.get(name, "127.0.1.1"), galera_port=galera_port,
                  host=HOST, running=True, state=state, cluster_status=status, cluster_size=3)


def done(by: str = "n1", uuid: str = CLUSTER_UUID) -> InitializeRecord:
    return InitializeRecord(by=by, cluster_uuid=uuid, started_at=1.0, finished_at=2.0, version=1)


def snapshot(*members: Member, roster: Any = None, initialize: InitializeRecord | None = None,
             seed: SeedRecord | None = None, lock: str | None = None, no_init: bool = False,
             high_water: int | HighWater | None = None) -> Cluster:
    """A snapshot of an initialized cluster; roster defaults to the given members' names; `high_water` is
    the cluster's mark (a seqno of CLUSTER_UUID, or a whole record)."""
    names = [m.name for m in members] if roster is None else list(roster)
    return Cluster(
        initialize=None if no_init else (initialize or done()),
        members={m.name: m for m in members},
        roster={n: RosterEntry(n, ADDRESSES.get(n, "127.0.1.1")) for n in names},
        seed=seed,
        bootstrap_lock_holder=lock,
        read_at=NOW,
        high_water=HighWater(CLUSTER_UUID, high_water, "n1") if isinstance(high_water, int) else high_water,
    )


def local_of(member: Member, has_data: bool | None = None, **overrides: Any) -> LocalState:
    """The LocalState the member's own agent sees: consistent with what it published."""
    data = (member.running or member.position is not None) if has_data is None else has_data
    fields: dict[str, Any] = {
        "name": member.name, "host": member.host, "running": member.running,
        "cluster_status": member.cluster_status, "state": member.state, "has_data": data,
        "position": member.position,
    }
    fields.update(overrides)
    return LocalState(**fields)
