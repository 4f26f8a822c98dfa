"""The agent of an arbitrator node (`role: arbitrator`): garbd instead of mariadbd.

A much shorter ladder than a data node's (agent/ha.py): garbd holds no data, so there is nothing to
initialize, recover, transfer or route. Each cycle reads the DCS, looks at garbd (its process and its
log, arbitrator/garbd_log.py), takes one decision (arbitrator/decisions.py), logs it in one sentence and
publishes a report under `arbitrators/<name>`. Stopping the agent stops garbd gracefully: it leaves the
group, and the others' quorum base shrinks by its weight.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from pathlib import Path

from galera_pilot.agent.arbitrator_tls import ArbitratorTls
from galera_pilot.agent.cycle_errors import backoff_delay
from galera_pilot.agent.memory import CYCLE_LOGGER, DcsHistory
from galera_pilot.agent.removal import MemberRemoved, mark_path, refuse_if_marked
from galera_pilot.arbitrator.decisions import ArbitratorAction, ArbitratorDecision, decide_arbitrator
from galera_pilot.arbitrator.garbd import GarbdProcess, log_file, work_dir
from galera_pilot.arbitrator.garbd_log import GarbdLogReader
from galera_pilot.cluster import REMOVED, ArbitratorReport, Cluster
from galera_pilot.config import NodeConfig, load_config
from galera_pilot.dcs import get_dcs
from galera_pilot.dcs.base import DCS
from galera_pilot.dcs.membership import forget_arbitrator, publish_arbitrator, update_removal
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.files import write_private
from galera_pilot.mariadb.gvwstate import read_saved_view
from galera_pilot.tls.bundle import bundle_files
from galera_pilot.tls.node import NodeTls, load_node_tls

log = logging.getLogger(CYCLE_LOGGER)
RESTART_BACKOFF_MAX = 30.0  # s: garbd that cannot reach its peers exits; it is tried again at most this late
REPEAT_LOG_EVERY = 30.0
PEER_PROBE_TIMEOUT = 0.5


class ArbitratorAgent:
    def __init__(self, config: NodeConfig, dcs: DCS, node_tls: NodeTls | None = None) -> None:
        self.config = config
        self.dcs = dcs
        self.garbd = GarbdProcess(config)
        self.garbd_log = GarbdLogReader(log_file(config))
        self.history = DcsHistory(dcs, config.name)
        self.tls = None if node_tls is None else ArbitratorTls(config, node_tls, self.history)
        self.host = socket.gethostname()
        self.activity = "starting"
        self.wake = threading.Event()
        self._expect_running = self.garbd.is_running()  # an earlier agent's garbd is adopted
        self._exits = 0  # consecutive unexpected exits: the restart backoff
        self._retry_at = 0.0
        self._paused = False
        self.left = False
        # The instance garbd's gvwstate.dat saved before this garbd started. garbd rewrites the file as soon
        # as it restores the view, under a new incarnation of its UUID (measured: the clock sequence moves
        # on), while the data nodes' saved views still name the old one: what pc.recovery matches is the
        # file as the crash left it, so it is read only while garbd is down, and kept until it is Primary.
        self._saved_instance = self._read_instance()

    # ---- one cycle --------------------------------------------------------------------------------------
    def run_cycle(self) -> str:
        now = time.monotonic()
        running = self.garbd.is_running()
        if self._expect_running and not running:
            self._expect_running = False
            self._exits += 1
            self._retry_at = now + backoff_delay(self._exits, RESTART_BACKOFF_MAX)
            log.warning("garbd exited unexpectedly: %s", self.garbd_log.look().last_line or "nothing logged")
        view = self.garbd_log.look() if running else self.garbd_log.view
        if running and view.primary:
            self._exits = 0
        cluster = self.dcs.snapshot(with_history=False)
        self._paused = cluster.pause is not None
        # A bundle that changed while garbd was down is simply what it starts with next.
        if not self._paused and self.tls is not None and self.tls.changed() and running:
            self._expect_running = False  # a deliberate stop: no backoff, the next cycle starts it again
            cleanly = self.garbd.stop()
            self.activity = (f"a new TLS bundle (valid until {self.tls.not_after[:10]}): garbd stopped "
                             f"{'cleanly' if cleanly else 'by a kill'} to start again with it")
            self.history("tls", self.activity)
            self.publish()
            return self.activity
        if not running:
            self._saved_instance = self._read_instance()
        elif view.primary:
            self._saved_instance = ""  # in a component again: the live file names it now
        decision = decide_arbitrator(self.config.name, running, view, cluster, max(0.0, self._retry_at - now),
                                     self._saved_instance)
        self.activity = decision.reason
        self._carry_out(decision, cluster)
        self.publish()
        return self.activity

    def _carry_out(self, decision: ArbitratorDecision, cluster: Cluster) -> None:
        if decision.action == ArbitratorAction.START:
            if not any(self._galera_port_answers(peer) for peer in decision.peers):
                # The records of members killed with their agents say Primary until their TTL runs out.
                self.activity = (f"a component is reported at {', '.join(decision.peers)} but no Galera port "
                                 "there answers from here; not starting garbd until one does")
                return
            self.garbd_log.restart()
            pid = self.garbd.start(decision.peers)
            self._expect_running = True
            self.history("start", f"{decision.reason} (garbd pid {pid})")
        elif decision.action == ArbitratorAction.LEAVE:
            self.leave(cluster, decision.reason)

    def leave(self, cluster: Cluster, reason: str) -> None:
        """`galera-pilot remove`: garbd stops gracefully, the folder is marked, the report and the record go."""
        self._expect_running = False
        cleanly = self.garbd.stop()
        record = cluster.removed.get(self.config.name)
        write_private(mark_path(self.config), json.dumps({"member": self.config.name, "by": record.by if record else
                                                          "unknown", "at": time.time()}) + "\n", 0o644)
        detail = (f"garbd stopped {'cleanly' if cleanly else 'by a kill'}; {mark_path(self.config)} keeps the "
                  "arbitrator out")
        self.history("removed", f"{reason}; {detail}")
        forget_arbitrator(self.dcs, self.config.name)
        if record is not None:
            update_removal(self.dcs, record.moved(REMOVED, detail=detail))
        self.left = True
        raise MemberRemoved(f"{self.config.name} was removed from the cluster: {detail}")

    def _galera_port_answers(self, peer: str) -> bool:
        """From this node's own address, as garbd would connect (a partition cuts by address)."""
        host, _, port = peer.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=PEER_PROBE_TIMEOUT,
                                          source_address=(self.config.address, 0)):
                return True
        except (OSError, ValueError):
            return False

    def report(self) -> ArbitratorReport:
        running = self.garbd.is_running()
        view = self.garbd_log.view
        return ArbitratorReport(
            name=self.config.name, address=self.config.advertised_address,
            galera_port=self.config.advertised_port("galera"), host=self.host, weight=self.config.arbitrator.weight,
            running=running, state=(view.state or "starting") if running else "stopped",
            primary=running and view.primary, component_size=view.size if running else 0,
            gcomm_uuid=self._saved_instance or self._read_instance(), activity=self.activity, updated_at=time.time(),
            tls_not_after=self.tls.not_after if self.tls is not None else "",
            tls_warning=(self.tls.error or "") if self.tls is not None else "")

    def _read_instance(self) -> str:
        saved = read_saved_view(work_dir(self.config))
        return saved.my_uuid if saved is not None else ""

    def publish(self) -> None:
        publish_arbitrator(self.dcs, self.report(), self.config.timing.member_ttl)

    def shutdown(self) -> None:
        """garbd leaves the group gracefully, unless the cluster is paused (the next agent adopts it)."""
        if self.left:
            return
        if self._paused:
            log.info("the cluster is paused: leaving garbd running (the next agent adopts it)")
            return
        self._expect_running = False
        self.garbd.stop()
        try:
            forget_arbitrator(self.dcs, self.config.name)
        except PilotError as error:
            log.warning("could not delete the arbitrator's report: %s", error)


