"""`/metrics`: the agent's view in Prometheus' text format.

One `CollectorRegistry` per agent (never the process-global one: tests and embedders may run several
agents in one process). Values are read at scrape time from the observer's last look, the writer
keeper and what the agent's rooms keep (disk, exits, TLS), so a scrape never queries mariadbd or the DCS.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from galera_pilot.agent.backup_schedule import KINDS
from galera_pilot.agent.exits import CRASH_LOOP_COUNT, CRASH_LOOP_WINDOW
from galera_pilot.agent.verdicts import verdicts
from galera_pilot.routing.health import LiveStatus

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


# The routing judgements (verdicts.py) -> (metric name, help)
VERDICT_GAUGES = {
    "health": ("galera_pilot_health", "1 if /health answers 200"),
    "read": ("galera_pilot_read", "1 if /read answers 200"),
    "writer": ("galera_pilot_writer", "1 if /writer answers 200 (this node is the writer)"),
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
        yield from wsrep_metrics(name, live)
        judged = verdicts(ha)
        for key, (metric, text) in VERDICT_GAUGES.items():
            family = GaugeMetricFamily(metric, text, labels=labels)
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
        yield crash_loop_metric(name, ha.exits.crash_loop)
        exits = CounterMetricFamily("galera_pilot_mariadbd_unexpected_exits", "times mariadbd exited while the agent "
                                    "expected it to run (since the agent started; none while paused)", labels=labels)
        exits.add_metric([name], float(ha.exits.unexpected_exits))
        yield exits
        if ha.roster_members:
            roster = GaugeMetricFamily("galera_pilot_roster_members", "members the DCS roster lists (this one "
                                       "included, removed ones not) and the arbitrators that report: what "
                                       "wsrep_cluster_size should be", labels=labels)
            roster.add_metric([name], float(ha.roster_members))
            yield roster
        yield from disk_metrics(ha)
        yield from backup_metrics(ha)


def wsrep_metrics(name: str, live: LiveStatus) -> Iterator[Metric]:
    """What the observer's last look at mariadbd said (nothing of what it did not say: stopped, hung)."""
    for key, (metric, text) in WSREP_GAUGES.items():
        if key in live.status:
            family = GaugeMetricFamily(metric, text, labels=["member"])
            family.add_metric([name], live.number(key))
            yield family
    primary = GaugeMetricFamily("galera_pilot_wsrep_primary", "1 if in the Primary Component", labels=["member"])
    primary.add_metric([name], 1.0 if live.cluster_status == "Primary" else 0.0)
    yield primary
    if "wsrep_flow_control_paused_ns" in live.status:
        paused = CounterMetricFamily("galera_pilot_wsrep_flow_control_paused_seconds", "time replication was "
                                     "paused by flow control since mariadbd started", labels=["member"])
        paused.add_metric([name], live.number("wsrep_flow_control_paused_ns") / 1e9)
        yield paused
    uuid = live.status.get("wsrep_cluster_state_uuid", "")
    if uuid:
        # Info-style (the value is always 1): the alert compares the label across the nodes of a cluster.
        info = GaugeMetricFamily("galera_pilot_wsrep_cluster_state_uuid_info",
                                 "1, with the cluster state UUID mariadbd reports (wsrep_cluster_state_uuid) "
                                 "as label uuid", labels=["member", "uuid"])
        info.add_metric([name, uuid], 1.0)
        yield info


def crash_loop_metric(name: str, crash_loop: str | None) -> Metric:
    """The agent's crash-loop halt (exits.py): sticky until the agent is restarted."""
    family = GaugeMetricFamily("galera_pilot_crash_loop", "1 when the agent halted because mariadbd exited "
                               f"unexpectedly {CRASH_LOOP_COUNT} times within {CRASH_LOOP_WINDOW:.0f} s (it "
                               "starts it again only once the agent is restarted)", labels=["member"])
    family.add_metric([name], 0.0 if crash_loop is None else 1.0)
    return family


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


def backup_metrics(ha: Ha) -> Iterator[Metric]:
    """The repository as this agent's last listing saw it (agent/backup_schedule.py), per kind; an age of
    +Inf for a kind with no complete set, so "no backup at all" compares as too old. Nothing without a
    repository."""
    keeper = ha.backups
    name = ha.config.name
    running = GaugeMetricFamily("galera_pilot_backup_running", "1 while this agent takes a backup",
                                labels=["member"])
    running.add_metric([name], 1.0 if keeper.running else 0.0)
    yield running
    yield from archive_metrics(ha)
    newest = keeper.schedule.newest
    if newest is None:
        return
    now = time.time()
    labels = ["member", "kind"]
    age = GaugeMetricFamily("galera_pilot_backup_last_success_age_seconds", "seconds since the newest "
                            "complete backup of this kind finished (+Inf: none)", labels=labels)
    size = GaugeMetricFamily("galera_pilot_backup_last_success_bytes", "stored size of the newest complete "
                             "backup of this kind", labels=labels)
    for kind in KINDS:
        finished = newest.finished_at.get(kind)
        age.add_metric([name, kind], max(0.0, now - finished) if finished is not None else float("inf"))
        size.add_metric([name, kind], float(newest.size_bytes.get(kind, 0)))
    yield age
    yield size
    error = GaugeMetricFamily("galera_pilot_backup_repository_error", "1 when the agent's last listing of "
                              "the backup repository failed", labels=["member"])
    error.add_metric([name], 1.0 if newest.error else 0.0)
    yield error
    interval = keeper.schedule.interval
    if interval:
        family = GaugeMetricFamily("galera_pilot_backup_schedule_interval_seconds", "the shortest interval "
                                   "of the backup schedule (full or incremental)", labels=["member"])
        family.add_metric([name], interval)
        yield family


def archive_metrics(ha: Ha) -> Iterator[Metric]:
    """The binlog archive, from the archiver (the one agent holding its lease; nothing on the others): its
    lag (seconds since the archive last held every transaction its node had: about the interval under
    writes, small without) and the gaps it found."""
    state = ha.backups.archiver.state
    if not state.archiving:
        return
    name = ha.config.name
    lag = GaugeMetricFamily("galera_pilot_binlog_archive_lag_seconds", "seconds since the archive last held "
                            "every transaction of the archiver's node (+Inf: not yet)", labels=["member"])
    lag.add_metric([name], max(0.0, time.time() - state.caught_up_at) if state.caught_up_at is not None
                   else float("inf"))
    yield lag
    gaps = GaugeMetricFamily("galera_pilot_binlog_archive_gaps", "runs of GTID seqnos after the oldest "
                             "backup that no archived binlog holds", labels=["member"])
    gaps.add_metric([name], float(len(state.gaps)))
    yield gaps
    error = GaugeMetricFamily("galera_pilot_binlog_archive_error", "1 when the archiver's last pass failed",
                              labels=["member"])
    error.add_metric([name], 1.0 if state.error else 0.0)
    yield error


def agent_registry(ha: Ha) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(ha))
    return registry


def render_metrics(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST
