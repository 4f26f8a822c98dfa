"""The agent's side of events (events/): Galera's queued notifications go to the history, and what
changed since the last cycle (events/transitions.py) goes to the user's callbacks.

Once per cycle, after the member record is published: an empty queue folder costs one scandir. Every
PRUNE_EVERY notifications it records, and at least every TRIM_EVERY seconds (a cluster without notifications
records decisions too), the writer's agent trims the history towards what dcs/history.py keeps, at most
TRIM_LIMIT keys at a time (each is one DCS request, on the cycle's thread).
"""

from __future__ import annotations

import logging
import time

from galera_pilot.agent.memory import History
from galera_pilot.cluster import Member
from galera_pilot.config import NodeConfig
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError
from galera_pilot.events.callbacks import Call, CallbackRunner
from galera_pilot.events.notify import EVENTS, BadNotification, Notification, consume
from galera_pilot.events.transitions import Event, Observed, transitions

log = logging.getLogger(__name__)
PRUNE_EVERY = 20  # notifications recorded by the writer's agent between two trims of the history
TRIM_EVERY = 3600.0
TRIM_LIMIT = 200  # history keys deleted at most per trim: a long history shrinks over several cycles


class EventKeeper:
    def __init__(self, config: NodeConfig, dcs: DCS, history: History) -> None:
        self.config = config
        self.dcs = dcs
        self.history = history
        self._recorded = 0
        self._trimmed_at = time.monotonic()
        self._reloaded: list[str] | None = None
        self.runner = CallbackRunner(lambda: self.config.callbacks)
        self._last: Observed | None = None
        self._stopped_for_restart = False  # a rolling restart stopped mariadbd: its start is on_restart

    def after_cycle(self, member: Member, pid: int | None, writer: bool, restart_requested: bool) -> None:
        self._record_notifications(writer)
        role = "writer" if writer else "reader"
        now = Observed(member.running, pid, member.state, role,
                       (member.cluster_status, member.cluster_size) if member.running else ("", 0))
        restarting = restart_requested or self._stopped_for_restart
        events = transitions(self._last, now, restarting)
        if self._last is not None and self._last.running and not now.running:
            self._stopped_for_restart = restarting
        elif now.running:
            self._stopped_for_restart = False
        self._last = now
        if self._reloaded is not None:
            events.append(Event("on_reload", {"changed": self._reloaded}))
            self._reloaded = None
        for event in events:
            self._submit(event.action, role, event.details, member)

    def reloaded(self, sections: list[str]) -> None:
        """The node's file was re-read: on_reload at the end of the next cycle, which takes the new sections
        (a callbacks section changed by this very reload included)."""
        self._reloaded = sections

    def stopped(self) -> None:
        """The agent stopped mariadbd as it exits: on_stop, if it was running when last seen."""
        last = self._last
        if last is not None and last.running:
            self.runner.submit(Call("on_stop", last.role, self.config.cluster_name,
                                    {"action": "on_stop", "member": self.config.name, "pid": last.pid,
                                     "agent_stopping": True}))
            self._last = Observed(False, role="reader")

    def stop(self) -> None:
        """Let queued callbacks finish (at most their timeout, and 10 s), then stop."""
        self.runner.stop(min(10.0, self.config.callbacks.timeout))

    def _submit(self, action: str, role: str, details: dict, member: Member) -> None:
        description = {"action": action, "member": member.name, "cluster": self.config.cluster_name, "role": role,
                       "state": member.state, "cluster_status": member.cluster_status,
                       "cluster_size": member.cluster_size, "seqno": member.seqno, **details}
        self.runner.submit(Call(action, role, self.config.cluster_name, description))

    def _record_notifications(self, writer: bool) -> None:
        """Each queued notification into the history, its file removed once recorded: a DCS that does
        not answer leaves the rest queued for the next cycle."""
        consume(self.config.run_dir / EVENTS, self._record)
        if writer and (self._recorded >= PRUNE_EVERY or time.monotonic() - self._trimmed_at >= TRIM_EVERY):
            self._recorded, self._trimmed_at = 0, time.monotonic()
            try:  # the writer's agent only, a bounded number of keys per call (dcs/history.py)
                self.dcs.trim_history(limit=TRIM_LIMIT)
            except PilotError as error:
                log.warning("could not trim the history: %s", error)

    def _record(self, notification: Notification | BadNotification) -> bool:
        if isinstance(notification, BadNotification):
            log.warning("a Galera notification was not understood and is ignored: %s", notification)
            return True
        members = None if notification.members is None else [m.name for m in notification.members]
        try:
            self.history("galera", notification.sentence(), {
                "status": notification.status, "primary": notification.primary, "members": members,
                "cluster_uuid": notification.uuid})
        except PilotError as error:
            log.warning("Galera's notifications wait for the DCS: %s", error)
            return False
        self._recorded += 1
        return True
