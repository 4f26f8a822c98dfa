"""`/metrics`: the agent's view in Prometheus' text format.

One `CollectorRegistry` per agent (never the process-global one: tests and embedders may run several
agents in one process). Values are read at scrape time from the observer's last look and the writer
keeper, so a scrape never queries mariadbd either.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from galera_pilot.ha import Ha

# wsrep status -> (metric name, help)
WSREP_GAUGES = {
    "wsrep_local_state": ("galera_pilot_wsrep_local_state", "wsrep_local_state (4 = Synced, 2 = Donor/Desynced, ...)"),
    "wsrep_cluster_size": ("galera_pilot_wsrep_cluster_size", "members in this node's component"),
    "wsrep_flow_control_paused": ("galera_pilot_wsrep_flow_control_paused",
                                  "fraction of time replication was paused by flow control since the last FLUSH"),
    "wsrep_local_recv_queue": ("galera_pilot_wsrep_local_recv_queue", "write-sets waiting to be applied"),
    "wsrep_local_send_queue": ("galera_pilot_wsrep_local_send_queue", "write-sets waiting to be sent"),
    "wsrep_last_committed": ("galera_pilot_wsrep_last_committed", "seqno of the last committed write-set"),
}


class AgentCollector(Collector):
    def __init__(self, ha: Ha) -> None:
        self.ha = ha

    def collect(self) -> Iterator[Metric]:
        from galera_pilot.api import verdicts  # api imports this module

        ha = self.ha
        live = ha.observer.latest()
        now = time.monotonic()
        labels = ["member"]
        name = ha.config.name
        for key, (metric, text) in WSREP_GAUGES.items():
            if key in live.status:
                family = GaugeMetricFamily(metric, text, labels=labels)
                family.add_metric([name], live.number(key))
                yield family
        primary = GaugeMetricFamily("galera_pilot_wsrep_primary", "1 if in the Primary Component", labels=labels)
        primary.add_metric([name], 1.0 if live.cluster_status == "Primary" else 0.0)
        yield primary
        judged = verdicts(ha)
        for key, text in (("health", "1 if /health answers 200"), ("read", "1 if /read answers 200"),
                          ("writer", "1 if /writer answers 200 (this node is the writer)")):
            family = GaugeMetricFamily(f"galera_pilot_{key}", text, labels=labels)
            family.add_metric([name], 1.0 if judged[key].ok else 0.0)
            yield family
        maintenance = GaugeMetricFamily("galera_pilot_maintenance", "1 if drained", labels=labels)
        maintenance.add_metric([name], 1.0 if ha.writer.maintenance else 0.0)
        yield maintenance
        age = GaugeMetricFamily("galera_pilot_observation_age_seconds", "age of the last look at mariadbd",
                                labels=labels)
        age.add_metric([name], live.age(now) if live.at else float("inf"))
        yield age
        skew = ha.writer.clock_skew
        if skew is not None:
            family = GaugeMetricFamily("galera_pilot_clock_skew_seconds",
                                       "this host's clock minus the other members' (from their DCS records)",
                                       labels=labels)
            family.add_metric([name], skew)
            yield family
        cycle = GaugeMetricFamily("galera_pilot_agent_cycle_seconds", "duration of the last agent cycle",
                                  labels=labels)
        cycle.add_metric([name], ha.last_cycle_seconds)
        yield cycle


def agent_registry(ha: Ha) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(ha))
    return registry


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
