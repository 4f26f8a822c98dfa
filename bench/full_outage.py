"""Full outage: a 3-node cluster with writes, kill -9 of every agent and every mariadbd (power loss),
then start the agents again: time until all nodes are Synced and writable, and how it came back.

Two kinds of outage, alternating in each run:
- staggered: the servers die one after another with writes in between, so seqnos differ and the saved
  views disagree: the agents bootstrap from the most advanced node (the run says which, and checks it);
- simultaneous: every server dies at the same instant, so every gvwstate.dat names the same component
  and the agents let Galera's pc.recovery re-form it (no bootstrap).

    sudo .venv/bin/python bench/full_outage.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
from galera_cli import CLI, run

NODES = ("node1", "node2", "node3")



def kill(pid_file: Path) -> None:
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.01)


def one_run(directory: Path, first: bool, simultaneous: bool) -> tuple[float, str]:
    if first:
        run("up", "--dir", str(directory), "--base-address", "127.0.0.60")
        run("query", "--dir", str(directory), "--member", "node1", "CREATE DATABASE IF NOT EXISTS b")
        run("query", "--dir", str(directory), "--member", "node1",
            "CREATE TABLE IF NOT EXISTS b.t (id INT AUTO_INCREMENT PRIMARY KEY, node VARCHAR(8))")
    for node in NODES:
        kill(directory / node / "run" / "agent.pid")
    for victim in ("node3", "node2", "node1"):  # writes between the kills, so seqnos differ
        for node in NODES:
            subprocess.run([*CLI, "query", "--dir", str(directory), "--member", node,
                            f"INSERT INTO b.t (node) VALUES ('{node}')"], capture_output=True, check=False)
        if not simultaneous:
            kill(directory / victim / "run" / "mariadbd.pid")
    if simultaneous:
        pids = [int((directory / node / "run" / "mariadbd.pid").read_text()) for node in NODES]
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        while any(psutil.pid_exists(pid) for pid in pids):
            time.sleep(0.01)
    started_at = time.time()
    started = time.monotonic()
    run("up", "--dir", str(directory), "--timeout", "300")
    run("query", "--dir", str(directory), "--member", "node3", "INSERT INTO b.t (node) VALUES ('after')")
    elapsed = time.monotonic() - started
    events = [e for e in json.loads(run("history", "--dir", str(directory), "--format", "json"))
              if e["at"] >= started_at]
    if not [e for e in events if e["action"] == "bootstrap"]:
        recovered = sorted(e["member"] for e in events if e["action"] == "pc-recovery")
        return elapsed, f"re-formed by pc.recovery ({', '.join(recovered)}), no bootstrap"
    boot = [e for e in events if e["action"] == "bootstrap"][-1]
    seqnos = {n: p["seqno"] for n, p in boot["inputs"]["positions"].items()}
    verdict = "most advanced" if seqnos[boot["member"]] == max(seqnos.values()) else "BEHIND ANOTHER NODE"
    return elapsed, f"bootstrapped from {boot['member']} ({verdict}; positions {seqnos})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="gp-bench-"))
    os.chmod(root, 0o755)
    directory = root / "cluster"
    times: dict[str, list[float]] = {"staggered": [], "simultaneous": []}
    try:
        for i in range(args.runs):
            for kind in times:
                seconds, how = one_run(directory, first=not any(times.values()), simultaneous=kind == "simultaneous")
                times[kind].append(seconds)
                print(f"run {i + 1}: {kind:12s}: all Synced and writable {seconds:.2f} s after the agents "
                      f"restarted; {how}", flush=True)
    finally:
        subprocess.run([*CLI, "down", "--dir", str(directory)], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)
    print()
    for kind, values in times.items():
        print(f"{kind:12s} full-outage recovery median: {statistics.median(values):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in values)})")


if __name__ == "__main__":
    main()
