"""This node's three routing judgements right now (health, read, writer), from the observer's last look
and the writer keeper's lease: what /health, /read, /writer, /status and /metrics all answer from."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from galera_pilot.routing.health import Verdict, health, is_writer, may_read

if TYPE_CHECKING:
    from galera_pilot.agent.ha import Ha


def verdicts(ha: Ha, max_queue: int | None = None) -> dict[str, Verdict]:
    """The three judgements for this node, right now, from the last observation."""
    live = ha.observer.latest()
    now = time.monotonic()
    maintenance = ha.writer.maintenance
    return {
        "health": health(live, now),
        "read": may_read(live, now, maintenance, ha.config.donor_reads, max_queue),
        "writer": is_writer(live, now, maintenance, ha.writer.claim_until()),
    }
