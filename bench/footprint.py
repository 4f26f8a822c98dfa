"""What galera-pilot costs at rest and under writes: CPU (% of one core) and RSS of every agent, the proxy
manager, HAProxy, the dashboard (no page open) and every mariadbd, over a window of idle time and a window
of writes through the writer endpoint; the baseline in the same run is what the databases themselves use
(agent/mariadbd CPU ratio).

A 3-node embedded cluster with the managed proxy on 127.0.0.91-93 (proxy 127.0.0.90:3306/3307), so HAProxy
polls every agent's checks as in production. Two write loads: a Python loop of single-row inserts on
one connection through the writer endpoint (latency-bound, like a small application), then sysbench
oltp_write_only through the writer endpoint (a throwaway account, dropped afterwards).

    sudo .venv/bin/python bench/footprint.py [--seconds 60] [--proxy-mode haproxy|kernel] [--no-sysbench]
                                              [--no-dashboard]
"""

from __future__ import annotations

import argparse
import re
import secrets
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pymysql
import yaml
from galera_cli import CLI, run, sysbench_workdir

from galera_pilot.control.target import from_directory
from galera_pilot.tls.contexts import mysql_context

PROXY = "127.0.0.90"
BENCH_USER = "gp_bench"
BASE = "127.0.0.91"



def processes(directory: Path) -> dict[str, psutil.Process]:
    """Every process of the cluster by role: agent:nodeN, mariadbd:nodeN, proxy manager, haproxy."""
    found: dict[str, psutil.Process] = {}
    for node in ("node1", "node2", "node3"):
        found[f"agent {node}"] = psutil.Process(int((directory / node / "run" / "agent.pid").read_text()))
        found[f"mariadbd {node}"] = psutil.Process(int((directory / node / "run" / "mariadbd.pid").read_text()))
    found["proxy manager"] = psutil.Process(int((directory / "proxy" / "manager.pid").read_text()))
    for index, child in enumerate(p for p in found["proxy manager"].children(recursive=True)
                                  if p.name().startswith("haproxy")):
        found[f"haproxy {index}"] = child
    dashboard = directory / "dashboard" / "dashboard.pid"
    if dashboard.exists():  # no page open: it looks at the cluster every 2 s
        found["dashboard"] = psutil.Process(int(dashboard.read_text()))
    return found


def measure(procs: dict[str, psutil.Process], seconds: float) -> dict[str, tuple[float, float]]:
    """(CPU % of one core, RSS MB) of each process over `seconds`."""
    before = {name: sum(p.cpu_times()[:2]) for name, p in procs.items()}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {name: (100 * (sum(p.cpu_times()[:2]) - before[name]) / elapsed, p.memory_info().rss / 2**20)
            for name, p in procs.items()}


class Writer(threading.Thread):
    def __init__(self, user: str, password: str) -> None:
        super().__init__(daemon=True)
        self.user, self.password, self.stop, self.count = user, password, threading.Event(), 0

    def run(self) -> None:
        connection = pymysql.connect(host=PROXY, port=3306, user=self.user, password=self.password,
                                     autocommit=True, ssl=mysql_context(), ssl_disabled=mysql_context() is None)
        with connection.cursor() as cursor:
            cursor.execute("CREATE DATABASE IF NOT EXISTS bench")
            cursor.execute("CREATE TABLE IF NOT EXISTS bench.w (id INT AUTO_INCREMENT PRIMARY KEY, v INT)")
            while not self.stop.is_set():
                cursor.execute("INSERT INTO bench.w (v) VALUES (1)")
                self.count += 1
        connection.close()


