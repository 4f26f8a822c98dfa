"""`galera-pilot agent CONFIG`: run one node's agent in the foreground (what systemd or `up` starts)."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from pathlib import Path

from galera_pilot.agent.api import ApiServer
from galera_pilot.agent.arbitrator import run_arbitrator
from galera_pilot.agent.ha import Ha
from galera_pilot.agent.removal import MemberRemoved, refuse_if_marked
from galera_pilot.config import load_config
from galera_pilot.credentials import load_credentials
from galera_pilot.dcs import get_dcs
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.tls import http
from galera_pilot.tls.node import NodeTls, load_node_tls

log = logging.getLogger("galera_pilot.agent.run")
REPEAT_LOG_EVERY = 30.0


def run_agent(config_path: Path) -> None:
    config = load_config(config_path)
    if config.role == "arbitrator":  # garbd, not mariadbd: agent/arbitrator.py
        run_arbitrator(config_path)
        return
    refuse_if_marked(config)  # a member taken out by `galera-pilot remove` never comes back by itself
    credentials = load_credentials(config.credentials_file)
    node_tls = load_node_tls(config)  # checked before anything starts: a bad file is named now
    api: ApiServer | None = None

    def tls_reloaded(fresh: NodeTls) -> None:
        """A (new) bundle (agent/tls_keeper.py): every later connection uses it; open ones finish on the old."""
        http.use_for_process(fresh.client, fresh.token)
        if api is not None:
            api.tls, api.token = fresh.server, fresh.token

    if node_tls is not None:
        tls_reloaded(node_tls)
    dcs = get_dcs(config.dcs, config.cluster_name, node_tls.bundle.files() if node_tls else None)

    ha = Ha(config, dcs, credentials, node_tls=node_tls, on_tls_reload=tls_reloaded, config_path=config_path)
    api = ApiServer(config.address, config.ports.api, ha, node_tls.server if node_tls else None,
                    node_tls.token if node_tls else None)
    ha.start_background()
    api.start()
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()
        ha.wake.set()

    def _on_hangup(_signum: int, _frame: object) -> None:
        # What `galera-pilot reload` asks over the REST API, for a person on the host (systemctl reload).
        threading.Thread(target=reload_and_log, args=(ha,), name="reload", daemon=True).start()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, _on_hangup)
    log.info("agent for %s started (pid file %s, API %s)", config.name, config.pid_file, config.api_url)
    try:
        supervise(ha, stop)
    finally:
        ha.shutdown()
        api.shutdown()
        dcs.close()
        log.info("agent for %s stopped", config.name)


def reload_and_log(ha: Ha) -> None:
    """SIGHUP: there is nobody to answer, so a refusal goes to the log."""
    try:
        ha.reload_config()
    except PilotError as error:
        log.warning("reload refused: %s", error)


def supervise(ha: Ha, stop: threading.Event) -> None:
    """Run cycles until `stop` is set: one sentence each, logged when it changes."""
    last_sentence, last_logged = "", 0.0
    errors = ha.cycle_errors
    while not stop.is_set():
        ha.wake.clear()
        waiting = errors.remaining(time.monotonic())
        if waiting > 0:
            # Backing off after an unexpected error: keep the heartbeat (the member record, with the
            # error as its activity, must not expire) but do not run the cycle before its time.
            with contextlib.suppress(Exception):
                ha.publish()
            ha.wake.wait(min(waiting, ha.config.timing.loop_wait))
            continue
        try:
            sentence = ha.run_cycle()
            errors.succeeded()
        except MemberRemoved as removed:
            log.info("%s; the agent stops", removed)
            raise
        except DCSError as error:
            # Nothing irreversible happens without the DCS: mariadbd keeps running as it is (Galera needs
            # no DCS to replicate), and /status tells why the agent is idle.
            sentence = f"DCS unavailable, taking no decision: {error}"
            ha.activity = sentence
        except PilotError as error:
            sentence = f"error: {error}"
            ha.activity = sentence
        except Exception as error:  # a bug: keep supervising, retry with a backoff, never in a hot loop
            failure = errors.failed(error, time.monotonic())
            sentence = failure.sentence
            ha.activity = sentence
            if failure.with_traceback:
                log.exception("%s", sentence)
            else:
                log.error("%s", sentence)
            last_sentence, last_logged = sentence, time.monotonic()
            with contextlib.suppress(Exception):
                ha.publish()
            continue
        # One sentence per cycle; repeats are folded so a calm node does not flood its log.
        now = time.monotonic()
        if sentence != last_sentence or now - last_logged >= REPEAT_LOG_EVERY:
            log.info("%s", sentence)
            last_sentence, last_logged = sentence, now
        ha.wake.wait(ha.next_wait())
