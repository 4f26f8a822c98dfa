"""An arbitrator's TLS: garbd reads its certificate, key and CA only when it starts, and has no reload
(Galera's `socket.ssl_reload` is a provider option of a running mariadbd, which garbd has no way to be
told). So a changed bundle (`pki rotate`, a copy from the operator's host, this agent's own renewal at
two thirds of the certificate's life) is checked first and, when good, garbd is restarted on it: it
leaves the group gracefully, so the others' quorum base shrinks instead of counting a lost vote, and
the next cycle starts it again with the new files. A broken bundle is reported and garbd keeps running
on the old one.
"""

from __future__ import annotations

import logging

from galera_pilot.agent.memory import CYCLE_LOGGER, History
from galera_pilot.agent.tls_keeper import renew_if_due
from galera_pilot.config import NodeConfig
from galera_pilot.errors import ConfigError
from galera_pilot.tls.bundle import bundle_signature
from galera_pilot.tls.node import NodeTls, load_node_tls

log = logging.getLogger(CYCLE_LOGGER)


class ArbitratorTls:
    def __init__(self, config: NodeConfig, current: NodeTls, history: History) -> None:
        self.config = config
        self.current = current
        self.history = history
        self._loaded = bundle_signature(config.tls_bundle)
        self.error: str | None = None  # why a changed bundle is not used
        self._renew_failed_for: str | None = None

    @property
    def not_after(self) -> str:
        return self.current.bundle.facts.not_after.isoformat()

    def changed(self) -> bool:
        """Once per cycle: True when a new, valid bundle is in place and garbd must restart to use it."""
        self._renew_failed_for = renew_if_due(self.config, self.current, self.history, self._renew_failed_for)
        signature = bundle_signature(self.config.tls_bundle)
        if signature == self._loaded:
            return False
        try:
            fresh = load_node_tls(self.config)
        except ConfigError as error:
            message = f"the new TLS bundle is not used, garbd keeps the old certificates: {error}"
            if message != self.error:
                log.error("%s", message)
                self.history("tls", message)
            self.error = message
            return False
        assert fresh is not None
        self._loaded, self.current, self.error = signature, fresh, None
        return True
