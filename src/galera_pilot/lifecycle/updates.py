"""Pure rules of automatic updates: when do the agents roll an installed minor update by themselves?

The policy is cluster-wide (`galera-pilot edit-config --set updates.policy=minor`), since a roll involves
every node: `never` (the default), `minor` (as soon as the same newer release of the running series is
installed on every host) or `scheduled` (the same, started only inside `updates.window`, HH:MM-HH:MM on
the deciding agent's clock; a roll that started in the window runs to its end). A major step is always a
person's `galera-pilot upgrade`. The roll is the rolling upgrade's (lifecycle/driver.py: one node at a time,
the writer last, IST only, mariadb-upgrade on every node), started and driven by the writer's agent, so
exactly one agent decides; another agent's writer resumes it when its driver died, never when it halted
(a person looks first), and a release whose upgrade a person aborted is not started again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from galera_pilot.cluster import Cluster
from galera_pilot.lifecycle.upgrade import pending_upgrade, same_version, upgrade_refusal
from galera_pilot.mariadb.version import parse_version, short

WINDOW = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])")
ABORTED = "aborted"  # the history's word for a roll a person ended (lifecycle/driver.py records it)


class UpdatePolicy(BaseModel):
    """The `updates` section of the cluster-wide settings."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["never", "minor", "scheduled"] = Field("never", description="never; minor: as soon as it is "
                                                           "installed everywhere; scheduled: only in the window")
    window: str | None = Field(None, pattern=WINDOW.pattern, description="HH:MM-HH:MM (may wrap past midnight)")

    @model_validator(mode="after")
    def _window_when_scheduled(self) -> UpdatePolicy:
        if self.policy == "scheduled" and self.window is None:
            raise ValueError("policy scheduled needs a window, e.g. updates.window=03:00-05:00")
        return self

    @classmethod
    def of(cls, section: dict[str, Any] | None) -> UpdatePolicy:
        """The policy a stored section says; `never` when it says nothing valid (edit-config checked it)."""
        try:
            return cls.model_validate(section or {})
        except ValueError:
            return cls()


def in_window(window: str, now: time) -> bool:
    match = WINDOW.fullmatch(window)
    if match is None:
        return False
    start = time(int(match[1]), int(match[2]))
    end = time(int(match[3]), int(match[4]))
    return start <= now < end if start <= end else now >= start or now < end


@dataclass(frozen=True)
class UpdateVerdict:
    start: bool = False  # start a rolling upgrade to `target` now
    resume: bool = False  # take over the automatic roll whose driver died
    target: str = ""
    reason: str = ""  # one sentence: why (or why not), what the agent logs when it changes
    needs_history: bool = False  # the snapshot was taken without the history, and the verdict needs it


def update_verdict(cluster: Cluster, me: str, now: datetime) -> UpdateVerdict:
    """What the agent `me` does about automatic updates, from one snapshot and its local clock."""
    policy = UpdatePolicy.of(cluster.settings.updates if cluster.settings else None)
    if policy.policy == "never":
        return UpdateVerdict(reason="automatic updates are off (updates.policy never)")
    if cluster.writer != me:
        return UpdateVerdict(reason="the writer's agent decides automatic updates")
    if cluster.pause is not None:
        return UpdateVerdict(reason="the cluster is paused")
    if cluster.backup_holder is not None:  # a restart under a backup would abort or corrupt it
        return UpdateVerdict(reason=f"a backup is running ({cluster.backup_holder}); automatic updates wait")
    roll = cluster.roll
    if roll is not None:
        if roll.automatic and not roll.halted and cluster.roll_driver is None:
            return UpdateVerdict(resume=True, target=roll.target,
                                 reason=f"the automatic update {roll.id}'s driver is gone: resuming it")
        return UpdateVerdict(reason=f"rolling {roll.kind} {roll.id} is recorded" + (" (halted)" if roll.halted else ""))
    if not any(pending_upgrade(m.version, m.installed_version) for m in cluster.members.values()):
        return UpdateVerdict(reason="no newer release is installed")
    why, target = upgrade_refusal(cluster)
    if why:
        return UpdateVerdict(reason=f"an installed update waits: {why}")
    versions = (parse_version(m.version) for m in cluster.members.values())
    running = {version[:2] for version in versions if version is not None}
    wanted = parse_version(target)
    if wanted is None or running != {wanted[:2]}:
        return UpdateVerdict(reason=f"{short(target)} is a major upgrade: that is galera-pilot upgrade, by a person")
    missing = sorted(set(cluster.roster) - set(cluster.members))
    not_synced = sorted(n for n, m in cluster.members.items() if not m.is_synced)
    if missing or not_synced:
        return UpdateVerdict(reason=f"{short(target)} waits until every member is Synced "
                             f"({', '.join(missing + not_synced)} not)")
    if policy.policy == "scheduled" and not in_window(policy.window or "", now.time()):
        return UpdateVerdict(reason=f"{short(target)} is installed everywhere; waiting for the window {policy.window}")
    if not cluster.history_read:  # the last question looks back at the history, which this snapshot left out
        return UpdateVerdict(target=target, needs_history=True,
                             reason=f"{short(target)} is installed everywhere; reading the history")
    if aborted_before(cluster, target):
        return UpdateVerdict(reason=f"an upgrade to {short(target)} was aborted by a person; galera-pilot "
                             "upgrade runs it")
    return UpdateVerdict(start=True, target=target,
                         reason=f"{short(target)} is installed on every host: rolling it (updates.policy "
                         f"{policy.policy})")


def aborted_before(cluster: Cluster, target: str) -> bool:
    """Whether the history holds a rolling upgrade to `target`, automatic or a person's, that a person
    aborted: either way somebody decided against that release for now."""
    return any(event.action == "roll" and event.inputs.get(ABORTED) and event.inputs.get("kind") == "upgrade"
               and same_version(str(event.inputs.get("target", "")), target) for event in cluster.history)
