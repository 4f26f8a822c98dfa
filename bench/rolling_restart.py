"""A rolling restart of a 3-node cluster as a client writing through the writer endpoint sees it.

A client inserts ids in a loop through the managed HAProxy's writer endpoint, reconnecting on any error
and recording every acknowledged id. Per run: `galera-pilot restart --yes` (every node, the writer last
after a switchover). Figures: the roll's total time, the longest gap between two acknowledged writes
(target: one switchover, under 0.5 s), how many nodes rejoined by IST, and that every acknowledged id
is on every node afterwards. Baseline, in the same process and cluster: the longest gap around one
plain `galera-pilot switchover`, the least a roll that moves the writer can cost; the ratio says how
much more the whole roll cost the client than that one switchover.

Nodes on 127.0.0.201-203, the proxy on 127.0.0.200:3306/3307.

    sudo .venv/bin/python bench/rolling_restart.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from galera_cli import CLI, run
from writer_failover import all_synced, check_acked, up_behind_proxy, wait

from tests.integration.routing_helpers import AckWriter

PROXY = "127.0.0.200"
BASE = "127.0.0.201"


def one_run(directory: Path, credentials: tuple[str, str], verb: list[str]) -> tuple[float, float, str]:
    """(seconds the verb took, longest gap between acknowledged writes, its output)."""
    wait(lambda: all_synced(directory), 180, "all Synced")
    run("query", "--dir", str(directory), "DELETE FROM app.acks")
    client = AckWriter(PROXY, 3306, *credentials).start()
    try:
        wait(lambda: len(client.acked) > 100, 30, "the client to write")
        started = time.monotonic()
        out = run(*verb, "--dir", str(directory))
        took = time.monotonic() - started
        count = len(client.acked)
        wait(lambda: len(client.acked) > count + 100, 60, "writes to go on")
        gap = client.longest_gap_after(started)
        if os.environ.get("GP_BENCH_VERBOSE"):  # where the longest gap fell, against the verb's own step times
            times = [started, *[t for t in client.ack_times if t > started]]
            at = max(range(1, len(times)), key=lambda i: times[i] - times[i - 1])
            print(f"longest gap begins {times[at - 1] - started:.1f} s into {verb[0]}; errors at "
                  f"{[round(t - started, 1) for t in client.error_times if t > started]}\n{out}", flush=True)
    finally:
        client.stop()
    wait(lambda: all_synced(directory), 180, "all Synced again")
    check_acked(directory, client)
    return took, gap, out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gp-bench-roll-"))
    base.chmod(0o755)
    directory = base / "c"
    try:
        credentials = up_behind_proxy(directory, BASE, PROXY)
        switchover_gaps, totals, roll_gaps, by_ist = [], [], [], []
        for index in range(args.runs):
            _, gap, _ = one_run(directory, credentials, ["switchover"])
            switchover_gaps.append(gap)
            took, roll_gap, out = one_run(directory, credentials, ["restart", "--yes"])
            totals.append(took)
            roll_gaps.append(roll_gap)
            by_ist.append(out.count(" by IST"))
            print(f"run {index + 1}: switchover gap {gap:.3f} s; rolling restart {took:.1f} s, longest write gap "
                  f"{roll_gap:.3f} s, {by_ist[-1]} of 3 nodes rejoined by IST", flush=True)
        baseline, gap = statistics.median(switchover_gaps), statistics.median(roll_gaps)
        print(f"rolling restart of 3 nodes: median {statistics.median(totals):.1f} s total, longest write gap median "
              f"{gap:.3f} s (max {max(roll_gaps):.3f}), {sum(by_ist)} of {3 * args.runs} rejoins by IST; "
              f"every acknowledged id present on every node")
        print(f"baseline, one switchover: longest write gap median {baseline:.3f} s; roll / switchover gap ratio "
              f"{gap / baseline:.2f}")
    finally:
        subprocess.run([*CLI, "down", "--dir", str(directory)], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
