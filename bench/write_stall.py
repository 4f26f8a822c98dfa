"""Write stall when one node of three is killed: a client commits single-row INSERTs in a loop on node1;
node3's mariadbd gets SIGKILL; the figure is the longest gap between two acknowledged commits around
the kill. Run with fast eviction (the dead node's agent has a survivor evict its old instance at once)
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
import sys
import tempfile
import threading
import time
from pathlib import Path

import pymysql
import yaml

from galera_pilot.credentials import load_credentials
from galera_pilot.mariadb import sql

CLI = [sys.executable, "-m", "galera_pilot"]
BASE = "127.0.0.70"


def run(*args: str) -> str:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"galera-pilot {' '.join(args)}: {result.stderr}")
    return result.stdout


def all_synced(directory: Path) -> bool:
    rows = json.loads(run("list", "--dir", str(directory), "--format", "json"))
    return all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in rows)


def set_eviction(directory: Path, enabled: bool) -> None:
    for node in ("node1", "node2", "node3"):
        path = directory / node / "agent.yaml"
        config = yaml.safe_load(path.read_text())
        config["fast_eviction"] = enabled
        path.write_text(yaml.safe_dump(config, sort_keys=False))


def measure(directory: Path) -> float:
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
    killed_at = time.monotonic()
    os.kill(int((directory / "node3" / "run" / "mariadbd.pid").read_text()), signal.SIGKILL)
    time.sleep(10.0)
    stop.set()
    thread.join()
    window = [t for t in commits if t >= killed_at - 1.0]
    gaps = [b - a for a, b in itertools.pairwise(window)]
    deadline = time.monotonic() + 120
    while not all_synced(directory) and time.monotonic() < deadline:
        time.sleep(0.5)
    return max(gaps) if gaps else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gp-bench-"))
    os.chmod(root, 0o755)
    directory = root / "cluster"
    results: dict[str, list[float]] = {"off": [], "on": []}
    try:
        run("up", "--dir", str(directory), "--base-address", BASE)
        run("query", "--dir", str(directory), "--member", "node1", "CREATE DATABASE b")
        run("query", "--dir", str(directory), "--member", "node1",
            "CREATE TABLE b.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))")
        for i in range(args.runs):
            for label in ("off", "on"):
                run("down", "--dir", str(directory))
                set_eviction(directory, label == "on")
                run("up", "--dir", str(directory))
                stall = measure(directory)
                results[label].append(stall)
                print(f"run {i + 1}: fast eviction {label:3s}: longest write stall {stall:.3f} s", flush=True)
    finally:
        subprocess.run([*CLI, "down", "--dir", str(directory)], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    print(f"\nwithout fast eviction median stall: {off:.3f} s (runs: {', '.join(f'{x:.3f}' for x in results['off'])})")
    print(f"with fast eviction    median stall: {on:.3f} s (runs: {', '.join(f'{x:.3f}' for x in results['on'])})")
    print(f"ratio with/without: {on / off:.3f}")


if __name__ == "__main__":
    main()
