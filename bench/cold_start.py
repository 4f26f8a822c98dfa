"""Cold start: `galera-pilot up` of 3 nodes from an empty folder until all are Synced, against a bare
by-hand baseline run in the same process (mariadb-install-db on the first node, bootstrap it with
--wsrep-new-cluster, start the two others with empty datadirs at once: rsync SST, all Synced).

    sudo .venv/bin/python bench/cold_start.py [--runs 5]

Prints every run, both medians and the ratio managed / baseline (lower is better).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pymysql

ADDRESSES = ("127.0.0.50", "127.0.0.51", "127.0.0.52")
PROXY_ADDRESS = "127.0.0.53"
MYCNF = """[mariadbd]
user = mysql
datadir = {base}/data
socket = {base}/mariadbd.sock
pid-file = {base}/mariadbd.pid
log-error = {base}/error.log
bind-address = {address}
port = 3306
skip-name-resolve = ON
performance_schema = OFF
binlog_format = ROW
innodb_autoinc_lock_mode = 2
innodb_buffer_pool_size = 128M
innodb_log_file_size = 48M
wsrep_on = ON
wsrep_provider = /usr/lib/galera/libgalera_smm.so
wsrep_cluster_name = bench
wsrep_cluster_address = gcomm://{peers}
wsrep_node_name = {name}
wsrep_node_address = {address}
wsrep_provider_options = "gmcast.listen_addr=tcp://{address}:4567;ist.recv_addr={address}:4568;gcache.size=128M"
wsrep_sst_method = rsync
wsrep_sst_receive_address = {address}:4444
[sst]
sockopt = ",bind={address}"
"""


def synced(socket_path: Path) -> bool:
    try:
        connection = pymysql.connect(unix_socket=str(socket_path), user="root", connect_timeout=1)
    except pymysql.MySQLError:
        return False
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'wsrep_local_state_comment'")
            row = cursor.fetchone()
            return row is not None and row[1] == "Synced"
    finally:
        connection.close()


def wait_synced(sockets: list[Path], procs: list[subprocess.Popen[bytes]], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    pending = list(sockets)
    while pending:
        if time.monotonic() > deadline:
            raise RuntimeError(f"baseline: not Synced after {timeout} s: {pending}")
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("baseline: a mariadbd exited; see its error.log")
        pending = [s for s in pending if not synced(s)]
        time.sleep(0.05)


def baseline_run(root: Path) -> float:
    bases = [root / f"n{i + 1}" for i in range(len(ADDRESSES))]
    peers = ",".join(f"{a}:4567" for a in ADDRESSES)
    for i, (base, address) in enumerate(zip(bases, ADDRESSES, strict=True)):
        (base / "data").mkdir(parents=True)
        (base / "my.cnf").write_text(MYCNF.format(base=base, address=address, name=f"n{i + 1}",
                                                  peers="" if i == 0 else peers))
    subprocess.run(["chown", "-R", "mysql:mysql", str(root)], check=True)
    procs: list[subprocess.Popen[bytes]] = []
    started = time.monotonic()
    try:
        subprocess.run(["mariadb-install-db", f"--defaults-file={bases[0] / 'my.cnf'}", "--user=mysql",
                        "--skip-test-db", "--auth-root-authentication-method=socket"],
                       check=True, capture_output=True)
        procs.append(subprocess.Popen(["mariadbd", f"--defaults-file={bases[0] / 'my.cnf'}", "--wsrep-new-cluster"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_synced([bases[0] / "mariadbd.sock"], procs)
        for base in bases[1:]:
            procs.append(subprocess.Popen(["mariadbd", f"--defaults-file={base / 'my.cnf'}"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_synced([b / "mariadbd.sock" for b in bases], procs)
        return time.monotonic() - started
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()


def managed_run(root: Path, proxy: bool = False) -> float:
    """`galera-pilot up` until it returns; without the proxy, the same work as the baseline."""
    cli = [sys.executable, "-m", "galera_pilot"]
    directory = root / "cluster"
    extra = ["--writer-bind", f"{PROXY_ADDRESS}:3306", "--reader-bind", f"{PROXY_ADDRESS}:3307"] if proxy else [
        "--no-proxy"]
    started = time.monotonic()
    result = subprocess.run([*cli, "up", "--dir", str(directory), "--base-address", ADDRESSES[0], *extra],
                            capture_output=True, text=True)
    elapsed = time.monotonic() - started
    subprocess.run([*cli, "down", "--dir", str(directory)], capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"galera-pilot up failed:\n{result.stderr}")
    return elapsed


def scratch() -> Path:
    root = Path(tempfile.mkdtemp(prefix="gp-bench-"))
    os.chmod(root, 0o755)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    managed: list[float] = []
    baseline: list[float] = []
    proxied: list[float] = []
    series = (("baseline", baseline_run, baseline), ("managed", managed_run, managed),
              ("managed+proxy", lambda root: managed_run(root, proxy=True), proxied))
    for run in range(args.runs):
        for label, fn, results in series:
            root = scratch()
            try:
                seconds = fn(root)
            finally:
                shutil.rmtree(root, ignore_errors=True)
            results.append(seconds)
            print(f"run {run + 1}: {label:13s} {seconds:6.2f} s", flush=True)
    m, b = statistics.median(managed), statistics.median(baseline)
    print(f"\nbaseline (bare mariadbd, rsync SST) median: {b:.2f} s  (runs: {', '.join(f'{x:.2f}' for x in baseline)})")
    print(f"managed (galera-pilot up)        median: {m:.2f} s  (runs: {', '.join(f'{x:.2f}' for x in managed)})")
    print(f"ratio managed/baseline: {m / b:.2f}")
    print(f"with the managed HAProxy (up's default) median: {statistics.median(proxied):.2f} s  "
          f"(runs: {', '.join(f'{x:.2f}' for x in proxied)})")


if __name__ == "__main__":
    main()
