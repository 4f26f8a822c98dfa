"""Three agents started at the same instant on a fresh folder create exactly one cluster, every time: one
initializer, whose seed run is the only `--wsrep-new-cluster` start; the first component is then formed
from the seed by pc.recovery (or, if no other node could take part, bootstrapped by the initializer)."""

from __future__ import annotations

import subprocess

from galera_pilot.embedded.cluster import EmbeddedCluster

from .conftest import destroy, new_cluster_path

RUNS = 5
BOOTSTRAP_LINE = "Bootstrapping a new cluster"


def test_simultaneous_agents_bootstrap_exactly_one_node() -> None:
    for run in range(RUNS):
        directory = new_cluster_path()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            cluster = EmbeddedCluster.layout(directory, 3, "127.0.0.20", "mariabackup")
            cluster.ensure_tls([])  # what `up` does first: the folder's PKI and every node's bundle
            # Spawned back to back (microseconds apart; each agent needs ~0.5 s just to import).
            procs = [cluster.spawn_agent(node) for node in cluster.nodes()]
            cluster.wait_synced(timeout=300)
            snapshot = cluster.snapshot()  # with the history (wait_synced's own reads leave it out)
            uuids = {m.cluster_uuid for m in snapshot.members.values()}
            assert len(uuids) == 1, f"run {run}: members disagree on the cluster: {uuids}"
            actions = [e.action for e in snapshot.history]
            initializers = {e.member for e in snapshot.history if e.action == "initialize"}
            assert len(initializers) == 1, f"run {run}: more than one initializer: {actions}"
            # Once (seen in CI under two lanes' load: the initializer's first attempt failed and it tried
            # again): a retry is the same member's, after a failure the history names.
            failures = [e.reason for e in snapshot.history if e.action == "initialize-failed"]
            assert actions.count("initialize") == 1 + len(failures), f"run {run}: {actions}"
            if failures:
                print(f"run {run}: the initializer tried again after: {failures}")
            formed = {e.member for e in snapshot.history if e.action == "form"}
            assert (actions.count("bootstrap"), bool(formed)) in ((1, False), (0, True)), f"run {run}: {actions}"
            assert not formed or len(formed) == actions.count("form"), f"run {run}: a node formed twice: {actions}"
            bootstrapped = [n.name for n in cluster.nodes()
                            if BOOTSTRAP_LINE in n.config.error_log.read_text(errors="replace")]
            initializer = next(e.member for e in snapshot.history if e.action == "initialize")
            assert bootstrapped == [initializer], f"run {run}: bootstrapped {bootstrapped}, initializer {initializer}"
        finally:
            destroy(directory)
            for proc in procs:
                proc.wait(10)
