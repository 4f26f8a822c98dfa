"""What every benchmark shares: run the galera-pilot CLI and fail loudly with what it said; the folder
sysbench runs in against a TLS cluster."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "galera_pilot"]


def run(*args: str) -> str:
    """`galera-pilot ARGS`'s stdout; RuntimeError with its stdout and stderr when it exits non-zero."""
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"galera-pilot {' '.join(args)}: {result.stdout}\n{result.stderr}")
    return result.stdout


def sysbench_workdir(directory: Path) -> Path:
    """Where sysbench runs for the cluster folder `directory`: sysbench 1.0's --mysql-ssl=on reads
    cacert.pem, client-cert.pem and client-key.pem from its working folder; they are the folder's node CA
    and an application certificate from its client CA (`pki issue-client`). Empty for a --no-tls folder."""
    from galera_pilot.embedded.cluster import EmbeddedCluster

    workdir = directory.parent / "sysbench"
    workdir.mkdir(exist_ok=True)
    cluster = EmbeddedCluster(directory)
    if cluster.tls:
        clients = cluster.authority.issue_client("sysbench", out=workdir)
        (workdir / "cacert.pem").write_bytes((clients / "ca.pem").read_bytes())
        (workdir / "client-cert.pem").write_bytes((clients / "sysbench.pem").read_bytes())
        (workdir / "client-key.pem").write_bytes((clients / "sysbench.key").read_bytes())
    return workdir
