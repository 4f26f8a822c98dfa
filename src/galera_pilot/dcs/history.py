"""How much history the DCS keeps (pure). Every event is one key, and the history grows with the
cluster's age; readers that need no history skip it (DCS.snapshot(with_history=False)), but `history`
and the stores themselves (etcd's space quota) still pay for all of it.

Kept: the newest KEEP events, of which at most KEEP_NOTIFICATIONS of Galera's notifications (the most
frequent kind, and the least lasting). Never dropped: what a later decision or a person looks back at,
a rolling upgrade a person aborted (lifecycle/updates.aborted_before: the automatic updates must not
start it again) and a person's forced bootstrap (what it discarded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

KEEP = 2000
KEEP_NOTIFICATIONS = 100
NOTIFICATION = "galera"


def protected(event: dict[str, Any]) -> bool:
    inputs = event.get("inputs") or {}
    return (event.get("action") == "roll" and bool(inputs.get("aborted"))) or event.get("action") == "force"


def to_delete(entries: Sequence[tuple[str, dict[str, Any]]], keep: int = KEEP,
              keep_notifications: int = KEEP_NOTIFICATIONS) -> list[str]:
    """The keys to delete among (key, event) pairs, keys sorting oldest first."""
    ordered = sorted(entries, key=lambda entry: entry[0])
    notifications = [key for key, event in ordered if event.get("action") == NOTIFICATION]
    doomed = set(notifications[:max(0, len(notifications) - keep_notifications)])
    rest = [key for key, event in ordered if key not in doomed and not protected(event)]
    doomed |= set(rest[:max(0, len(rest) - keep)])
    return [key for key, _ in ordered if key in doomed]
