"""Carrying out `galera-pilot remove` on the removed member's own agent (the rules: membership/rules.py).

The CLI records the removal in the DCS; this agent then gives up any role, stops mariadbd cleanly (a
graceful leave: the others' quorum base shrinks at once, unlike a crash), writes a mark into its folder,
marks the record done and exits. The mark is what keeps the node out when the DCS cannot say so: an
agent started on a marked folder refuses at once (`refuse_if_marked`), whatever systemd or a person does.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from galera_pilot.agent.memory import CYCLE_LOGGER, AgentMemory, History
from galera_pilot.cluster import REMOVED, Cluster
from galera_pilot.config import NodeConfig
from galera_pilot.dcs.base import DCS
from galera_pilot.dcs.membership import forget_roster_entry, update_removal
from galera_pilot.errors import PilotError
from galera_pilot.files import write_private
from galera_pilot.mariadb.process import MariadbProcess
from galera_pilot.routing.keeper import WriterKeeper

log = logging.getLogger(CYCLE_LOGGER)

MARK = "removed.json"
STOP_TIMEOUT = 300.0
EXIT_REMOVED = 3  # the agent's exit status once removed (systemd: RestartPreventExitStatus=3)


class MemberRemoved(PilotError):
    """This member is out of the cluster for good; the agent stops (exit status EXIT_REMOVED)."""


def mark_path(config: NodeConfig) -> Path:
    return config.base_dir / MARK


def removal_reason(config: NodeConfig, cluster: Cluster | None) -> str | None:
    """Who removed this member and when, from the DCS record or the folder's mark; None if neither says so."""
    record = cluster.removed.get(config.name) if cluster is not None else None
    if record is not None:
        return f"by {record.by} at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(record.at))}"
    mark = read_mark(config)
    return None if mark is None else f"by {mark.get('by', '?')}, as {mark_path(config)} records"


def read_mark(config: NodeConfig) -> dict[str, object] | None:
    try:
        data = json.loads(mark_path(config).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {"by": "unknown (the mark is unreadable)"}
    return data if isinstance(data, dict) else {"by": "unknown"}


def refuse_if_marked(config: NodeConfig) -> None:
    """At the agent's start: a folder marked as removed never runs mariadbd again by itself."""
    mark = read_mark(config)
    if mark is not None:
        raise MemberRemoved(f"{config.name} was removed from cluster {config.cluster_name} by {mark.get('by', '?')} "
                            f"({mark_path(config)}); its datadir is kept. To bring it back as a member: "
                            f"galera-pilot remove --undo {config.name}, then delete {mark_path(config)}")


class Leaver:
    """Stops this member for good when the DCS says it was removed."""

    def __init__(self, config: NodeConfig, dcs: DCS, process: MariadbProcess, memory: AgentMemory,
                 writer: WriterKeeper, history: History) -> None:
        self.config = config
        self.dcs = dcs
        self.process = process
        self.memory = memory
        self.writer = writer
        self.history = history
        self.left = False  # set once done: shutdown() then must not put the member back in the roster

    def leave(self, cluster: Cluster, reason: str) -> str:
        self.writer.drop("this member was removed from the cluster")
        self.memory.expect_running = False  # a deliberate stop, not a crash
        stopped_cleanly = True
        if self.process.is_running():
            stopped_cleanly = self.process.stop(STOP_TIMEOUT)
            if not stopped_cleanly:
                self.process.kill()
                self.process.wait_exit(30)
        record = cluster.removed.get(self.config.name)
        by = record.by if record is not None else "unknown"
        write_private(mark_path(self.config), json.dumps({"member": self.config.name, "by": by,
                                                          "at": time.time()}) + "\n", 0o644)
        how = "cleanly" if stopped_cleanly else f"only by a kill after {STOP_TIMEOUT:.0f} s"
        detail = f"mariadbd stopped {how}; {mark_path(self.config)} keeps the node out"
        self.history("removed", f"{reason}; {detail}")
        forget_roster_entry(self.dcs, self.config.name)
        self.dcs.release_lease("join", self.config.name)
        self.dcs.release_bootstrap_lock(self.config.name)
        self.dcs.remove_member(self.config.name)
        if record is not None:
            update_removal(self.dcs, record.moved(REMOVED, detail=detail))
        self.left = True
        log.info("%s: %s", reason, detail)
        raise MemberRemoved(f"{self.config.name} was removed from the cluster: {detail}")
