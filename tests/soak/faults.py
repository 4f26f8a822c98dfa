"""The soak's faults against an embedded cluster folder (thin adapter): each injects, and returns what
heals it. A kill needs no healing (the agents restart mariadbd themselves); a stopped server gets
SIGCONT, a partition its iptables chain flushed, a killed agent or a full outage `up` again, a filled
disk its filler file removed, a paused or killed etcd SIGCONT or a start on its data."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from galera_pilot.embedded.cluster import EmbeddedCluster
from tests.integration.partitions import iptables, remove_chain
from tests.unit.dcs_backends import EtcdProcess

log = logging.getLogger("soak")
CHAIN = "gp-soak"
FILLER = "soak-filler"  # the file that fills a datadir's filesystem (fill-disk), in the datadir itself
Heal = Callable[[], None]


def _nothing() -> None:
    return None


@dataclass
class Faults:
    directory: Path
    addresses: dict[str, str]  # node -> address
    etcd: EtcdProcess | None = None
    up_timeout: float = 300.0
    disk_node: str | None = None  # the node whose datadir is a filesystem of its own (fill-disk fills it)

    def __post_init__(self) -> None:
        self.cluster = EmbeddedCluster(self.directory)
        remove_chain(CHAIN)  # a previous run killed mid-fault

    @property
    def nodes(self) -> list[str]:
        return sorted(self.addresses)

    def writer(self) -> str | None:
        with contextlib.suppress(Exception):
            return self.cluster.snapshot().writer
        return None

    def _pid(self, node: str, what: str) -> int | None:
        path = self.directory / node / "run" / f"{what}.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(path.read_text())
            return pid if psutil.pid_exists(pid) else None
        return None

    def target(self, kind: str, pick: int) -> str:
        """The node a fault hits: the writer for *-writer, a non-writer for *-node, any node otherwise."""
        if kind.endswith("-dcs"):
            return "etcd"
        if kind == "fill-disk":
            assert self.disk_node is not None, "fill-disk needs a node whose datadir is its own filesystem"
            return self.disk_node
        writer = self.writer()
        if kind.endswith("-writer"):
            return writer or self.nodes[pick % len(self.nodes)]
        others = [n for n in self.nodes if n != writer] if kind.endswith("-node") else self.nodes
        return others[pick % len(others)]

    def inject(self, kind: str, node: str) -> Heal:
        if kind in ("kill-node", "kill-writer"):
            self._signal(node, "mariadbd", signal.SIGKILL)
            return _nothing
        if kind == "stop-node":
            self._signal(node, "mariadbd", signal.SIGSTOP)
            pid = self._pid(node, "mariadbd")
            return lambda: self._continue(pid)
        if kind == "kill-agent":
            self._signal(node, "agent", signal.SIGKILL)
            return self.up
        if kind in ("partition-node", "partition-writer"):
            self._partition(node)
            return lambda: iptables("-F", CHAIN, check=False)
        if kind == "full-outage":
            for name in self.nodes:
                self._signal(name, "agent", signal.SIGKILL)
            for name in self.nodes:
                self._signal(name, "mariadbd", signal.SIGKILL)
            return self.up
        if kind == "fill-disk":
            self._fill(node)
            return lambda: self._unfill(node)
        if kind == "pause-dcs":
            assert self.etcd is not None, "pause-dcs needs --dcs etcd"
            self.etcd.pause()
            return self.etcd.resume
        if kind == "kill-dcs":
            assert self.etcd is not None, "kill-dcs needs --dcs etcd"
            self.etcd.kill()
            return self._start_etcd
        raise ValueError(f"unknown fault {kind!r}")

    def crash_looped(self) -> list[str]:
        """Nodes whose agent halted on a crash loop (its activity says so in the DCS)."""
        with contextlib.suppress(Exception):
            members = self.cluster.snapshot().members
            return [n for n in self.nodes if n in members and "crash loop" in members[n].activity]
        return []

    def restart_agent(self, node: str) -> None:
        """What the halt's sentence asks of a person: restart that agent (SIGTERM, then `up`)."""
        pid = self._pid(node, "agent")
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            with contextlib.suppress(psutil.NoSuchProcess, psutil.TimeoutExpired):
                psutil.Process(pid).wait(60)
        self.up()

    def _start_etcd(self) -> None:
        assert self.etcd is not None
        self.etcd.start()  # on the data it had: the cluster's keys are all there

    def _signal(self, node: str, what: str, signum: int) -> None:
        pid = self._pid(node, what)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    @staticmethod
    def _continue(pid: int | None) -> None:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def _filler(self, node: str) -> Path:
        return self.directory / node / "data" / FILLER

    def _fill(self, node: str) -> None:
        """Every free byte of the datadir's filesystem taken by one file: the node's next write that needs
        space (a tablespace that grows, a new log file) fails with ENOSPC, as on a disk that filled."""
        path = self._filler(node)
        filesystem = os.statvfs(path.parent)
        free = filesystem.f_bavail * filesystem.f_frsize
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with contextlib.suppress(OSError):
                os.posix_fallocate(descriptor, 0, free)
            os.lseek(descriptor, 0, os.SEEK_END)
            block = b"\0" * (1 << 20)
            while True:  # whatever fallocate left (its rounding, a block freed meanwhile): written to the end
                try:
                    os.write(descriptor, block)
                except OSError as error:
                    if error.errno != errno.ENOSPC:
                        raise
                    if len(block) == 1:
                        break
                    block = block[:len(block) // 2]
        finally:
            os.close(descriptor)
        log.info("%s's datadir filesystem filled (%d MB taken by %s)", node, path.stat().st_size >> 20, path)

    def _unfill(self, node: str) -> None:
        self._filler(node).unlink(missing_ok=True)

    def _partition(self, node: str) -> None:
        remove_chain(CHAIN)
        iptables("-N", CHAIN)
        iptables("-I", "INPUT", "-j", CHAIN)
        for other, address in self.addresses.items():
            if other != node:
                iptables("-A", CHAIN, "-s", self.addresses[node], "-d", address, "-j", "DROP")
                iptables("-A", CHAIN, "-s", address, "-d", self.addresses[node], "-j", "DROP")

    def up(self) -> None:
        """`up` again: starts the agents that are not running (it waits for every node to be Synced).
        Logged with how long it took and, when it failed, what it said: a slow heal is found here."""
        started = time.time()
        result = subprocess.run([sys.executable, "-m", "galera_pilot", "up", "--dir", str(self.directory),
                                 "--timeout", str(self.up_timeout)], capture_output=True, text=True, check=False,
                                timeout=self.up_timeout + 60)
        said = "" if result.returncode == 0 else f": {(result.stderr or result.stdout).strip()[-300:]}"
        log.info("up: exit %d after %.1f s%s", result.returncode, time.time() - started, said)

    def heal_everything(self) -> None:
        """Whatever a fault left: SIGCONT to every server, the partition chain gone, every agent running."""
        for node in self.nodes:
            self._continue(self._pid(node, "mariadbd"))
        if self.etcd is not None:
            with contextlib.suppress(Exception):
                self.etcd.resume()
        remove_chain(CHAIN)
        if self.disk_node is not None:
            self._unfill(self.disk_node)
        if any(self._pid(node, "agent") is None for node in self.nodes):
            self.up()
