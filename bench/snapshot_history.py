"""What the history costs every reader of the DCS: CPU per snapshot with and without it, by history size.

Every agent reads a snapshot once a cycle (every second), the proxy manager once a second, a roll driver
five times a second. The history only grows (every decision, every Galera notification), so a reader
that parses it pays more the older the cluster is. This prints the CPU time of one snapshot (this
process's, averaged) with the history and without it (`snapshot(with_history=False)`, what those readers
use), on SQLite and on a real single-member etcd, and their ratio.

    .venv/bin/python bench/snapshot_history.py [--sizes 0,100,1000,5000] [--reads 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.unit

from galera_pilot.cluster import HistoryEvent, Member
from galera_pilot.dcs import DCS, get_dcs
from tests.unit.dcs_backends import EtcdProcess

EVENT = {"status": "synced", "primary": True, "members": ["node1", "node2", "node3"],
         "cluster_uuid": "6b6f3f5e-2c1a-11ef-9a55-1b2c3d4e5f60"}


def cpu_ms(read: object, reads: int) -> float:
    started = time.process_time()
    for _ in range(reads):
        read()  # type: ignore[operator]
    return (time.process_time() - started) / reads * 1000


def measure(store: DCS, label: str, sizes: list[int], reads: int) -> None:
    for index in range(3):
        store.publish_member(Member(name=f"node{index + 1}", address=f"127.0.0.{index + 2}", running=True,
                                    state="Synced", cluster_status="Primary", cluster_size=3), 600)
    recorded = 0
    print(f"{label}: CPU per snapshot (ms), {reads} reads each")
    print(f"{'history':>8} {'with':>8} {'without':>8} {'ratio':>7}")
    for size in sizes:
        while recorded < size:
            store.record_history(HistoryEvent(1000.0 + recorded, "node1", "galera",
                                              "Galera says: status synced; primary view of 3 (node1, node2, node3)",
                                              EVENT))
            recorded += 1
        with_history = cpu_ms(store.snapshot, reads)
        without = cpu_ms(lambda: store.snapshot(with_history=False), reads)
        print(f"{size:>8} {with_history:>8.3f} {without:>8.3f} {with_history / without:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="0,100,1000,5000")
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        sqlite = get_dcs(f"sqlite://{folder}/dcs.sqlite", "bench")
        measure(sqlite, "SQLite", sizes, args.reads)
        sqlite.close()
    etcd = EtcdProcess()
    try:
        server = etcd.start()
        store = get_dcs(server.url, "bench")
        measure(store, "etcd", sizes, max(20, args.reads // 4))
        store.close()
    finally:
        etcd.stop()


if __name__ == "__main__":
    main()
