"""What the proxy hop costs: sysbench oltp_read_only through the reader endpoint vs the same node directly,
in one run, for each proxy mode (HAProxy, HAProxy with --nbthread threads, kernel DNAT), and a Python
point-select loop through the writer endpoint vs the no-proxy path (`galera_pilot.client.connect_writer`,
which asks the agents for the writer and connects to it).

The reader endpoint balances over every node; to compare with one node, node2 and node3 are put in
maintenance first (`galera-pilot maintenance on`), so the reader endpoint (and the writer) is node1.
Nodes on 127.0.0.131-133, the proxy on 127.0.0.130:3306/3307. sysbench takes its password on the
command line, so it uses a throwaway account created for the run and dropped afterwards.

    sudo .venv/bin/python bench/proxy_overhead.py [--seconds 20] [--threads 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import pymysql
import yaml
from galera_cli import CLI, run

from galera_pilot.client import connect_writer
from galera_pilot.embedded.cluster import EmbeddedCluster

PROXY = "127.0.0.130"
BASE = "127.0.0.131"
BENCH_USER = "gp_bench"



def sysbench(host: str, port: int, password: str, command: str, seconds: int, threads: int) -> float:
    args = ["sysbench", "oltp_read_only", f"--mysql-host={host}", f"--mysql-port={port}",
            f"--mysql-user={BENCH_USER}", f"--mysql-password={password}", "--mysql-db=sbtest", "--tables=4",
            "--table-size=10000", f"--threads={threads}", f"--time={seconds}", "--report-interval=0", command]
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    out = result.stdout
    if result.returncode != 0:
        raise RuntimeError(f"sysbench {command} against {host}:{port} exited {result.returncode}:\n"
                           f"{out[-1500:]}{result.stderr[-1500:]}")
    if command != "run":
        return 0.0
    match = re.search(r"transactions:\s+\d+\s+\(([\d.]+) per sec", out)
    errors = re.search(r"ignored errors:\s+(\d+)", out)
    if match is None or (errors and int(errors.group(1))):
        raise RuntimeError(f"sysbench {command} against {host}:{port} did not run cleanly:\n{out[-1500:]}")
    return float(match.group(1))


def point_selects(connect, seconds: float) -> float:
    """Primary-key selects per second on one connection (latency-bound: the hop shows fully)."""
    connection = connect()
    done = 0
    deadline = time.monotonic() + seconds
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT c FROM sbtest.sbtest1 WHERE id = %s", (done % 10000 + 1,))
            cursor.fetchall()
            done += 1
    connection.close()
    return done / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--nbthread", type=int, default=1, help="also measure HAProxy with this many threads (0: skip)")
    parser.add_argument("--modes", default="haproxy,kernel", help="proxy modes to measure, comma-separated")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gp-bench-proxy-"))
    base.chmod(0o755)
    directory = base / "c"
    password = secrets.token_urlsafe(18)
    try:
        # Plaintext, as the recorded figures: the hop itself is measured (bench/tls_cost.py measures TLS).
        run("up", "--dir", str(directory), "--base-address", BASE, "--writer-bind", f"{PROXY}:3306",
            "--reader-bind", f"{PROXY}:3307", "--no-tls")
        for name in ("node2", "node3"):
            run("maintenance", "--dir", str(directory), "on", name)
        rows = json.loads(run("list", "--dir", str(directory), "--format", "json"))
        assert next(r for r in rows if r["name"] == "node1")["role"] == "writer", rows
        data = yaml.safe_load((directory / "credentials.yaml").read_text())
        user, secret = data["admin_user"], data["admin_password"]
        admin = pymysql.connect(host=BASE, port=3306, user=user, password=secret, autocommit=True)
        with admin.cursor() as cursor:  # not through `galera-pilot query`: no password on a command line
            cursor.execute("CREATE DATABASE IF NOT EXISTS sbtest")
            cursor.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (BENCH_USER, password))
            cursor.execute(f"GRANT ALL ON sbtest.* TO '{BENCH_USER}'@'%'")
        admin.close()
        sysbench(BASE, 3306, password, "prepare", 1, 4)
        cluster = EmbeddedCluster(directory)
        results: dict[str, tuple[float, float]] = {}
        wanted = args.modes.split(",")
        modes = ([("haproxy", None)] + ([("haproxy", args.nbthread)] if args.nbthread else [])
                 if "haproxy" in wanted else []) + ([("kernel", None)] if "kernel" in wanted else [])
        for mode, nbthread in modes:
            label = f"{mode}" + (f" nbthread {nbthread}" if nbthread else "")
            config = yaml.safe_load(cluster.proxy.config_path.read_text())
            if (config.get("mode", "haproxy"), config.get("nbthread")) != (mode, nbthread):
                config["mode"], config["nbthread"] = mode, nbthread
                cluster.proxy.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
                cluster.proxy.stop()
                cluster.proxy.spawn()
                cluster.proxy.wait_routed(60)
            direct: list[float] = []
            proxied: list[float] = []
            for _ in range(args.rounds):  # alternating, so both see the same background load
                direct.append(sysbench(BASE, 3306, password, "run", args.seconds, args.threads))
                proxied.append(sysbench(PROXY, 3307, password, "run", args.seconds, args.threads))
                print(f"{label}: sysbench oltp_read_only tps direct {direct[-1]:.1f}, "
                      f"through the reader endpoint {proxied[-1]:.1f}", flush=True)
            results[label] = (statistics.median(direct), statistics.median(proxied))
        for label, (d, p) in results.items():
            print(f"sysbench oltp_read_only, {args.threads} threads, {args.seconds} s x {args.rounds}, "
                  f"{label}: direct median {d:.1f} tps, reader endpoint median {p:.1f} tps, ratio {p / d:.2f}")
        api = [f"http://127.0.0.13{i}:8008" for i in (1, 2, 3)]
        via_proxy = point_selects(lambda: pymysql.connect(host=PROXY, port=3306, user=user, password=secret),
                                  args.seconds / 2)
        via_helper = point_selects(lambda: connect_writer(api, user, secret), args.seconds / 2)
        print(f"python point selects, one connection: writer endpoint {via_proxy:.0f} q/s, connect_writer "
              f"(no proxy hop) {via_helper:.0f} q/s, ratio {via_proxy / via_helper:.2f}")
    finally:
        subprocess.run([*CLI, "query", "--dir", str(directory), f"DROP USER IF EXISTS '{BENCH_USER}'@'%'"],
                       capture_output=True, check=False)
        subprocess.run([*CLI, "down", "--dir", str(directory)], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