def check_arbitrator(config: NodeConfig) -> None:
    """Before anything starts: the binary and, with TLS, the bundle garbd reads (named when missing)."""
    if not Path(config.arbitrator.garbd).is_file():
        raise PilotError(f"garbd not found at {config.arbitrator.garbd} (arbitrator.garbd); install Debian's "
                         "galera-arbitrator-4 (scripts/setup.sh does)")
    if config.tls.enabled:
        load_node_tls(config)  # ConfigError naming the file
        for path in bundle_files(config.tls_bundle):
            if not path.is_file():
                raise PilotError(f"{path} is missing: garbd needs the node's TLS bundle")


def run_arbitrator(config_path: Path) -> None:
    """`galera-pilot agent CONFIG` for `role: arbitrator`: cycles until SIGTERM/SIGINT."""
    config = load_config(config_path)
    refuse_if_marked(config)
    check_arbitrator(config)
    node_tls = load_node_tls(config)
    dcs = get_dcs(config.dcs, config.cluster_name, node_tls.bundle.files() if node_tls else None)
    agent = ArbitratorAgent(config, dcs, node_tls)
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()
        agent.wake.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    log.info("arbitrator agent for %s started (garbd work dir %s)", config.name, work_dir(config))
    last_sentence, last_logged = "", 0.0
    try:
        while not stop.is_set():
            agent.wake.clear()
            try:
                sentence = agent.run_cycle()
            except MemberRemoved:
                raise
            except DCSError as error:  # garbd follows the group without the DCS: nothing to do but wait
                sentence = agent.activity = f"DCS unavailable, taking no decision: {error}"
            except PilotError as error:
                sentence = agent.activity = f"error: {error}"
            except Exception as error:  # a bug: keep supervising garbd, never in a hot loop
                log.exception("unexpected error in the arbitrator's cycle")
                sentence = agent.activity = f"unexpected error in the cycle: {error!r}"
                stop.wait(5.0)
            now = time.monotonic()
            if sentence != last_sentence or now - last_logged >= REPEAT_LOG_EVERY:
                log.info("%s", sentence)
                last_sentence, last_logged = sentence, now
            agent.wake.wait(config.timing.loop_wait)
    finally:
        agent.shutdown()
        dcs.close()
        log.info("arbitrator agent for %s stopped", config.name)