def report(title: str, figures: dict[str, tuple[float, float]]) -> None:
    print(f"\n{title}")
    for name, (cpu, rss) in figures.items():
        print(f"  {name:16} {cpu:6.2f} % CPU  {rss:6.1f} MB RSS")
    agents = [cpu for name, (cpu, _) in figures.items() if name.startswith("agent")]
    servers = [cpu for name, (cpu, _) in figures.items() if name.startswith("mariadbd")]
    ratio = statistics.mean(agents) / max(statistics.mean(servers), 1e-9)
    print(f"  agent/mariadbd CPU ratio: {ratio:.2f} (mean agent {statistics.mean(agents):.2f} %, "
          f"mean mariadbd {statistics.mean(servers):.2f} %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--proxy-mode", choices=["haproxy", "kernel"], default="haproxy")
    parser.add_argument("--sysbench", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure under sysbench oltp_write_only through the writer endpoint")
    parser.add_argument("--threads", type=int, default=4, help="sysbench threads")
    parser.add_argument("--no-dashboard", action="store_true", help="run the cluster without its dashboard")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="gp-bench-"))
    base.chmod(0o755)
    directory = base / "c"
    try:
        run("up", "--dir", str(directory), "--base-address", BASE, "--writer-bind", f"{PROXY}:3306",
            "--reader-bind", f"{PROXY}:3307", "--proxy-mode", args.proxy_mode,
            *(["--no-dashboard"] if args.no_dashboard else ["--dashboard-bind", f"{PROXY}:8080"]))
        from_directory(directory).use_tls()  # the folder's CA verifies its servers (a TLS cluster)
        time.sleep(5)  # let the start settle (joins, first checks)
        procs = processes(directory)
        report(f"idle, {args.seconds:.0f} s", measure(procs, args.seconds))
        credentials = yaml.safe_load((directory / "credentials.yaml").read_text())
        writer = Writer(credentials["admin_user"], credentials["admin_password"])
        writer.start()
        time.sleep(2)
        figures = measure(procs, args.seconds)
        writer.stop.set()
        writer.join(10)
        report(f"writes through the writer endpoint, {args.seconds:.0f} s ({writer.count} inserts)", figures)
        if args.sysbench:
            password = secrets.token_urlsafe(18)
            admin = pymysql.connect(host=BASE, port=3306, user=credentials["admin_user"],
                                    password=credentials["admin_password"], autocommit=True, ssl=mysql_context(),
                                    ssl_disabled=mysql_context() is None)
            with admin.cursor() as cursor:  # a throwaway account: sysbench takes its password on the command line
                cursor.execute("CREATE DATABASE IF NOT EXISTS sbtest")
                cursor.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (BENCH_USER, password))
                cursor.execute(f"GRANT ALL ON sbtest.* TO '{BENCH_USER}'@'%'")
            sysbench_args = ["sysbench", "oltp_write_only", f"--mysql-host={PROXY}", "--mysql-port=3306",
                             f"--mysql-user={BENCH_USER}", f"--mysql-password={password}", "--mysql-db=sbtest",
                             "--tables=4", "--table-size=10000", f"--threads={args.threads}",
                             f"--time={int(args.seconds) + 4}", "--report-interval=0",
                             f"--mysql-ssl={'on' if mysql_context() else 'off'}"]
            workdir = sysbench_workdir(directory)
            subprocess.run([*sysbench_args, "prepare"], capture_output=True, check=True, cwd=workdir)
            load = subprocess.Popen([*sysbench_args, "run"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, cwd=workdir)
            time.sleep(2)
            figures = measure(procs, args.seconds)
            out = load.communicate(timeout=args.seconds + 60)[0]
            tps = re.search(r"transactions:\s+\d+\s+\(([\d.]+) per sec", out)
            with admin.cursor() as cursor:
                cursor.execute(f"DROP USER IF EXISTS '{BENCH_USER}'@'%'")
            admin.close()
            report(f"sysbench oltp_write_only through the writer endpoint, {args.threads} threads, "
                   f"{args.seconds:.0f} s ({tps.group(1) if tps else '?'} tps)", figures)
    finally:
        subprocess.run([*CLI, "down", "--dir", str(directory)], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", str(base)], check=False)


if __name__ == "__main__":
    main()
