"""Integration fixtures: real mariadbd + Galera processes on loopback addresses, driven by the real CLI.

Prerequisites (root, Debian's mariadb-server and galera-4) are asserted, not skipped: a skipped
integration test would count as passing and hide a broken setup.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

CLI = [sys.executable, "-m", "galera_pilot"]


@pytest.fixture(scope="session", autouse=True)
def _prerequisites() -> None:
    assert os.geteuid() == 0, "integration tests start mariadbd as the mysql user and need root"
    for path in ("/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/lib/galera/libgalera_smm.so"):
        assert Path(path).exists(), f"{path} missing: run scripts/setup.sh (installs mariadb-server, galera-4)"


def cli(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"galera-pilot {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def members(directory: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(cli("list", "--dir", str(directory), "--format", "json").stdout)}


def query(directory: Path, sql: str, member: str | None = None) -> list[list[str]]:
    args = ["query", "--dir", str(directory)]
    if member:
        args += ["--member", member]
    out = cli(*args, sql).stdout
    return [line.split("\t") for line in out.splitlines()]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as error:  # the condition may be unreadable while things move
            last_error = error
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last error: {last_error!r})")


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def mariadbd_pid(directory: Path, node: str) -> int | None:
    try:
        pid = int((directory / node / "run" / "mariadbd.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


def processes_under(directory: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(directory) in cmdline:
            found.append(proc)
    return found


def destroy(directory: Path) -> None:
    """Stop a test cluster whatever state it is in, and remove its folder."""
    if (directory / "cluster.yaml").exists():
        cli("down", "--dir", str(directory), check=False, timeout=400)
    for proc in processes_under(directory):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    keep = os.environ.get("GP_KEEP_LOGS")  # debugging aid: keep every node's logs before the folder goes
    if keep:
        for log_dir in directory.glob("node*/log"):
            shutil.copytree(log_dir, Path(keep) / directory.parent.name / log_dir.parent.name, dirs_exist_ok=True)
    shutil.rmtree(directory, ignore_errors=True)
    if directory.parent.name.startswith("gp-test-"):
        shutil.rmtree(directory.parent, ignore_errors=True)


def new_cluster_path() -> Path:
    """A fresh folder path the mysql user can traverse (pytest's tmp_path is 0700 root-only)."""
    base = Path(tempfile.mkdtemp(prefix="gp-test-"))
    base.chmod(0o755)
    return base / "c"


@pytest.fixture
def cluster_dir() -> Iterator[Path]:
    directory = new_cluster_path()
    yield directory
    destroy(directory)
