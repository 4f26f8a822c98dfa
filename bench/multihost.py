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
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import signal
import statistics
import sys
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.multihost

from galera_pilot.mariadb import sql
from tests.multihost.harness import MultiHost, cleanup_leftovers, wait_for


def execute(multi: MultiHost, node: str, statement: str) -> None:
    connection = sql.connect_tcp(multi.host(node).address, 3306, multi.credentials(), timeout=2.0)
    try:
        with connection.cursor() as cursor:
            cursor.execute(statement)
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
    wait_for(lambda: execute(multi, "node3", "INSERT INTO b.t (node) VALUES ('after')") is None, 60,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
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
        outages = []
        for run in range(args.runs):
            outages.append(full_outage(multi))
            print(f"full outage run {run + 1}: {outages[-1]:.2f} s", flush=True)
        stalls = []
        for run in range(args.runs):
            stalls.append(write_stall(multi, ("node1", "node3")[run % 2]))
            print(f"write stall run {run + 1}: {stalls[-1]:.2f} s", flush=True)
        print(f"full outage median {statistics.median(outages):.2f} s ({', '.join(f'{t:.2f}' for t in outages)})")
        print(f"write stall median {statistics.median(stalls):.2f} s ({', '.join(f'{t:.2f}' for t in stalls)})")
    finally:
        multi.close()


if __name__ == "__main__":
    main()
