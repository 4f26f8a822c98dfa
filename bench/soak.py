"""The fault-injection soak (issue 15): bank and append workloads through the managed endpoints of a real
3-node cluster while a seeded schedule kills, stops and partitions nodes, kills agents, takes the whole
cluster down (and, with --dcs etcd, pauses and kills etcd); then every fault is healed and the checker
looks for lost or reordered acknowledged writes, a changed bank total, diverging nodes and split brain.

    sudo .venv/bin/python bench/soak.py --duration 1800 --seed 7 [--dcs etcd] [--out DIR]

Prints the report's figures and writes soak-DCS-seedN.json and .png (throughput and latency over time,
the fault windows shaded) to --out. Exits 1 if anything was violated. tests/soak/ holds the parts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.soak.run import SoakSettings, run_soak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of faults (default 300)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dcs", choices=["sqlite", "etcd"], default="sqlite")
    parser.add_argument("--out", type=Path, default=Path("soak-reports"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    result = run_soak(SoakSettings(duration=args.duration, seed=args.seed, dcs=args.dcs, out=args.out))
    shown = {k: result[k] for k in ("seed", "dcs", "duration", "faults", "passed", "bank", "append",
                                    "stale_reads", "per_fault", "wall_seconds", "report")}
    print(json.dumps(shown, indent=2))
    for violation in result["violations"]:
        print(f"VIOLATION {violation['kind']} at {violation['at']:.3f}: {violation['detail']}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
