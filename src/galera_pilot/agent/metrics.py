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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from galera_pilot.agent.verdicts import verdicts

if TYPE_CHECKING:
    from galera_pilot.agent.ha import Ha

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
        if ha.tls is not None:
            expiry = GaugeMetricFamily("galera_pilot_tls_certificate_expiry_timestamp_seconds",
                                       "when a certificate this node uses expires (unix time)",
                                       labels=["member", "certificate"])
            bundle = ha.tls.current.bundle
            expiry.add_metric([name, "node"], bundle.facts.not_after.timestamp())
            for index, ca in enumerate(bundle.ca_facts):
                expiry.add_metric([name, "ca" if index == 0 else f"ca{index + 1}"], ca.not_after.timestamp())
            yield expiry
            reload_failed = GaugeMetricFamily("galera_pilot_tls_reload_failed",
                                              "1 while a changed bundle was refused (the old certificates stay)",
                                              labels=labels)
            reload_failed.add_metric([name], 1.0 if ha.tls.reload_error else 0.0)
            yield reload_failed
        errors = CounterMetricFamily("galera_pilot_agent_cycle_errors", "unexpected errors in the agent cycle "
                                     "(each retried after a backoff)", labels=labels)
        errors.add_metric([name], float(ha.cycle_errors.total))
        yield errors
        callbacks = CounterMetricFamily("galera_pilot_callbacks", "user callbacks run, by action and outcome "
                                        "(ok, failed, timeout, dropped)", labels=[*labels, "action", "outcome"])
        for (action, outcome), count in sorted(ha.events.runner.outcomes().items()):
            callbacks.add_metric([name, action, outcome], float(count))
        yield callbacks
        yield from disk_metrics(ha)


DISK_GAUGES = (
    ("galera_pilot_disk_free_bytes", "bytes available to mariadbd on the filesystem", "free_bytes"),
    ("galera_pilot_disk_size_bytes", "size of the filesystem", "total_bytes"),
    ("galera_pilot_disk_free_inodes", "inodes available on the filesystem", "free_inodes"),
    ("galera_pilot_disk_inodes", "inodes of the filesystem (0: not fixed)", "total_inodes"),
)


def disk_metrics(ha: Ha) -> Iterator[Metric]:
    """Per location (data, log, base): what the agent measured in its last cycle (disk_guard.py)."""
    name = ha.config.name
    usages, warnings = ha.disk.usages(), ha.disk.warnings()
    labels = ["member", "location", "path"]
    for metric, text, attribute in DISK_GAUGES:
        family = GaugeMetricFamily(metric, text, labels=labels)
        for location, usage in sorted(usages.items()):
            family.add_metric([name, location, usage.path], float(getattr(usage, attribute)))
        yield family
    low = GaugeMetricFamily("galera_pilot_disk_low", "1 when the filesystem is under a warning threshold "
                            "(disk.warn_free_percent, warn_free_mb, warn_free_inodes_percent)", labels=labels)
    for location, usage in sorted(usages.items()):
        low.add_metric([name, location, usage.path], 1.0 if location in warnings else 0.0)
    yield low
    full = GaugeMetricFamily("galera_pilot_disk_full", "1 when the agent does not start mariadbd for lack of "
                             "disk space on the datadir's filesystem", labels=["member"])
    full.add_metric([name], 1.0 if ha.disk.refusal else 0.0)
    yield full


def agent_registry(ha: Ha) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(ha))
    return registry


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
