"""`galera-pilot remove`'s record (cluster.py: Removal) written with the DCS primitives: one place that
knows its key. The CLI creates it; the removed member's agent, or the CLI for a member whose host is
gone, marks it done; `remove --undo` deletes it."""

from __future__ import annotations

import json

from galera_pilot.cluster import Removal
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
