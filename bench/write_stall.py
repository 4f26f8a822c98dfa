"""Write stall when one node of three is killed: a client commits single-row INSERTs in a loop on node1;
node3's mariadbd gets SIGKILL; the figures are the longest gaps between two acknowledged commits, split
into the stall the kill causes and the one while node3's agent brings it back (a rejoin changes the view
too). Run with fast eviction (the dead node's agent has every survivor evict its old instance at once)
and without it (the survivors wait evs.suspect_timeout), in the same process.

    sudo .venv/bin/python bench/write_stall.py [--runs 3]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pymysql
import yaml
from galera_cli import CLI, run

from galera_pilot.control.target import from_directory
from galera_pilot.credentials import load_credentials
from galera_pilot.mariadb import sql

BASE = "127.0.0.70"



def all_synced(directory: Path) -> bool:
    rows = json.loads(run("list", "--dir", str(directory), "--format", "json"))
    return all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in rows)


def set_eviction(directory: Path, enabled: bool) -> None:
    for node in ("node1", "node2", "node3"):
        path = directory / node / "agent.yaml"
        config = yaml.safe_load(path.read_text())
        config["fast_eviction"] = enabled
        path.write_text(yaml.safe_dump(config, sort_keys=False))


def measure(directory: Path) -> tuple[float, float]:
    """(longest stall caused by the kill, longest stall while the restarted node rejoins).

    Both change the view and both may stall writes, but only the first is what eviction shortens: the
    split is the moment node3's agent starts a new mariadbd (a new mariadbd process)."""
    credentials = load_credentials(directory / "credentials.yaml")
    commits: list[float] = []
    stop = threading.Event()

    def writer() -> None:
        # Reconnects on error: an error is part of the stall, not the end of the measurement.
        connection = None
        while not stop.is_set():
            try:
                if connection is None:
                    connection = sql.connect_tcp("127.0.0.70", 3306, credentials, timeout=30)
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO b.t (at) VALUES (NOW(6))")
                commits.append(time.monotonic())
            except pymysql.MySQLError:
                if connection is not None:
                    connection.close()
                connection = None
                time.sleep(0.01)
        if connection is not None:
            connection.close()

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(2.0)
    pid_file = directory / "node3" / "run" / "mariadbd.pid"
    killed_pid = int(pid_file.read_text())
    killed_at = time.monotonic()
    os.kill(killed_pid, signal.SIGKILL)
    # The pid file appears only once the new server is well into its start, after its gcomm join: look
    # for the process itself.
    defaults = f"--defaults-file={directory / 'node3' / 'my.cnf'}"
    restarted_at = float("inf")
    while time.monotonic() - killed_at < 10.0:
        if restarted_at == float("inf") and any(
            p.info["pid"] != killed_pid and defaults in (p.info["cmdline"] or [])
            for p in psutil.process_iter(["pid", "cmdline"])
        ):
            restarted_at = time.monotonic()
        time.sleep(0.01)
    stop.set()
    thread.join()
    window = [t for t in commits if t >= killed_at - 1.0]
    gaps = [(b - a, a) for a, b in itertools.pairwise(window)]
    deadline = time.monotonic() + 120
    while not all_synced(directory) and time.monotonic() < deadline:
        time.sleep(0.5)
    kill_stall = max((gap for gap, began in gaps if began < restarted_at), default=float("inf"))
    rejoin_stall = max((gap for gap, began in gaps if began >= restarted_at), default=0.0)
    return kill_stall, rejoin_stall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gp-bench-"))
    os.chmod(root, 0o755)
    directory = root / "cluster"
    results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    try:
        run("up", "--dir", str(directory), "--base-address", BASE)
        from_directory(directory).use_tls()  # sql.connect_tcp verifies with the folder's CA
        run("query", "--dir", str(directory), "--member", "node1", "CREATE DATABASE b")
        run("query", "--dir", str(directory), "--member", "node1",
            "CREATE TABLE b.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))")
        for i in range(args.runs):
            for label in ("off", "on"):
                run("down", "--dir", str(directory))
                set_eviction(directory, label == "on")
                run("up", "--dir", str(directory))
                kill_stall, rejoin_stall = measure(directory)
                results[label].append((kill_stall, rejoin_stall))
                print(f"run {i + 1}: fast eviction {label:3s}: stall after the kill {kill_stall:.3f} s, "
                      f"while node3 rejoins {rejoin_stall:.3f} s", flush=True)
    finally:
        subprocess.run([*CLI, "down", "--dir", str(directory)], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
    print()
    for label, title in (("off", "without fast eviction"), ("on", "with fast eviction")):
        kills = [k for k, _ in results[label]]
        rejoins = [r for _, r in results[label]]
        print(f"{title:22s} median stall after the kill {statistics.median(kills):.3f} s "
              f"(runs: {', '.join(f'{x:.3f}' for x in kills)}); while rejoining "
              f"{statistics.median(rejoins):.3f} s (runs: {', '.join(f'{x:.3f}' for x in rejoins)})")
    off = statistics.median(k for k, _ in results["off"])
    on = statistics.median(k for k, _ in results["on"])
    print(f"ratio of the kill stall with/without: {on / off:.3f}")


if __name__ == "__main__":
    main()
