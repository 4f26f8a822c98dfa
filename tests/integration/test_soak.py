"""A short seeded fault-injection soak (issue 15) on the embedded cluster: bank and append workloads
through the managed endpoints while nodes are killed, stopped and partitioned, agents killed and the
whole cluster taken down; it fails on any violation the checker finds (tests/soak/checker.py): a lost,
reordered or phantom acknowledged write, a changed bank total, nodes that diverge, a split brain, or a
cluster that did not come back. Nodes on 127.0.0.165-167, the proxy on .168, the dashboard on .169.

The report (JSON and a PNG plot) is written to pytest's basetemp, under soak/. Longer runs, and runs on
etcd with its own faults: bench/soak.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.soak.run import SoakSettings, run_soak

SEED = 20261204
DURATION = 180.0


def test_a_seeded_soak_finds_no_violation(tmp_path_factory: pytest.TempPathFactory) -> None:
    out = Path(tmp_path_factory.getbasetemp()) / "soak"
    result = run_soak(SoakSettings(duration=DURATION, seed=SEED, out=out))
    print(json.dumps({k: result[k] for k in ("faults", "bank", "append", "stale_reads", "per_fault")}, indent=1))
    assert result["faults"] >= 4, result["windows"]
    assert result["bank"]["acknowledged"] > 100 and result["append"]["acknowledged"] > 100
    assert result["passed"], json.dumps(result["violations"], indent=1) + f"\nreport: {result['report']}"
