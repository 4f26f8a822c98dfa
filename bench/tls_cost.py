"""What TLS costs: the same 3-node embedded cluster with TLS (the default) and with --no-tls, one after
the other in one run, on 127.0.0.191-193 (endpoints 127.0.0.190:3306/3307).

Per mode:
- cold start: wall time of `up` on a new folder (PKI, bundles and all for TLS), until clients reach the
  writer through the endpoint;
- sysbench oltp_write_only through the writer endpoint (TLS on the client connections too, as
  require_secure_transport demands), 4 threads: transactions per second, and the CPU of all three
  mariadbd processes per transaction (Galera replication over TLS is most of the difference);
- writer failover: kill -9 the writer's mariadbd while a client writes through the endpoint; the time
  until its next acknowledged write (every acknowledged write is checked on every node afterwards).

The ratios TLS / plaintext are printed last. Targets (issue 11): <= 1.25 CPU per transaction, <= +0.3 s
on failover and cold start.

    sudo .venv/bin/python bench/tls_cost.py [--seconds 30] [--runs 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from galera_cli import CLI, run, sysbench_workdir

from galera_pilot.control.target import from_directory
from galera_pilot.credentials import load_credentials
from galera_pilot.mariadb import sql
from tests.integration.routing_helpers import AckWriter
from tests.waiting import wait_for

PROXY = "127.0.0.190"
BASE = "127.0.0.191"
BENCH_USER = "gp_tls_bench"


# The tests' poller (tests/waiting.py), polling more often than their default.
wait = functools.partial(wait_for, interval=0.05)


def mariadbd_cpu(directory: Path) -> float:
    total = 0.0
    for node in ("node1", "node2", "node3"):
        process = psutil.Process(int((directory / node / "run" / "mariadbd.pid").read_text()))
        total += sum(process.cpu_times()[:2])
    return total


def writer_of(directory: Path) -> str:
    def find() -> str | None:
        snapshot = from_directory(directory).snapshot()
        return snapshot.writer if snapshot.writer and all(
            m.is_synced for m in snapshot.members.values()) and len(snapshot.members) == 3 else None
    return str(wait(find, 120, "a writer and three Synced members"))


def sysbench(directory: Path, tls: bool, seconds: float) -> tuple[float, float]:
    """(tps, mariadbd CPU ms per transaction) of sysbench oltp_write_only through the writer endpoint."""
    credentials = load_credentials(directory / "credentials.yaml")
    password = secrets.token_urlsafe(18)
    admin = sql.connect_tcp(BASE, 3306, credentials)
    with admin.cursor() as cursor:  # a throwaway account: sysbench takes its password on the command line
        cursor.execute("CREATE DATABASE IF NOT EXISTS sbtest")
        cursor.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (BENCH_USER, password))
        cursor.execute(f"GRANT ALL ON sbtest.* TO '{BENCH_USER}'@'%'")
    args = ["sysbench", "oltp_write_only", f"--mysql-host={PROXY}", "--mysql-port=3306", f"--mysql-user={BENCH_USER}",
            f"--mysql-password={password}", "--mysql-db=sbtest", "--tables=4", "--table-size=10000", "--threads=4",
            f"--time={int(seconds)}", "--report-interval=0", f"--mysql-ssl={'on' if tls else 'off'}"]
    workdir = sysbench_workdir(directory)  # the client certificate files sysbench wants (TLS)
    try:
        subprocess.run([*args, "prepare"], capture_output=True, check=True, cwd=workdir)
        before = mariadbd_cpu(directory)
        result = subprocess.run([*args, "run"], capture_output=True, text=True, check=False, cwd=workdir)
        if result.returncode != 0:
            raise RuntimeError(f"sysbench run failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
        out = result.stdout
        used = mariadbd_cpu(directory) - before
        found = re.search(r"transactions:\s+(\d+)\s+\(([\d.]+) per sec", out)
        if not found:
            raise RuntimeError(f"sysbench said:\n{out}")
        transactions, tps = int(found.group(1)), float(found.group(2))
        subprocess.run([*args, "cleanup"], capture_output=True, check=False, cwd=workdir)
        return tps, 1000 * used / transactions
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{BENCH_USER}'@'%'")
        admin.close()


def failover(directory: Path) -> float:
    credentials = load_credentials(directory / "credentials.yaml")
    writer = writer_of(directory)
    client = AckWriter(PROXY, 3306, credentials.admin_user, credentials.admin_password).start()
    try:
        wait(lambda: len(client.acked) > 100, 30, "the client to write")
        started = time.monotonic()
        os.kill(int((directory / writer / "run" / "mariadbd.pid").read_text()), signal.SIGKILL)
        first = float(wait(lambda: client.back_after(started), 60, "the next acknowledged write"))  # type: ignore[arg-type]
        count = len(client.acked)
        wait(lambda: len(client.acked) > count + 50, 60, "writes to go on")
    finally:
        client.stop()
    writer_of(directory)  # all three Synced again
    for node in ("node1", "node2", "node3"):
        out = run("query", "--dir", str(directory), "--member", node, "SELECT id FROM app.acks")
        missing = set(client.acked) - {int(x) for x in out.split()}
        if missing:
            raise RuntimeError(f"{len(missing)} acknowledged ids missing on {node}")
    return first - started


def one_mode(tls: bool, seconds: float, runs: int) -> dict[str, float]:
    base = Path(tempfile.mkdtemp(prefix="gp-bench-tls-"))
    base.chmod(0o755)
    directory = base / "c"
    try:
        started = time.monotonic()
        run("up", "--dir", str(directory), "--base-address", BASE, "--writer-bind", f"{PROXY}:3306",
            "--reader-bind", f"{PROXY}:3307", *([] if tls else ["--no-tls"]))
        cold = time.monotonic() - started
        from_directory(directory).use_tls()  # this process verifies the folder's nodes (TLS mode)
        tps, cpu = sysbench(directory, tls, seconds)
        run("query", "--dir", str(directory), "CREATE DATABASE IF NOT EXISTS app")
        run("query", "--dir", str(directory), "CREATE TABLE IF NOT EXISTS app.acks (id INT PRIMARY KEY)")
        failovers = []
        for _ in range(runs):
            run("query", "--dir", str(directory), "DELETE FROM app.acks")
            failovers.append(failover(directory))
        return {"cold start (s)": cold, "sysbench tps": tps, "mariadbd CPU ms per transaction": cpu,
                "writer failover (s, median)": statistics.median(failovers)}
    finally:
        subprocess.run([*CLI, "down", "--dir", str(directory)], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(base)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="sysbench duration per mode")
    parser.add_argument("--runs", type=int, default=3, help="failovers per mode")
    parser.add_argument("--modes", default="plaintext,tls", help="plaintext,tls (the comparison) or one of them")
    args = parser.parse_args()
    parser_modes = args.modes.split(",")
    if parser_modes != ["plaintext", "tls"]:
        for mode in parser_modes:
            print(mode, one_mode(mode == "tls", args.seconds, args.runs), flush=True)
        return
    plain = one_mode(False, args.seconds, args.runs)
    print("plaintext: " + ", ".join(f"{k} {v:.3f}" for k, v in plain.items()), flush=True)
    tls = one_mode(True, args.seconds, args.runs)
    print("TLS:       " + ", ".join(f"{k} {v:.3f}" for k, v in tls.items()), flush=True)
    for key in plain:
        ratio = tls[key] / plain[key] if plain[key] else float("nan")
        print(f"{key:<34} plaintext {plain[key]:9.3f}  TLS {tls[key]:9.3f}  TLS/plaintext {ratio:.2f}  "
              f"difference {tls[key] - plain[key]:+.3f}")


if __name__ == "__main__":
    main()
