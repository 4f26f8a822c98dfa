"""One soak: a 3-node embedded cluster behind its managed HAProxy, the workloads through its endpoints,
the faults of a seeded schedule one after another, then every fault healed, the final state read from
every node and judged (checker.py), and the report written (report.py).

node3's datadir is a tmpfs of its own (DISK_SIZE), so the fill-disk fault can fill it to the last byte
without touching the machine's disk.

Addresses: nodes 127.0.0.165-167, the proxy 127.0.0.168 (writer :3306, reader :3307), the dashboard
127.0.0.169:8080 (a person can watch the soak live); etcd, with --dcs etcd, on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from galera_pilot.control.target import from_directory
from galera_pilot.credentials import load_credentials
from galera_pilot.embedded.cluster import EmbeddedCluster
from tests.soak import checker, report, schedule
from tests.soak.faults import Faults
from tests.soak.monitor import Monitor
from tests.soak.ops import Recorder
from tests.soak.workloads import ACCOUNTS, INITIAL, AppendClient, BankClient, Client, Reader, connect, create_schema
from tests.unit.dcs_backends import EtcdProcess

log = logging.getLogger("soak")
NODES = {"node1": "127.0.0.165", "node2": "127.0.0.166", "node3": "127.0.0.167"}
PROXY, DASHBOARD = "127.0.0.168", "127.0.0.169"
HISTORY_AROUND = 10.0  # seconds of the agents' history kept around each violation
DISK_NODE, DISK_SIZE = "node3", "2g"  # fill-disk's node and the size of its datadir's filesystem


@dataclass
class SoakSettings:
    duration: float
    seed: int
    dcs: str = "sqlite"
    out: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    bank_clients: int = 4
    append_clients: int = 2
    readers: int = 1
    recovery_bound: float = 120.0  # every node Synced again within this after a fault is healed
    kinds: tuple[str, ...] = schedule.EMBEDDED


def _cli(*args: str, timeout: float = 600) -> str:
    result = subprocess.run([sys.executable, "-m", "galera_pilot", *args], capture_output=True, text=True,
                            timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"galera-pilot {' '.join(args)}: {result.stdout}\n{result.stderr}")
    return result.stdout


def _wait(predicate: Any, timeout: float, interval: float = 0.1) -> float | None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return time.time()
        time.sleep(interval)
    return None


class Soak:
    def __init__(self, settings: SoakSettings) -> None:
        self.settings = settings
        base = Path(tempfile.mkdtemp(prefix="gp-soak-"))
        base.chmod(0o755)
        self.directory = base / "c"
        self.etcd: EtcdProcess | None = None
        self.recorder = Recorder()
        self.windows: list[checker.FaultWindow] = []
        self.violations: list[checker.Violation] = []
        self.clients: list[Client] = []
        self.halts: list[tuple[float, str]] = []  # (when, node): agents restarted after a crash-loop halt
        self.mount: Path | None = None  # DISK_NODE's datadir, while it is a tmpfs of its own

    # ---- the cluster --------------------------------------------------------------------------------
    def start_cluster(self) -> None:
        args = ["up", "--dir", str(self.directory), "--base-address", NODES["node1"], "--writer-bind",
                f"{PROXY}:3306", "--reader-bind", f"{PROXY}:3307", "--dashboard-bind", f"{DASHBOARD}:8080"]
        if self.settings.dcs == "etcd":
            self.etcd = EtcdProcess("127.0.0.1")
            args += ["--dcs", self.etcd.start().url, "--cluster-name", f"soak{self.settings.seed}"]
        if "fill-disk" in self.settings.kinds:  # two nodes, then the third's datadir on its own filesystem
            _cli(*args, "--nodes", "2")
            self.mount_datadir(self.directory / DISK_NODE / "data")
            _cli("up", "--dir", str(self.directory), "--nodes", "3")  # node3 copies the seed into the mount
        else:
            _cli(*args)
        from_directory(self.directory).use_tls()
        self.credentials = load_credentials(self.directory / "credentials.yaml")
        connection = connect(PROXY, 3306, self.credentials)
        try:
            create_schema(connection)
        finally:
            connection.close()
        self.monitor = Monitor({n: (a, 3306) for n, a in NODES.items()}, self.credentials)
        self.faults = Faults(self.directory, dict(NODES), self.etcd,
                             disk_node=DISK_NODE if self.mount is not None else None)

    def mount_datadir(self, path: Path) -> None:
        """A tmpfs at the node's datadir before `up` lays the node out (its seed copy goes into it)."""
        path.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE},uid=mysql,gid=mysql,mode=0750", "tmpfs",
                        str(path)], check=True)
        self.mount = path

    def stop_cluster(self) -> None:
        with contextlib.suppress(Exception):
            self.faults.heal_everything()
        with contextlib.suppress(Exception):
            _cli("down", "--dir", str(self.directory))
        if self.etcd is not None:
            self.etcd.stop()
        if self.mount is not None:  # after `down`: the node's mariadbd no longer holds it
            if subprocess.run(["umount", str(self.mount)], check=False).returncode != 0:
                subprocess.run(["umount", "--lazy", str(self.mount)], check=False)  # a process still in it
            self.mount = None

    # ---- the run ------------------------------------------------------------------------------------
    def start_clients(self) -> None:
        seed = self.settings.seed
        self.clients = [BankClient(f"bank{i}", PROXY, 3306, self.credentials, self.recorder, seed * 100 + i)
                        for i in range(self.settings.bank_clients)]
        self.clients += [AppendClient(f"append{i}", PROXY, 3306, self.credentials, self.recorder, seed * 100 + 50 + i)
                         for i in range(self.settings.append_clients)]
        self.clients += [Reader(f"reader{i}", PROXY, 3307, self.credentials, self.recorder, seed * 100 + 90 + i)
                         for i in range(self.settings.readers)]
        for client in self.clients:
            client.start()

    def stop_clients(self) -> None:
        for client in self.clients:
            client.stop_event.set()
        for client in self.clients:
            client.join(30)

    def one_fault(self, planned: schedule.PlannedFault) -> None:
        time.sleep(planned.pause_before)
        node = self.faults.target(planned.kind, planned.pick)
        start = time.time()
        log.info("fault %s on %s for %.0f s", planned.kind, node, planned.duration)
        heal = self.faults.inject(planned.kind, node)
        overlap_heal = None
        if planned.overlap_agent:
            time.sleep(1.0)
            other = next(n for n in self.faults.nodes if n != node)
            log.info("overlapping: the agent of %s killed too", other)
            overlap_heal = self.faults.inject("kill-agent", other)
        time.sleep(max(0.0, planned.duration - (1.0 if planned.overlap_agent else 0.0)))
        heal()
        if overlap_heal is not None:
            overlap_heal()
        healed = time.time()
        # Samples from half a second on: a kill's effect (the server gone) shows in the next sample.
        recovered = self.wait_recovered(healed + 0.5)
        if recovered is None:
            self.violations.append(checker.Violation(
                "not-recovered", healed, f"{planned.kind} on {node}: not every node Synced within "
                f"{self.settings.recovery_bound:.0f} s of the heal; last seen: {self.monitor.describe()}"))
            self.faults.heal_everything()
            self.wait_recovered(time.time())
        self.windows.append(checker.FaultWindow(planned.kind, node, start, healed, recovered))
        log.info("%s on %s: %s", planned.kind, node, f"recovered in {recovered - start:.1f} s" if recovered
                 else "NOT recovered")

    def wait_recovered(self, after: float) -> float | None:
        """When every node is Synced again (by samples taken after `after`), or None after the bound.
        An agent that halted on a crash loop (5 exits within 300 s: the soak's kills count) is restarted,
        as its sentence tells a person to, and counted: a documented halt, not a violation."""
        deadline = time.time() + self.settings.recovery_bound
        next_check = 0.0
        while time.time() < deadline:
            if self.monitor.all_synced(after=after):
                return time.time()
            if time.time() >= next_check:
                next_check = time.time() + 2.0
                for name in self.faults.crash_looped():
                    log.info("%s's agent halted on a crash loop; restarting it, as its sentence asks", name)
                    self.halts.append((time.time(), name))
                    self.faults.restart_agent(name)
            time.sleep(0.1)
        return None

    def run(self) -> dict[str, Any]:
        started = time.time()
        try:
            self.start_cluster()  # in the try: a failed `up` leaves nothing running (nor mounted) either
            self.monitor.start()
            if _wait(self.monitor.all_synced, 60) is None:
                raise RuntimeError("the cluster is not Synced before the soak")
            self.start_clients()
            began = time.time()
            time.sleep(3)  # a baseline before the first fault
            for planned in schedule.plan(self.settings.seed, 10_000, self.settings.kinds):
                if time.time() - began >= self.settings.duration:
                    break
                self.one_fault(planned)
            time.sleep(3)  # a calm end: the clients write through a whole cluster once more
            self.stop_clients()
            ended = time.time()
            if self.wait_recovered(ended) is None:
                self.violations.append(checker.Violation("not-recovered", ended, "not every node Synced at the end; "
                                                         f"last seen: {self.monitor.describe()}"))
            self.monitor.stop()
            result = self.judge(began, ended, started)
        finally:
            with contextlib.suppress(Exception):
                self.monitor.stop()
            self.stop_clients()
            self.stop_cluster()
        if result["passed"]:
            shutil.rmtree(self.directory.parent, ignore_errors=True)
        else:  # the nodes' logs, for whoever looks into the violation
            result["kept"] = str(self.directory)
        return result

    # ---- the judgement ------------------------------------------------------------------------------
    def final_state(self) -> tuple[dict[str, checker.BankState], dict[str, dict[int, str]], dict[str, Any]]:
        """Each node's bank, lists and table checksums, once every node that answers has applied the same
        seqno. A node that does not answer is left out (and is a violation of its own, below)."""
        def read(address: str, statements: list[str]) -> list[list[tuple[Any, ...]]] | None:
            try:
                connection = connect(address, 3306, self.credentials)
            except Exception:
                return None
            try:
                with connection.cursor() as cursor:
                    results = []
                    for statement in statements:
                        cursor.execute(statement)
                        results.append(list(cursor.fetchall()))
                    return results
            except Exception:
                return None
            finally:
                connection.close()

        def committed() -> set[str]:
            seen = [read(a, ["SHOW GLOBAL STATUS LIKE 'wsrep_last_committed'"]) for a in NODES.values()]
            return {str(r[0][0][1]) for r in seen if r and r[0]}

        _wait(lambda: len(committed()) == 1, 60, 0.5)
        banks, lists, checksums = {}, {}, {}
        for name, address in NODES.items():
            results = read(address, ["SELECT id, balance FROM soak.accounts",
                                     "SELECT id, src, dst, amount FROM soak.transfers", "SELECT id, v FROM soak.lists",
                                     "CHECKSUM TABLE soak.accounts, soak.transfers, soak.lists"])
            if results is None:
                self.violations.append(checker.Violation("unreadable", time.time(), f"{name} did not answer at "
                                                         f"the end; last seen: {self.monitor.describe()}"))
                continue
            balances_rows, transfer_rows, list_rows, checksum_rows = results
            banks[name] = checker.BankState({int(a): int(b) for a, b in balances_rows},
                                            {str(k): (int(x), int(y), int(m)) for k, x, y, m in transfer_rows})
            lists[name] = {int(k): str(v) for k, v in list_rows}
            checksums[name] = {str(t): int(c) for t, c in checksum_rows}
        return banks, lists, checksums

    def judge(self, began: float, ended: float, started: float) -> dict[str, Any]:
        ops = self.recorder.snapshot()
        banks, lists, checksums = self.final_state()
        bank = checker.check_bank(ops, banks, ACCOUNTS, INITIAL, ended)
        append = checker.check_append(ops, lists, ended)
        violations = [*self.violations, *bank.violations, *append.violations,
                      *checker.split_brain(self.monitor.snapshot())]
        if len({tuple(sorted(c.items())) for c in checksums.values()}) > 1:
            violations.append(checker.Violation("checksum", ended, f"CHECKSUM TABLE differs: {checksums}"))
        history = EmbeddedCluster(self.directory).snapshot().history
        result = {
            "seed": self.settings.seed, "dcs": self.settings.dcs, "duration": round(ended - began, 1),
            "faults": len(self.windows), "passed": not violations,
            "violations": [{**v.to_dict(), "history": [
                {"at": e.at, "member": e.member, "action": e.action, "reason": e.reason} for e in history
                if abs(e.at - v.at) <= HISTORY_AROUND]} for v in violations],
            "bank": bank.figures, "append": append.figures, "stale_reads": checker.stale_reads(ops),
            "per_fault": checker.unavailability(self.windows, ops),
            "crash_loop_halts": [{"at": at, "node": name} for at, name in self.halts],
            "windows": [asdict(w) for w in self.windows], "checksums": checksums,
            "wall_seconds": round(time.time() - started, 1),
        }
        out = self.settings.out
        out.mkdir(parents=True, exist_ok=True)
        name = f"soak-{self.settings.dcs}-seed{self.settings.seed}"
        report.write(out / f"{name}.json", result)
        report.plot(out / f"{name}.png", ops, self.windows, began, ended,
                    f"soak seed {self.settings.seed}, {self.settings.dcs}: {len(self.windows)} faults, "
                    f"{len(violations)} violations")
        result["report"] = str(out / f"{name}.json")
        return result


def run_soak(settings: SoakSettings) -> dict[str, Any]:
    if settings.dcs == "etcd":
        settings.kinds = tuple(dict.fromkeys((*settings.kinds, *schedule.ETCD_ONLY)))
    return Soak(settings).run()

