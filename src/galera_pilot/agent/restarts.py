"""Carrying out this node's part of a rolling restart (the rules are lifecycle/restart.py).

The driver (`galera-pilot restart`, lifecycle/driver.py) drains the node and writes its restart request; the
agent stops mariadbd cleanly, recording the pid it stopped, and its ordinary ladder rejoins the cluster
(IST: a clean stop leaves the position in grastate.dat). Once a new mariadbd is Synced the request is
marked done; a start that fails or a server that keeps exiting marks it failed, with the error log's
last lines, which halts the roll.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from galera_pilot.agent.decisions import LocalState
from galera_pilot.agent.memory import CYCLE_LOGGER, AgentMemory, History
from galera_pilot.cluster import DONE, FAILED, STOPPING, Cluster, RestartRequest
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.base import DCS
from galera_pilot.dcs.lifecycle import update_restart
from galera_pilot.errors import PilotError
from galera_pilot.lifecycle.restart import restart_confirmed, restart_due, restart_failing
from galera_pilot.mariadb.process import MariadbProcess, tail
from galera_pilot.mariadb.upgrade import run_mariadb_upgrade
from galera_pilot.routing.keeper import WriterKeeper

log = logging.getLogger(CYCLE_LOGGER)

STOP_TIMEOUT = 300.0  # s a clean shutdown may take (InnoDB flushes) before the server is killed


class RollingRestarts:
    """This agent's restart requests: stop when asked, confirm once Synced again, report a failure."""

    def __init__(self, config: NodeConfig, dcs: DCS, process: MariadbProcess, memory: AgentMemory,
                 writer: WriterKeeper, history: History, credentials: Credentials,
                 heartbeat: Callable[[], None] = lambda: None,
                 rebuild: Callable[[str], None] = lambda donor: None) -> None:
        self.config = config
        self.rebuild = rebuild  # `galera-pilot reinit`: move the stopped node's datadir aside, SST from the donor
        self.heartbeat = heartbeat  # publishes the member record while mariadb-upgrade runs
        self.credentials = credentials
        self.dcs = dcs
        self.process = process
        self.memory = memory
        self.writer = writer
        self.history = history
        self._stopped_at: float | None = None  # our clock, when we stopped mariadbd for the request
        self._log_offset: int | None = None  # the error log's size at the stop: what the restart wrote follows

    def due(self, cluster: Cluster, pid: int | None) -> bool:
        """A request of the recorded roll only: one left behind by a roll that was aborted meanwhile (its
        driver wrote it just after the abort) restarts nothing."""
        request = cluster.restarts.get(self.config.name)
        if request is not None and (cluster.roll is None or request.roll != cluster.roll.id):
            return False
        return restart_due(request, pid, cluster.pause is not None)

    def stop(self, cluster: Cluster, reason: str) -> str:
        """Stop the running mariadbd for the request, cleanly (killed only after STOP_TIMEOUT)."""
        request = cluster.restarts[self.config.name]
        pid = self.process.pid()
        if pid is None:
            return "mariadbd is no longer running; the rolling restart's request waits for it to be Synced again"
        if not update_restart(self.dcs, request.moved(STOPPING, stopped_pid=pid)):
            return "the rolling restart's request was withdrawn; mariadbd keeps running"
        self.history("roll-restart", f"{reason} (roll {request.roll}, mariadbd pid {pid})", {"roll": request.roll})
        self.writer.drop("mariadbd stops for a rolling restart")  # the driver moved the role already; be sure
        self.memory.expect_running = False  # a deliberate stop, not a crash
        self._stopped_at = time.monotonic()
        try:
            self._log_offset = self.config.error_log.stat().st_size
        except OSError:
            self._log_offset = None
        if self.process.stop(STOP_TIMEOUT):
            update_restart(self.dcs, request.moved(STOPPING, stopped_pid=pid, stopped_cleanly=True))
            sentence = f"{reason}: mariadbd stopped cleanly"
        else:
            self.process.kill()
            self.process.wait_exit(30)
            update_restart(self.dcs, request.moved(STOPPING, stopped_pid=pid, stopped_cleanly=False))
            sentence = (f"{reason}: mariadbd did not stop within {STOP_TIMEOUT:.0f} s and was killed (it may need a "
                        "full SST)")
        if request.rebuild_from:
            self.rebuild(request.rebuild_from)
            sentence = (f"galera-pilot reinit rebuilds this node: {sentence.split(': ', 1)[1]}; its datadir is moved "
                        f"aside and it takes a full SST from {request.rebuild_from}")
        return sentence

    def after_cycle(self, local: LocalState, cluster: Cluster, pid: int | None) -> None:
        request = cluster.restarts.get(self.config.name)
        synced = local.running and local.cluster_status == "Primary" and local.state == "Synced"
        if request is None or not restart_confirmed(request, pid, synced):
            return
        took = (f" {time.monotonic() - self._stopped_at:.1f} s after the stop"
                if self._stopped_at is not None else "")
        how = self._transfer()
        self._stopped_at = self._log_offset = None
        self.memory.sst_donor = ""  # reinit: the full SST is done; later starts choose their donor freely
        detail = f"restarted: mariadbd pid {pid} Synced{took}{how}"
        if request.upgrade:
            try:
                detail += self._upgrade(request)
            except PilotError as error:
                update_restart(self.dcs, request.moved(FAILED, detail=f"{detail}, but {error}", upgrade_failed=True))
                return
        if update_restart(self.dcs, request.moved(DONE, detail=detail)):
            log.info("rolling restart: %s", detail)

    def _upgrade(self, request: RestartRequest) -> str:
        """mariadb-upgrade on the new server: never after an unclean stop (MariaDB's rule)."""
        if request.stopped_cleanly is not True:
            raise PilotError("mariadbd did not stop cleanly before the upgrade, and mariadb-upgrade is never run "
                             "after an unclean stop: check the node, then run mariadb-upgrade by hand")
        self.memory.activity = "running mariadb-upgrade"
        self.heartbeat()
        lines = run_mariadb_upgrade(self.config, self.credentials, self.heartbeat)
        said = f": {lines.splitlines()[-1]}" if lines else ""
        self.history("upgrade", f"mariadb-upgrade done after the rolling upgrade{said}", {"roll": request.roll})
        return "; mariadb-upgrade done"

    def _transfer(self) -> str:
        """How the node caught up, from what mariadbd logged since the stop (" by IST", " by SST", or "")."""
        if self._log_offset is None:
            return ""
        try:
            with self.config.error_log.open("rb") as handle:
                handle.seek(self._log_offset)
                written = handle.read(4 * 1024 * 1024).decode(errors="replace")
        except OSError:
            return ""
        # The SST scripts run for an IST-only join too (galera-notes: the socat stream) and say which it was:
        # "mariabackup IST completed on joiner" / "rsync SST completed on joiner".
        if "SST completed on joiner" in written:
            return " after a full state transfer (SST)"
        if "IST completed on joiner" in written or "IST received" in written:
            return " by IST"
        return ""

    def note_failure(self, cluster: Cluster, pid: int | None, why: str) -> None:
        """The restart went wrong after the stop: say so in the request (once), with the log's last lines."""
        request = cluster.restarts.get(self.config.name)
        if request is None or not restart_failing(request, pid):
            return
        lines = tail(self.config.error_log, 10)
        detail = why if lines in why else f"{why}\nlast lines of {self.config.error_log}:\n{lines}"
        update_restart(self.dcs, request.moved(FAILED, detail=detail))
