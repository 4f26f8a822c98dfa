"""Fast eviction: ask the survivors to drop this node's dead instance from the view, then clean up.

Without it the survivors keep the dead instance in the view and stall writes for evs.suspect_timeout
(5.9 s measured). The peers' addresses come from the DCS; without the DCS they evict by timeout.
"""

from __future__ import annotations

import logging
import threading
import time

from galera_pilot.agent.memory import CYCLE_LOGGER, AgentMemory, History
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import DCSError
from galera_pilot.mariadb import sql

log = logging.getLogger(CYCLE_LOGGER)


class Eviction:
    """Evicts the dead instance once per exit (`evict_dead_instance`, from whichever thread notices the
    exit first), and clears the evict lists once the restarted node is Synced (`clear`)."""

    def __init__(self, config: NodeConfig, dcs: DCS, credentials: Credentials, memory: AgentMemory,
                 history: History) -> None:
        self.config = config
        self.dcs = dcs
        self.credentials = credentials
        self.memory = memory
        self.history = history
        self.evicted: str | None = None  # the dead instance the peers were told to evict, until cleared
        self._lock = threading.Lock()

    def evict_dead_instance(self) -> None:
        """Once per exit, from whichever thread notices it first."""
        if not self.config.fast_eviction:
            return
        with self._lock:
            if self.memory.exit_handled:
                return
            self.memory.exit_handled = True
            dead_instance = self.memory.gcomm_uuid
            if not dead_instance:
                log.warning("mariadbd died before its gcomm UUID was known; the survivors evict it by timeout")
            elif self.evicted != dead_instance:
                try:
                    self._evict(dead_instance)
                except DCSError as error:
                    # The peers' addresses come from the DCS: without it the survivors evict by timeout.
                    log.warning("cannot ask the peers to evict %s, the DCS is unavailable: %s", dead_instance, error)

    def _peer_sql(self, statement: str, args: tuple = (), only_first: bool = True) -> list[str]:
        """Run a statement on live Primary peers over TCP as the admin user; names of those that took it."""
        done: list[str] = []
        for peer in self.dcs.snapshot().primary_members:
            if peer.name == self.config.name:
                continue
            try:
                connection = sql.connect_tcp(peer.address, peer.client_port, self.credentials, timeout=1.0)
                try:
                    with connection.cursor() as cursor:
                        cursor.execute(statement, args)
                finally:
                    connection.close()
            except Exception as error:
                log.warning("%s on %s failed: %s", statement.split("=")[0], peer.name, error)
                continue
            done.append(peer.name)
            if only_first:
                break
        return done

    def _evict(self, gcomm_uuid: str) -> None:
        """Fast eviction: without it the survivors keep the dead instance in the view and stall writes for
        evs.suspect_timeout (5.9 s measured). Every survivor is told, not just one: a survivor that has not
        heard of the eviction holds the new view's consensus back until its next join retransmission."""
        done = self._peer_sql("SET GLOBAL wsrep_provider_options = %s", (f"evs.evict={gcomm_uuid}",),
                              only_first=False)
        if done:
            self.evicted = gcomm_uuid
            self.history("evict", f"mariadbd died; {', '.join(done)} evicted its old instance {gcomm_uuid} "
                         "from the view", {"gcomm_uuid": gcomm_uuid, "evicted_by": done})
            log.info("asked %s to evict this node's dead instance %s", ", ".join(done), gcomm_uuid)
            if self._await_view_shrink(done[0]):
                # Once the view has dropped the dead instance the evict list has done its job; left in
                # place, it slowed the restarted node's own join (0.5-1.8 s of stalled writes, measured).
                self._peer_sql("SET GLOBAL wsrep_provider_options = %s", ("evs.evict=",), only_first=False)

    def _await_view_shrink(self, peer_name: str, timeout: float = 2.0) -> bool:
        """Wait until peer's Primary Component is smaller than the DCS last saw it (the eviction's view)."""
        peer = next((m for m in self.dcs.snapshot().primary_members if m.name == peer_name), None)
        if peer is None:
            return False
        deadline = time.monotonic() + timeout
        try:
            connection = sql.connect_tcp(peer.address, peer.client_port, self.credentials, timeout=1.0)
        except Exception:
            return False
        try:
            while time.monotonic() < deadline:
                if int(sql.wsrep_status(connection).get("wsrep_cluster_size", 0)) < peer.cluster_size:
                    return True
                time.sleep(0.02)
        except Exception as error:
            log.warning("watching %s's view after the eviction failed: %s", peer_name, error)
        finally:
            connection.close()
        return False

    def clear(self) -> None:
        """The restarted node has a new gcomm UUID; clear the old one from every member's evict list."""
        self._peer_sql("SET GLOBAL wsrep_provider_options = %s", ("evs.evict=",), only_first=False)
        connection = None
        try:
            connection = sql.connect_socket(self.config, self.credentials, timeout=1.0)
            with connection.cursor() as cursor:
                cursor.execute("SET GLOBAL wsrep_provider_options = %s", ("evs.evict=",))
        except Exception as error:
            log.warning("clearing the local evict list failed: %s", error)
        finally:
            if connection is not None:
                connection.close()
        self.evicted = None
