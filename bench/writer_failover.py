"""Writer failover as a client sees it, through the managed HAProxy's writer endpoint.

A client inserts ids in a loop through the writer endpoint, reconnecting on any error and recording
every acknowledged id. Then, per run:

- failover: kill -9 the writer's mariadbd; the figure is the time from the kill to the first
  acknowledged write after the client's first error (the writer's agent sees the exit at once through
  its pidfd, gives the writer lease up, has the survivors evict the dead instance; the next member by
  priority takes the lease; HAProxy's next check of it marks it UP);
- switchover: `galera-pilot switchover`; the figure is the longest gap between two acknowledged writes
  around it (how long the client saw errors).

After each run every acknowledged id must be on every node. Nodes on 127.0.0.121-123, the proxy on
127.0.0.120:3306/3307.

    sudo .venv/bin/python bench/writer_failover.py [--runs 5]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from galera_cli import CLI, run

from galera_pilot.control.target import from_directory
from tests.integration.routing_helpers import AckWriter, endpoint_code
from tests.waiting import wait_for

PROXY = "127.0.0.120"
BASE = "127.0.0.121"



def rows(directory: Path) -> dict[str, dict]:
    return {r["name"]: r for r in json.loads(run("list", "--dir", str(directory), "--format", "json"))}


# The tests' poller (tests/waiting.py), polling more often than their default.
wait = functools.partial(wait_for, interval=0.1)


def writer_of(directory: Path) -> str:
    return str(wait(lambda: next((n for n, r in rows(directory).items() if r["role"] == "writer"), None), 60,
                    "a writer"))


def all_synced(directory: Path) -> bool:
    found = rows(directory)
    return all(r["state"] == "Synced" and r["cluster_size"] == len(found) for r in found.values())


def check_acked(directory: Path, client: AckWriter) -> None:
    for name in rows(directory):
        out = run("query", "--dir", str(directory), "--member", name, "SELECT id FROM app.acks")
        present = {int(x) for x in out.split()}
        missing = set(client.acked) - present
        if missing:
            raise RuntimeError(f"{len(missing)} acknowledged ids missing on {name}")


def one_run(directory: Path, kind: str, credentials: tuple[str, str]) -> float:
    wait(lambda: all_synced(directory), 180, "all Synced")
    writer = writer_of(directory)
    address = rows(directory)[writer]["address"]
    wait(lambda: endpoint_code(address, "/writer") == 200, 30, "the writer's /writer 200")
    client = AckWriter(PROXY, 3306, *credentials).start()
    try:
        wait(lambda: len(client.acked) > 100, 30, "the client to write")
        started = time.monotonic()
        if kind == "failover":
            pid = int((directory / writer / "run" / "mariadbd.pid").read_text())
            os.kill(pid, signal.SIGKILL)
            first = wait(lambda: client.back_after(started), 60, "the next acknowledged write")
            figure = float(first) - started  # type: ignore[arg-type]
        else:
            run("switchover", "--dir", str(directory))
            wait(lambda: client.first_ack_after(started + 1.0), 60, "writes after the switchover")
            figure = client.longest_gap_after(started)
        count = len(client.acked)
        wait(lambda: len(client.acked) > count + 100, 60, "writes to go on")
    finally:
        client.stop()
    wait(lambda: all_synced(directory), 180, "all Synced again")
    check_acked(directory, client)
    return figure


def up_behind_proxy(directory: Path, base: str, proxy: str) -> tuple[str, str]:
    """`up` a 3-node cluster from `base` with its managed proxy on `proxy`:3306/3307, this process trusting
    the folder's CA, and the app.acks table the AckWriter fills; the admin credentials."""
    run("up", "--dir", str(directory), "--base-address", base, "--writer-bind", f"{proxy}:3306",
        "--reader-bind", f"{proxy}:3307")
    from_directory(directory).use_tls()  # endpoint_code asks the agents over HTTPS with the folder's CA
    data = yaml.safe_load((directory / "credentials.yaml").read_text())
    run("query", "--dir", str(directory), "CREATE DATABASE IF NOT EXISTS app")
    run("query", "--dir", str(directory), "CREATE TABLE IF NOT EXISTS app.acks (id INT PRIMARY KEY)")
    return data["admin_user"], data["admin_password"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gp-bench-failover-"))
    base.chmod(0o755)
    directory = base / "c"
    try:
        credentials = up_behind_proxy(directory, BASE, PROXY)
        results: dict[str, list[float]] = {"failover": [], "switchover": []}
        for kind in ("failover", "switchover"):
            for index in range(args.runs):
                run("query", "--dir", str(directory), "DELETE FROM app.acks")
                figure = one_run(directory, kind, credentials)
                results[kind].append(figure)
                print(f"{kind} run {index + 1}: {figure:.3f} s", flush=True)
        for kind, figures in results.items():
            print(f"{kind}: median {statistics.median(figures):.3f} s, max {max(figures):.3f} s "
                  f"({', '.join(f'{f:.2f}' for f in figures)}); every acknowledged id present")
    finally:
        subprocess.run([*CLI, "down", "--dir", str(directory)], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
