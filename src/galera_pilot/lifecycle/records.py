"""The lifecycle's records in the DCS: a pause, a rolling restart's plan and progress, and the
restart request one node's agent carries out.

Keys (under the cluster prefix):
  pause            a person's `galera-pilot pause`: every agent keeps reporting and takes no action
  roll             the rolling restart in progress: its order, who is done, who is being restarted now
  roll_driver      the lease of the `galera-pilot restart` process that drives the roll (TTL): when it
                   lapses the roll is interrupted, shown by `list`, and `restart --resume` continues it
  restart/<name>   the request that <name>'s agent restart its mariadbd, and how far it got

Times in these records are the writing host's wall clock, for people to read; no decision compares them
across hosts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class Pause:
    """`galera-pilot pause`: until `resume`, no agent restarts, bootstraps, joins or moves the writer."""

    by: str
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pause:
        return cls(**_known(cls, data))


# A restart request's phases: the driver writes REQUESTED; the agent STOPPING (with the pid it stops), then
# DONE once a new mariadbd is Synced, or FAILED with why (it may still turn DONE if the node recovers).
REQUESTED, STOPPING, DONE, FAILED = "requested", "stopping", "done", "failed"


@dataclass(frozen=True)
class RestartRequest:
    """That `member`'s agent stop its mariadbd cleanly and let it rejoin (for the roll `roll`)."""

    member: str
    roll: str
    at: float = 0.0
    phase: str = REQUESTED
    stopped_pid: int | None = None  # the mariadbd the agent stopped: a different pid Synced means "restarted"
    detail: str = ""  # done: how it went; failed: why, with the error log's last lines
    upgrade: bool = False  # a rolling upgrade: run mariadb-upgrade once the new server is Synced
    stopped_cleanly: bool | None = None  # the agent's stop: mariadb-upgrade never runs after an unclean one
    upgrade_failed: bool = False  # mariadb-upgrade failed or was refused: never retried by the agent

    @property
    def open(self) -> bool:
        """Still to be carried out or confirmed by the agent."""
        return self.phase in (REQUESTED, STOPPING, FAILED)

    def moved(self, phase: str, **changes: Any) -> RestartRequest:
        return replace(self, phase=phase, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestartRequest:
        return cls(**_known(cls, data))


@dataclass(frozen=True)
class Roll:
    """A rolling restart: members are restarted one at a time in `order` (the writer last, whoever it is
    then), `done` those finished, `current` the one being restarted (or about to be)."""

    id: str
    order: tuple[str, ...]
    kind: str = "restart"  # restart | upgrade
    target: str = ""  # upgrade: the version every node runs at the end
    done: tuple[str, ...] = ()
    current: str | None = None
    started_at: float = 0.0
    by: str = ""  # host and pid of the `galera-pilot restart` that started it
    allow_sst: bool = False
    halted: str = ""  # why the roll stopped (a node that did not come back); `restart --resume` clears it
    drained: tuple[str, ...] = ()  # members the roll put in maintenance (and must take out again)
    downtimes: dict[str, float] = field(default_factory=dict)  # member -> seconds it was out, measured

    @property
    def remaining(self) -> tuple[str, ...]:
        return tuple(name for name in self.order if name not in self.done)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["order"], data["done"], data["drained"] = list(self.order), list(self.done), list(self.drained)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Roll:
        picked = _known(cls, data)
        for name in ("order", "done", "drained"):
            picked[name] = tuple(picked.get(name) or ())
        return cls(**picked)
