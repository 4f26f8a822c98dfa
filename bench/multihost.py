"""Full-outage recovery and the write stall when a node dies, on three hosts (network namespaces on a
bridge, a 3-member etcd, one agent + mariadbd per namespace: tests/multihost/harness.py), so the figures
include etcd's leases and transactions and real per-host addresses. Compare with full_outage.py and
write_stall.py (one machine, SQLite).

    sudo .venv/bin/python bench/multihost.py [--runs 3]

full outage: every agent and every mariadbd get SIGKILL (power loss), with writes between the mariadbd
kills so that seqnos differ; then every agent starts again; the figure is the time until every node is
Synced in a 3-node Primary Component and a write on node3 succeeded.
write stall: a client commits single-row INSERTs on node2 in a loop; the mariadbd of node1 or node3 (in
turn: five kills of one node within 300 s would be a crash loop, which the agent halts on) gets SIGKILL;
the figure is the longest gap between two acknowledged commits, until the victim is back and Synced.
writer failover: the managed HAProxy runs on the "proxy host" (the root namespace, 10.77.0.1:3306/3307,
membership from etcd); a client inserts ids through its writer endpoint; the writer's mariadbd gets
SIGKILL; the figure is the time from the kill to the first acknowledged write after the client's first
error (an ack just after the kill may be the dead server's last), and every acknowledged id
must then be on every node. It runs twice: with the agents' DCS watch (the default) and, as the baseline,
with `timing.watch: false` (polls only), alternately; the ratio is watch / polls.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.multihost

from galera_pilot.mariadb import sql
from tests.integration.routing_helpers import AckWriter
from tests.multihost.harness import BRIDGE_ADDRESS, MultiHost, cleanup_leftovers, wait_for


def execute(multi: MultiHost, node: str, statement: str) -> list[tuple]:
    connection = sql.connect_tcp(multi.host(node).address, 3306, multi.credentials(), timeout=2.0)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
            return list(cursor.fetchall())
    finally:
        connection.close()


def kill_pid_file(path: Path) -> None:
    pid = int(path.read_text())
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(pid), 10, f"pid {pid} to die", interval=0.01)


def full_outage(multi: MultiHost) -> float:
    for host in multi.hosts:
        proc = multi.agents.pop(host.node)
        proc.kill()
        proc.wait()
    for victim in ("node3", "node2", "node1"):
        for host in multi.hosts:
            with contextlib.suppress(Exception):  # that node is already gone or non-Primary
                execute(multi, host.node, f"INSERT INTO b.t (node) VALUES ('{host.node}')")
        kill_pid_file(multi.host(victim).dir / "node" / "run" / "mariadbd.pid")
    started = time.monotonic()
    for host in multi.hosts:
        multi.start_agent(host)
    wait_for(multi.all_synced, 300, "all Synced after the outage", interval=0.05)
    wait_for(lambda: execute(multi, "node3", "INSERT INTO b.t (node) VALUES ('after')") == [], 60,
             "a write on node3", interval=0.05)
    return time.monotonic() - started


def write_stall(multi: MultiHost, victim: str) -> float:
    stamps: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        connection = None
        while not stop.is_set():
            try:
                if connection is None:
                    connection = sql.connect_tcp(multi.host("node2").address, 3306, multi.credentials(), timeout=2.0)
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO b.t (node) VALUES ('stall')")
                stamps.append(time.monotonic())
            except Exception:
                connection = None
                time.sleep(0.01)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    wait_for(lambda: len(stamps) > 50, 30, "the writer to run")
    kill_pid_file(multi.host(victim).dir / "node" / "run" / "mariadbd.pid")
    time.sleep(1)
    wait_for(multi.all_synced, 300, f"{victim} to be back", interval=0.1)
    time.sleep(1)
    stop.set()
    thread.join(10)
    return max(b - a for a, b in itertools.pairwise(stamps))


def start_proxy(multi: MultiHost) -> subprocess.Popen[bytes]:
    """The managed HAProxy on the proxy host (the root namespace), as docs/deployment.md sets it up."""
    config = multi.root / "proxy.yaml"
    config.write_text(yaml.safe_dump({
        "cluster_name": multi.cluster_name, "dcs": multi.dcs_url, "run_dir": str(multi.root / "proxy"),
        "writer_bind": f"{BRIDGE_ADDRESS}:3306", "reader_bind": f"{BRIDGE_ADDRESS}:3307"}))
    log = open(multi.root / "proxy.log", "ab")  # noqa: SIM115 - the proxy keeps it open
    return subprocess.Popen([sys.executable, "-m", "galera_pilot", "proxy", "-c", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def set_watch(multi: MultiHost, on: bool) -> None:
    """Rewrite every agent's `timing.watch` and restart the agents (kill -9: each adopts its running
    mariadbd, so the cluster keeps serving)."""
    for host in multi.hosts:
        config = yaml.safe_load(host.config_path.read_text())
        config.setdefault("timing", {})["watch"] = on
        host.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        proc = multi.agents.pop(host.node)
        proc.kill()
        proc.wait()
        multi.start_agent(host)
    wait_for(lambda: multi.all_synced() and multi.snapshot().writer is not None, 120, "agents back with a writer")


def writer_failover(multi: MultiHost, first_id: int) -> tuple[float, int]:
    """One failover; (seconds from the kill to the next acknowledged write, next free id)."""
    wait_for(lambda: multi.all_synced() and multi.snapshot().writer is not None, 180, "all Synced with a writer")
    credentials = multi.credentials()
    client = AckWriter(BRIDGE_ADDRESS, 3306, credentials.admin_user, credentials.admin_password, "b.acks",
                       first_id=first_id).start()
    try:
        wait_for(lambda: len(client.acked) > 100, 60, "the client to write through the proxy")
        # The victim is the node the client writes to, once that is the writer the DCS names (right after
        # the agents' restart the role may still move).
        writer = str(wait_for(lambda: client.reached[-1] if client.reached[-1] == multi.snapshot().writer else None,
                              60, "the client to write to the DCS's writer"))
        killed = time.monotonic()
        kill_pid_file(multi.host(writer).dir / "node" / "run" / "mariadbd.pid")
        first = wait_for(lambda: client.back_after(killed), 60, "the next acknowledged write", interval=0.01)
        count = len(client.acked)
        wait_for(lambda: len(client.acked) > count + 100, 60, "writes to go on")
    finally:
        client.stop()
    wait_for(multi.all_synced, 300, f"{writer} to be back", interval=0.1)
    for host in multi.hosts:
        present = {int(row[0]) for row in execute(multi, host.node, f"SELECT id FROM b.acks WHERE id >= {first_id}")}
        missing = set(client.acked) - present
        assert not missing, f"{len(missing)} acknowledged ids missing on {host.node}"
    figure = float(first) - killed  # type: ignore[arg-type]
    if figure > 3.0:  # an outlier: keep what tells why (the harness removes its folder at the end)
        kept = Path(tempfile.mkdtemp(prefix="gp-bench-outlier-"))
        for host in multi.hosts:
            for name in ("agent.log", "mariadbd.err"):
                with contextlib.suppress(OSError):
                    shutil.copy(host.dir / "node" / "log" / name, kept / f"{host.node}-{name}")
        with contextlib.suppress(OSError):
            shutil.copy(multi.root / "proxy.log", kept / "proxy.log")
        print(f"  outlier ({writer} killed): logs kept in {kept}", flush=True)
    return figure, max(client.acked, default=first_id) + 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only-failover", action="store_true", help="skip the full outage and write stall runs")
    args = parser.parse_args()
    assert os.geteuid() == 0, "run as root (network namespaces)"
    cleanup_leftovers()
    multi = MultiHost(3, cluster_name="bench")
    try:
        multi.create_network()
        multi.start_etcd()
        multi.write_configs()
        started = time.monotonic()
        for host in multi.hosts:
            multi.start_agent(host)
        wait_for(multi.all_synced, 300, "the first start")
        print(f"cold start (rsync SST to two joiners): {time.monotonic() - started:.2f} s", flush=True)
        execute(multi, "node1", "CREATE DATABASE b")
        execute(multi, "node1", "CREATE TABLE b.t (id INT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(8))")
        outages: list[float] = []
        for run in range(0 if args.only_failover else args.runs):
            outages.append(full_outage(multi))
            print(f"full outage run {run + 1}: {outages[-1]:.2f} s", flush=True)
        stalls: list[float] = []
        for run in range(0 if args.only_failover else args.runs):
            stalls.append(write_stall(multi, ("node1", "node3")[run % 2]))
            print(f"write stall run {run + 1}: {stalls[-1]:.2f} s", flush=True)
        execute(multi, "node1", "CREATE TABLE b.acks (id INT PRIMARY KEY)")
        proxy = start_proxy(multi)
        failovers: dict[str, list[float]] = {"watch": [], "polls": []}
        next_id = 1
        try:
            for run in range(args.runs):  # alternated, so a change in the machine's load hits both alike
                for label, watch in (("watch", True), ("polls", False)):
                    set_watch(multi, watch)
                    figure, next_id = writer_failover(multi, next_id)
                    failovers[label].append(figure)
                    print(f"writer failover ({label}) run {run + 1}: {figure:.3f} s", flush=True)
        finally:
            proxy.terminate()
            proxy.wait(30)
        if outages and stalls:
            print(f"full outage median {statistics.median(outages):.2f} s "
                  f"({', '.join(f'{t:.2f}' for t in outages)})")
            print(f"write stall median {statistics.median(stalls):.2f} s ({', '.join(f'{t:.2f}' for t in stalls)})")
        for label, figures in failovers.items():
            print(f"writer failover ({label}) median {statistics.median(figures):.3f} s "
                  f"({', '.join(f'{t:.3f}' for t in figures)}); every acknowledged id on every node")
        ratio = statistics.median(failovers["watch"]) / statistics.median(failovers["polls"])
        print(f"writer failover ratio watch / polls: {ratio:.2f}")
    finally:
        multi.close()


if __name__ == "__main__":
    main()
