"""Backups and restore on a dataset: how fast `backup create` copies a datadir against the floors measured
on the same bytes in the same run, what a backup costs the writer's commit latency, and how long a restore
and a restore test take.

A 2-node embedded cluster without a proxy on 127.0.0.235-236; sysbench oltp_read_write `prepare` through
the writer (node1, as a rule) loads 8 tables sized so that the datadir grows by about --size-mb. Then, on
the non-writer's datadir (the node the backups are taken on, its mariadbd running: fine for a floor):

- **tar floor**: `tar -cf - DATADIR | cat > FILE` onto the repository's filesystem, then fsync (the
  repository fsyncs each object): the raw read and write of the same bytes. galera.cache and ibtmp1 are
  left out (no backup copies them); every throughput below is those bytes / wall time.
- **zstd floor**: `tar -cf - DATADIR | zstd -3 -T2 > FILE` (the level and threads the agent uses).
- `galera-pilot backup create` (full; the CLI's wall time, start-up included), an incremental after some
  writes (sysbench oltp_write_only), a `--logical` one, and `mariadb-dump | zstd` of the same schema done
  directly on that node's socket, then its reload through the writer's (replicated) into another schema.
- The writer's commit latency: single-row autocommit INSERTs on the writer for --latency-seconds without
  a backup, then during a full backup on the other node and until that node is Synced again (p50/p99, the
  ratio, the writer's flow-control pause time, the machine's CPU, the backed-up node's wsrep states).
- `backup verify ID --restore-test` of the first full set, then `restore --backup ID --yes --no-base-backup`
  (the whole cluster: node1 restores, node2 rejoins by SST). The summary table comes last.

    sudo .venv/bin/python bench/backup.py [--size-mb 1024] [--latency-seconds 20] [--no-reload]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pymysql
from galera_cli import CLI, run, sysbench_workdir

from galera_pilot.backup.tools import table_checksums
from galera_pilot.control.target import from_directory
from galera_pilot.credentials import Credentials, load_credentials
from galera_pilot.mariadb import sql
from galera_pilot.tls.contexts import mysql_context

BASE = "127.0.0.235"
BENCH_USER = "gp_bench"
TABLES = 8
# A sysbench table's .ibd (c CHAR(120), pad CHAR(60), the k index), fitted on 35,617 rows (16.8 MB) and
# 56,987 rows (21.0 MB): about 10 MB, then 196 bytes a row. Larger tables cost more a row: --size-mb 1024
# gives 633,763 rows a table and +1,275 MB (2026-12-03), about 240 bytes a row.
TABLE_BYTES, ROW_BYTES = 10_000_000, 196
NOT_COPIED = ("galera.cache", "ibtmp1")  # in the datadir, in no backup: left out of the floors' bytes
MB = 1e6

summary: list[tuple[str, str, str, str, str]] = []  # what, wall time, stored, throughput, ratio


def say(text: str) -> None:
    print(text, flush=True)


def mb(count: float) -> str:
    return f"{count / MB:,.1f} MB"


def rate(count: float, seconds: float) -> str:
    return f"{count / MB / seconds:,.1f} MB/s"


def du_bytes(path: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True).stdout.split()[0])


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    started = time.monotonic()
    result = action()
    return time.monotonic() - started, result


def pipeline(*commands: list[str], out: Path | None = None, stdin: Path | None = None,
             tolerated: tuple[int, ...] = (0,)) -> None:
    """commands[0] | commands[1] | ... [< stdin] [> out]; RuntimeError when one exits with an rc not in
    `tolerated` (tar exits 1 when a file changed as it was read: a live datadir)."""
    with contextlib.ExitStack() as files:
        source = files.enter_context(open(stdin, "rb")) if stdin else subprocess.DEVNULL
        sink = files.enter_context(open(out, "wb")) if out else None
        procs: list[subprocess.Popen[bytes]] = []
        for index, command in enumerate(commands):
            last = index == len(commands) - 1
            procs.append(subprocess.Popen(command, stdin=procs[-1].stdout if procs else source,
                                          stdout=sink if last else subprocess.PIPE, stderr=subprocess.PIPE))
            if len(procs) > 1 and procs[-2].stdout is not None:
                procs[-2].stdout.close()  # the next one owns the pipe now: SIGPIPE reaches the writer
        for proc, command in zip(procs, commands, strict=True):
            _out, err = proc.communicate()
            if proc.returncode not in tolerated:
                raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}: {err.decode(errors='replace')}")
        if sink is not None and out is not None and out.is_file():
            sink.flush()
            os.fsync(sink.fileno())


def tar_command(datadir: Path) -> list[str]:
    return ["tar", "-C", str(datadir.parent), *[f"--exclude={name}" for name in NOT_COPIED], "-cf", "-",
            datadir.name]


def members(directory: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(run("list", "--dir", str(directory), "--format", "json"))
    return rows


def backups(directory: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(run("backup", "list", "--dir", str(directory), "--format", "json"))
    return rows


def agent_seconds(line: str) -> str:
    """The copy's own time in `backup create`'s last line ("... 53463875 bytes in 8.8 s, at seqno ...")."""
    found = re.search(r" in ([\d.]+) s", line)
    return f"{found.group(1)} s" if found else "?"


def create_backup(directory: Path, *flags: str) -> tuple[float, dict[str, Any], str]:
    """(wall time of `backup create FLAGS`, the new set from `backup list`, the command's last line)."""
    known = {b["id"] for b in backups(directory)}
    seconds, out = timed(lambda: run("backup", "create", "--dir", str(directory), *flags))
    [made] = [b for b in backups(directory) if b["id"] not in known]
    if made["status"] != "complete":
        raise RuntimeError(f"backup {made['id']} is {made['status']}: {out}")
    return seconds, made, out.strip().splitlines()[-1]


class Committer(threading.Thread):
    """Single-row autocommit INSERTs on one connection to the writer; (start time, latency) of each."""

    def __init__(self, host: str, credentials: Credentials) -> None:
        super().__init__(daemon=True)
        self.host, self.credentials = host, credentials
        self.stop = threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.errors = 0

    def run(self) -> None:
        connection = sql.connect_tcp(self.host, 3306, self.credentials, timeout=30)
        with connection.cursor() as cursor:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    cursor.execute("INSERT INTO bench.lat (at) VALUES (NOW(6))")
                except pymysql.MySQLError:
                    self.errors += 1
                    time.sleep(0.01)
                    continue
                self.samples.append((started, time.monotonic() - started))
        connection.close()


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    """(p50, p99, max) in ms."""
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return 1000 * cuts[49], 1000 * cuts[98], 1000 * max(latencies)


def status(cursor: Any, *names: str) -> dict[str, str]:
    cursor.execute("SHOW GLOBAL STATUS WHERE Variable_name IN (" + ", ".join(["%s"] * len(names)) + ")", names)
    return {str(k).lower(): str(v) for k, v in cursor.fetchall()}


class Watcher(threading.Thread):
    """The backed-up node's wsrep state every 0.1 s: when it changed (seconds from `since`), its longest
    receive queue, and how many flow-control pauses it sent."""

    def __init__(self, host: str, credentials: Credentials, since: float) -> None:
        super().__init__(daemon=True)
        self.host, self.credentials, self.since = host, credentials, since
        self.stop = threading.Event()
        self.states: list[tuple[float, str]] = []
        self.longest_queue = 0
        self.fc_sent = [0, 0]

    def run(self) -> None:
        connection = sql.connect_tcp(self.host, 3306, self.credentials, timeout=30)
        names = ("wsrep_local_state_comment", "wsrep_local_recv_queue", "wsrep_flow_control_sent")
        with connection.cursor() as cursor:
            self.fc_sent[0] = int(status(cursor, *names)["wsrep_flow_control_sent"])
            while not self.stop.wait(0.1):
                now = status(cursor, *names)
                if not self.states or self.states[-1][1] != now["wsrep_local_state_comment"]:
                    self.states.append((time.monotonic() - self.since, now["wsrep_local_state_comment"]))
                self.longest_queue = max(self.longest_queue, int(now["wsrep_local_recv_queue"]))
                self.fc_sent[1] = int(now["wsrep_flow_control_sent"])
        connection.close()


@dataclass
class Latency:
    p50: float
    p99: float
    max: float
    commits: int
    seconds: float
    slowest: list[tuple[float, float]]  # (seconds from the window's start, ms) of the 5 slowest commits
    fc_paused: float  # seconds the writer was paused by flow control in the window
    cpu: float  # the machine's CPU use over the window, % of all cores
    result: Any = None

    def line(self) -> str:
        return (f"p50 {self.p50:.2f} ms, p99 {self.p99:.2f} ms, max {self.max:.1f} ms ({self.commits} commits in "
                f"{self.seconds:.1f} s; flow control paused the writer {self.fc_paused:.2f} s; CPU "
                f"{self.cpu:.0f} % of {psutil.cpu_count()} cores); slowest at "
                + ", ".join(f"t+{at:.1f} s ({ms:.0f} ms)" for at, ms in sorted(self.slowest)))


def commit_latency(host: str, credentials: Credentials, seconds: float | None,
                   during: Callable[[], Any] | None = None) -> Latency:
    """The INSERTs' latency over `seconds`, or over the run of `during` (after 1 s of warm-up)."""
    committer = Committer(host, credentials)
    committer.start()
    time.sleep(1.0)
    probe = sql.connect_tcp(host, 3306, credentials, timeout=30)
    with probe.cursor() as cursor:
        paused_before = int(status(cursor, "wsrep_flow_control_paused_ns")["wsrep_flow_control_paused_ns"])
    psutil.cpu_percent()
    started = time.monotonic()
    result = None
    if during is None:
        assert seconds is not None
        time.sleep(seconds)
    else:
        result = during()
    ended = time.monotonic()
    cpu = psutil.cpu_percent()
    with probe.cursor() as cursor:
        paused_after = int(status(cursor, "wsrep_flow_control_paused_ns")["wsrep_flow_control_paused_ns"])
    probe.close()
    committer.stop.set()
    committer.join(60)
    window = [(at, latency) for at, latency in committer.samples if started <= at <= ended]
    if committer.errors:
        say(f"  ({committer.errors} INSERTs failed)")
    p50, p99, longest = percentiles([latency for _at, latency in window])
    slowest = sorted(window, key=lambda sample: sample[1])[-5:]
    return Latency(p50, p99, longest, len(window), ended - started,
                   [(at - started, 1000 * latency) for at, latency in slowest], (paused_after - paused_before) / 1e9,
                   cpu, result)


def sysbench(directory: Path, host: str, password: str, test: str, command: str, *extra: str) -> str:
    args = ["sysbench", test, f"--mysql-host={host}", "--mysql-port=3306", f"--mysql-user={BENCH_USER}",
            f"--mysql-password={password}", "--mysql-db=sbtest", f"--tables={TABLES}",
            f"--mysql-ssl={'on' if mysql_context() else 'off'}", *extra, command]
    result = subprocess.run(args, capture_output=True, text=True, check=False, cwd=sysbench_workdir(directory))
    if result.returncode != 0:
        raise RuntimeError(f"sysbench {test} {command}: {result.stdout}\n{result.stderr}")
    return result.stdout


def teardown(base: Path, directory: Path) -> None:
    """`down`, then anything still running from the folder (a restore test's scratch server, a tool) is
    killed, as the integration tests' destroy does; the folder goes."""
    if (directory / "cluster.yaml").exists():
        subprocess.run([*CLI, "down", "--dir", str(directory)], capture_output=True, check=False, timeout=400)
    for proc in psutil.process_iter(["cmdline"]):
        if str(base) in " ".join(proc.info["cmdline"] or []):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
    shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="how much the dataset grows the datadir by")
    parser.add_argument("--latency-seconds", type=float, default=20.0,
                        help="the commit-latency baseline's length (the backup's run is the other window)")
    parser.add_argument("--write-seconds", type=int, default=10,
                        help="sysbench oltp_write_only between the full and the incremental backup")
    parser.add_argument("--reload", action=argparse.BooleanOptionalAction, default=True,
                        help="also reload the direct mariadb-dump through node1 (as long as a prepare)")
    args = parser.parse_args()
    rows = max(1000, int((args.size_mb * 2**20 / TABLES - TABLE_BYTES) / ROW_BYTES))
    base = Path(tempfile.mkdtemp(prefix="gp-bench-backup-"))
    base.chmod(0o755)
    directory = base / "c"
    began = time.monotonic()
    try:
        run("up", "--dir", str(directory), "--nodes", "2", "--base-address", BASE, "--no-proxy")
        from_directory(directory).use_tls()  # the folder's CA verifies its servers (a TLS cluster)
        credentials = load_credentials(directory / "credentials.yaml")
        [writer] = [m for m in members(directory) if m["role"] == "writer"]
        [other] = [m for m in members(directory) if m["role"] != "writer"]
        say(f"cluster up: writer {writer['name']} ({writer['address']}), backups on {other['name']}")
        datadir = directory / other["name"] / "data"
        scratch = directory / "floor"  # beside the repository (DIR/backups): the same filesystem
        scratch.mkdir()
        assert os.stat(scratch).st_dev == os.stat(directory).st_dev

        # 1. The dataset.
        password = secrets.token_urlsafe(18)
        admin = sql.connect_tcp(writer["address"], 3306, credentials, timeout=30)
        with admin.cursor() as cursor:  # a throwaway account: sysbench takes its password on the command line
            cursor.execute("CREATE DATABASE IF NOT EXISTS sbtest")
            cursor.execute("CREATE DATABASE IF NOT EXISTS bench")
            cursor.execute("CREATE TABLE IF NOT EXISTS bench.lat (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                           "at DATETIME(6))")
            cursor.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s", (BENCH_USER, password))
            cursor.execute(f"GRANT ALL ON sbtest.* TO '{BENCH_USER}'@'%'")
        empty = du_bytes(datadir)
        seconds, _ = timed(lambda: sysbench(directory, writer["address"], password, "oltp_read_write", "prepare",
                                            f"--table-size={rows}", "--threads=2"))
        time.sleep(3)  # node2 applies the last write-sets
        total = du_bytes(datadir)
        copied = total - sum((datadir / name).stat().st_size for name in NOT_COPIED if (datadir / name).exists())
        tables = sum(path.stat().st_size for path in (datadir / "sbtest").glob("*.ibd"))
        say(f"dataset: {TABLES} tables x {rows:,} rows, prepare {seconds:.1f} s; {other['name']}'s datadir "
            f"(du) {mb(empty)} empty -> {mb(total)} (+{mb(total - empty)}; tables {mb(tables)}, ibdata1 "
            f"{mb((datadir / 'ibdata1').stat().st_size)}); {mb(copied)} without {' and '.join(NOT_COPIED)}")
        summary.append(("dataset: sysbench prepare", f"{seconds:.1f} s", "", rate(total - empty, seconds),
                        f"datadir +{mb(total - empty)}"))

        # 2. Floors, then the backups.
        pipeline(tar_command(datadir), ["cat"], out=Path("/dev/null"), tolerated=(0, 1))  # warm the page cache
        floor_file = scratch / "datadir.tar"
        tar_s, _ = timed(lambda: pipeline(tar_command(datadir), ["cat"], out=floor_file, tolerated=(0, 1)))
        tar_bytes = floor_file.stat().st_size
        floor_file.unlink()
        say(f"tar floor: {tar_s:.2f} s, {mb(tar_bytes)} archive, {rate(copied, tar_s)}")
        summary.append(("tar | cat > repository fs (floor)", f"{tar_s:.2f} s", mb(tar_bytes), rate(copied, tar_s),
                        ""))
        zstd_file = scratch / "datadir.tar.zst"
        zstd_s, _ = timed(lambda: pipeline(tar_command(datadir), ["zstd", "-3", "-T2", "-q", "-c"], out=zstd_file,
                                           tolerated=(0, 1)))
        zstd_bytes = zstd_file.stat().st_size
        zstd_file.unlink()
        say(f"zstd floor: {zstd_s:.2f} s, {mb(zstd_bytes)} stored, {rate(copied, zstd_s)}")
        summary.append(("tar | zstd -3 -T2 (floor)", f"{zstd_s:.2f} s", mb(zstd_bytes), rate(copied, zstd_s), ""))

        full_s, full, line = create_backup(directory)
        say(f"full backup {full['id']} on {full['node']}: {full_s:.2f} s, {mb(full['size_bytes'])} stored, "
            f"{rate(copied, full_s)}; vs the tar floor {tar_s / full_s:.2f}, vs the zstd floor "
            f"{zstd_s / full_s:.2f} ({line})")
        summary.append(("backup create (full)", f"{full_s:.2f} s", mb(full["size_bytes"]), rate(copied, full_s),
                        f"{tar_s / full_s:.2f} of tar, {zstd_s / full_s:.2f} of zstd; the agent's "
                        f"{agent_seconds(line)}"))
        node = sql.connect_tcp(other["address"], 3306, credentials, timeout=30)
        with node.cursor() as cursor:  # what the backup does under its read lock before the copy starts
            check_s, figures = timed(lambda: table_checksums(cursor))
        node.close()
        say(f"CHECKSUM TABLE of the {len(figures)} tables on {other['name']} (no lock): {check_s:.2f} s, "
            f"{rate(copied, check_s)}")
        summary.append((f"CHECKSUM TABLE of {len(figures)} tables, direct", f"{check_s:.2f} s", "",
                        rate(copied, check_s), "a backup runs it under the read lock first"))

        out = sysbench(directory, writer["address"], password, "oltp_write_only", "run", f"--table-size={rows}",
                       "--threads=2", f"--time={args.write_seconds}", "--report-interval=0")
        transactions = next((line.split()[1] for line in out.splitlines() if "transactions:" in line), "?")
        say(f"writes: sysbench oltp_write_only {args.write_seconds} s, {transactions} transactions")
        inc_s, incremental, line = create_backup(directory, "--incremental")
        say(f"incremental {incremental['id']}: {inc_s:.2f} s, {mb(incremental['size_bytes'])} stored "
            f"({incremental['size_bytes'] / full['size_bytes']:.2f} of the full's; MariaDB has no changed-page "
            f"tracking: every page is read) ({line})")
        summary.append((f"backup create --incremental (after {transactions} transactions)", f"{inc_s:.2f} s",
                        mb(incremental["size_bytes"]), rate(copied, inc_s),
                        f"{incremental['size_bytes'] / full['size_bytes']:.2f} of the full's size; the agent's "
                        f"{agent_seconds(line)}"))

        log_s, logical, line = create_backup(directory, "--logical")
        say(f"logical {logical['id']}: {log_s:.2f} s, {mb(logical['size_bytes'])} stored ({line})")
        defaults = base / "client.cnf"
        defaults.touch(mode=0o600)
        defaults.write_text(f"[client]\nuser={credentials.admin_user}\npassword={credentials.admin_password}\n")
        dump_file = scratch / "sbtest.sql.zst"
        node_socket = directory / other["name"] / "run" / "mariadbd.sock"
        dump_s, _ = timed(lambda: pipeline(
            ["mariadb-dump", f"--defaults-extra-file={defaults}", f"--socket={node_socket}", "--single-transaction",
             "--routines", "--events", "--triggers", "--hex-blob", "--default-character-set=utf8mb4", "sbtest"],
            ["zstd", "-3", "-T2", "-q", "-c"], out=dump_file))
        say(f"direct mariadb-dump sbtest | zstd -3 -T2 on {other['name']}'s socket: {dump_s:.2f} s, "
            f"{mb(dump_file.stat().st_size)}; the logical backup took {log_s / dump_s:.2f}x")
        summary.append(("backup create --logical", f"{log_s:.2f} s", mb(logical["size_bytes"]), "",
                        f"{dump_s / log_s:.2f} of the direct dump; the agent's {agent_seconds(line)}"))
        summary.append(("mariadb-dump sbtest | zstd, direct", f"{dump_s:.2f} s", mb(dump_file.stat().st_size), "",
                        ""))
        if args.reload:
            with admin.cursor() as cursor:
                cursor.execute("CREATE DATABASE sbtest_reload")
            writer_socket = directory / writer["name"] / "run" / "mariadbd.sock"
            reload_s, _ = timed(lambda: pipeline(
                ["zstd", "-d", "-q", "-c"],
                ["mariadb", f"--defaults-extra-file={defaults}", f"--socket={writer_socket}", "sbtest_reload"],
                stdin=dump_file))
            say(f"reload of that dump through {writer['name']} (replicated): {reload_s:.2f} s")
            summary.append((f"reload of the dump through {writer['name']}", f"{reload_s:.2f} s", "", "", ""))
            with admin.cursor() as cursor:
                cursor.execute("DROP DATABASE sbtest_reload")
        dump_file.unlink()

        # 3. The writer's commit latency, without a backup and during one.
        baseline = commit_latency(writer["address"], credentials, args.latency_seconds)
        say(f"commit latency on {writer['name']}, no backup: {baseline.line()}")
        watcher = Watcher(other["address"], credentials, time.monotonic() + 1.0)  # + commit_latency's warm-up
        watcher.start()

        def backup_and_catch_up() -> tuple[float, dict[str, Any], str, float]:
            """A full backup, then until the node is Synced again (it applies what it received meanwhile)."""
            seconds, made, line = create_backup(directory)
            returned = time.monotonic() - watcher.since
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:  # back to Synced after a desync (or never left it: 2 s more)
                if watcher.states and watcher.states[-1][1] == "Synced" and (
                        len(watcher.states) > 1 or time.monotonic() - watcher.since > returned + 2):
                    break
                time.sleep(0.1)
            return seconds, made, line, returned

        during = commit_latency(writer["address"], credentials, None, backup_and_catch_up)
        watcher.stop.set()
        watcher.join(10)
        during_s, during_set, line, returned = during.result
        states = ", ".join(f"t{at:+.1f} s {state}" for at, state in watcher.states)
        say(f"commit latency on {writer['name']} during full backup {during_set['id']} on {during_set['node']} "
            f"({during_s:.1f} s, returned at t+{returned:.1f} s; {line}) and until {other['name']} is Synced again: "
            f"{during.line()}; ratio p50 {during.p50 / baseline.p50:.2f}, p99 {during.p99 / baseline.p99:.2f}")
        say(f"  {other['name']} meanwhile: {states}; longest receive queue {watcher.longest_queue}, flow-control "
            f"pauses sent {watcher.fc_sent[1] - watcher.fc_sent[0]}")
        summary.append((f"commit latency, no backup ({baseline.commits} commits)", f"{baseline.seconds:.1f} s", "",
                        "", f"p50 {baseline.p50:.2f} ms, p99 {baseline.p99:.2f} ms, max {baseline.max:.1f} ms"))
        summary.append((f"commit latency during a full backup and catch-up ({during.commits} commits)",
                        f"{during.seconds:.1f} s", "", "",
                        f"p50 {during.p50:.2f} ms, p99 {during.p99:.2f} ms, max {during.max:.1f} ms; "
                        f"x{during.p50 / baseline.p50:.2f} / x{during.p99 / baseline.p99:.2f}; "
                        f"flow control {during.fc_paused:.2f} s"))
        admin.close()

        # 4. Restore test, then the restore.
        verify_s, out = timed(lambda: run("backup", "verify", "--dir", str(directory), full["id"], "--restore-test"))
        say(f"backup verify {full['id']} --restore-test: {verify_s:.2f} s ({out.strip().splitlines()[-1]})")
        summary.append(("backup verify --restore-test (full)", f"{verify_s:.2f} s", "", rate(copied, verify_s), ""))
        restore_s, out = timed(lambda: run("restore", "--dir", str(directory), "--backup", full["id"], "--yes",
                                           "--no-base-backup"))
        after = members(directory)
        state = ", ".join(f"{m['name']} {m['state']}" for m in after)
        count = run("query", "--dir", str(directory), "--member", other["name"],
                    "SELECT COUNT(*) FROM sbtest.sbtest1").strip()
        say(f"restore {full['id']} --no-base-backup: {restore_s:.2f} s ({state}; sbtest1 on {other['name']}: "
            f"{count} rows) ({out.strip().splitlines()[-1]})")
        summary.append(("restore --no-base-backup (whole cluster)", f"{restore_s:.2f} s", "", rate(copied, restore_s),
                        state))

        say(f"\nsummary ({TABLES} tables x {rows:,} rows, {mb(copied)} of datadir copied; whole run "
            f"{time.monotonic() - began:.0f} s)")
        widths = [max(len(row[i]) for row in summary) for i in range(5)]
        for row in [("what", "wall time", "stored", "throughput", "ratio / note"), *summary]:
            say("  " + "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    finally:
        teardown(base, directory)


if __name__ == "__main__":
    main()
