"""Membership records written with the DCS primitives, one place that knows their keys:
`galera-pilot remove`'s record (cluster.py: Removal), which the CLI creates, the removed member's agent
(or the CLI, for a member whose host is gone) marks done and `remove --undo` deletes; and the
arbitrators' reports (cluster.py: ArbitratorReport)."""

from __future__ import annotations

import json

from galera_pilot.cluster import ARBITRATORS, ArbitratorReport, Removal
from galera_pilot.dcs.base import DCS

PREFIX = "removed/"


def record_removal(dcs: DCS, removal: Removal) -> bool:
    """False when the member was already removed (the first record stays)."""
    return dcs.create(PREFIX + removal.member, json.dumps(removal.to_dict()))


def update_removal(dcs: DCS, removal: Removal) -> None:
    dcs.put(PREFIX + removal.member, json.dumps(removal.to_dict()))


def forget_removal(dcs: DCS, member: str) -> bool:
    return dcs.delete(PREFIX + member)


def forget_roster_entry(dcs: DCS, member: str) -> bool:
    """A full recovery no longer waits for it, and the proxies drop it from their backends."""
    return dcs.delete(f"roster/{member}")


def publish_arbitrator(dcs: DCS, report: ArbitratorReport, ttl: float) -> None:
    """An arbitrator's heartbeat (agent/arbitrator.py): gone with its TTL when its agent is."""
    dcs.put(ARBITRATORS + report.name, json.dumps(report.to_dict()), ttl)


def forget_arbitrator(dcs: DCS, name: str) -> bool:
    return dcs.delete(ARBITRATORS + name)
