"""Keeping a running node's TLS current: a new bundle is picked up without a restart, and where the CA
key is at hand (the embedded cluster: `tls.authority`) the agent renews its own certificate at two
thirds of its life.

Every cycle compares the bundle files' (mtime, size) with what was loaded (five stat calls). When they
changed (`pki rotate`, a copy from the operator's host, this agent's renewal), the new bundle is checked
first: a broken one is reported, naming the file, and the old certificates stay in use everywhere.
A good one is installed for mariadbd (run/tls), then Galera reloads it (`socket.ssl_reload=1`), the
server (`FLUSH SSL`), and the agent swaps its own contexts (the REST API's and its clients').

Galera keeps a CA it once loaded trusted until mariadbd restarts (docs/security.md): dropping an old CA
takes a rolling restart, which is the CA rotation's third phase.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from galera_pilot.agent.memory import CYCLE_LOGGER, History
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.errors import ConfigError, PilotError
from galera_pilot.mariadb import sql
from galera_pilot.mariadb.process import MariadbProcess
from galera_pilot.tls.authority import Authority
from galera_pilot.tls.bundle import bundle_signature
from galera_pilot.tls.node import NodeTls, install_server_files, load_node_tls
from galera_pilot.tls.pki import now_utc

log = logging.getLogger(CYCLE_LOGGER)
EXPIRY_WARNING_DAYS = 30


class TlsKeeper:
    def __init__(self, config: NodeConfig, current: NodeTls, credentials: Credentials, process: MariadbProcess,
                 history: History, on_reload: Callable[[NodeTls], None]) -> None:
        self.config = config
        self.current = current
        self.credentials = credentials
        self.process = process
        self.history = history
        self.on_reload = on_reload
        self._loaded = bundle_signature(config.tls_bundle)
        self.reload_error: str | None = None
        self.renew_error: str | None = None
        # What mariadbd itself has loaded (trust, signer): what a CA rotation waits for. A bundle taken by
        # the agent but refused by a running server counts only once that server has restarted.
        self.server_ids = (current.bundle.trust_ids(), current.bundle.signer_id())
        self._unloaded_by: int | None = None  # the pid of the server that did not load the current bundle

    def check(self) -> None:
        """Once per cycle: renew when due and possible, reload when the files changed."""
        if self._unloaded_by is not None and self.process.pid() != self._unloaded_by:
            self._server_took(self.current)  # restarted since: it started with the current files
        self._renew_if_due()
        signature = bundle_signature(self.config.tls_bundle)
        if signature == self._loaded:
            return
        try:
            fresh = load_node_tls(self.config)
        except ConfigError as error:
            message = f"the new TLS bundle is not used, the old certificates stay: {error}"
            if message != self.reload_error:
                log.error("%s", message)
                self.history("tls", message)
            self.reload_error = message
            return
        assert fresh is not None
        self._loaded = signature
        self.reload_error = None
        install_server_files(self.config, fresh)
        reloaded, server_took = self._reload_server()
        self.current = fresh
        self.on_reload(fresh)
        if server_took:
            self._server_took(fresh)
        else:
            self._unloaded_by = self.process.pid()
            self.reload_error = f"mariadbd still uses the previous certificates until it restarts: {reloaded}"
        sentence = (f"loaded a new certificate ({fresh.bundle.facts.subject}, valid until "
                    f"{fresh.bundle.expires():%Y-%m-%d}); {reloaded}")
        log.info("%s", sentence)
        self.history("tls", sentence, {"not_after": fresh.bundle.expires().isoformat()})

    def _server_took(self, tls: NodeTls) -> None:
        self.server_ids = (tls.bundle.trust_ids(), tls.bundle.signer_id())
        self._unloaded_by = None
        if self.reload_error and self.reload_error.startswith("mariadbd still uses"):
            self.reload_error = None

    def _reload_server(self) -> tuple[str, bool]:
        """(what happened, whether the server now uses the new files: also when none runs, since the
        next start installs them)."""
        if not self.process.is_running():
            return "mariadbd takes it at its next start", True
        try:
            connection = sql.connect_socket(self.config, self.credentials, timeout=5.0)
        except Exception as error:
            return f"mariadbd did not answer to reload it ({error}); it takes it at its next start", False
        try:
            with connection.cursor() as cursor:
                cursor.execute("SET GLOBAL wsrep_provider_options = 'socket.ssl_reload=1'")
                cursor.execute("FLUSH SSL")
            return "Galera and the server reloaded it", True
        except Exception as error:
            return f"reloading it in mariadbd failed ({error}); it takes it at its next start", False
        finally:
            connection.close()

    def _renew_if_due(self) -> None:
        self.renew_error = renew_if_due(self.config, self.current, self.history, self.renew_error)

    def report(self) -> dict[str, Any]:
        """/status's `tls`: expiry of the node certificate and the CAs, and whether a reload failed."""
        facts = self.current.bundle.facts
        now = now_utc()
        days_left = facts.remaining(now).total_seconds() / 86400
        return {"enabled": True, "subject": facts.subject, "not_after": facts.not_after.isoformat(),
                "days_left": round(days_left, 1), "renew_due": facts.renew_due(now),
                "warning": (f"the node certificate expires in {days_left:.0f} days" if days_left < EXPIRY_WARNING_DAYS
                            else None),
                "ca_not_after": [ca.not_after.isoformat() for ca in self.current.bundle.ca_facts],
                "trust": list(self.server_ids[0]), "signer": self.server_ids[1],  # what mariadbd has loaded
                "reload_error": self.reload_error}


def renew_if_due(config: NodeConfig, current: NodeTls, history: History, failed_for: str | None) -> str | None:
    """Where the CA key is at hand (`tls.authority`), a new certificate into the node's bundle folder at
    two thirds of the current one's life; the bundle watch then loads it. Returns the certificate a
    renewal failed for (tried once per certificate: the next one may succeed), else `failed_for`."""
    authority_dir = config.tls.authority
    facts = current.bundle.facts
    if authority_dir is None or not facts.renew_due(now_utc()) or failed_for == str(facts.not_after):
        return failed_for
    try:
        Authority(authority_dir).issue_bundle(config.name, facts.ips, facts.dns, out=config.tls_bundle)
    except (PilotError, OSError, ValueError) as error:
        log.error("renewing this node's certificate (valid until %s) failed: %s", facts.not_after, error)
        history("tls", f"renewing the certificate failed: {error}")
        return str(facts.not_after)
    history("tls", f"renewed this node's certificate at two thirds of its life (it was valid until "
            f"{facts.not_after:%Y-%m-%d})")
    return failed_for
