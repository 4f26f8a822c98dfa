"""Integration fixtures: real mariadbd + Galera processes on loopback addresses, driven by the real CLI.

Prerequisites (root, Debian's mariadb-server and galera-4) are asserted, not skipped: a skipped
integration test would count as passing and hide a broken setup.

Environment:
  DCS=sqlite|etcd           the store `up` gives new clusters (default sqlite). With etcd, one real
                            single-member etcd serves the whole session over TLS with client
                            certificates from the session's PKI (etcds://), and every new cluster gets
                            a unique --cluster-name, so no test sees another's keys.
  GP_TEST_ETCD_HOST         address etcd listens on (random free ports), default 127.0.0.1.
  GP_TEST_ADDRESS_BASE      moves every `up --base-address` into 36 addresses from this one (e.g.
                            127.0.0.140), so a second checkout's tests can run beside the first's.

TLS: every test cluster runs with TLS (the default), its certificates issued by one PKI made for the
session (`up --pki-dir`), so this process verifies every cluster's agents and servers with one CA:
`agent_url` gives https:// URLs, `api()` and `sql.connect_tcp` verify with it. A test that wants `up`
to make its own PKI in DIR/pki passes `--own-pki`; one that wants plaintext passes `--no-tls`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from galera_pilot.cluster import Cluster
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.tls import http
from galera_pilot.tls.authority import Authority, init_authority
from galera_pilot.tls.contexts import client_context
from tests.integration.agents import agent_url, http_json, http_status  # noqa: F401  (re-exported to tests)
from tests.unit.dcs_backends import EtcdProcess

CLI = [sys.executable, "-m", "galera_pilot"]
DCS = os.environ.get("DCS", "sqlite")
ADDRESS_BASE = os.environ.get("GP_TEST_ADDRESS_BASE")
ADDRESS_SPAN = 36
_etcd_url: str | None = None
_cluster_numbers = itertools.count(1)
_session_pki: Authority | None = None


@pytest.fixture(scope="session", autouse=True)
def _test_pki() -> Iterator[Authority]:
    """One PKI for every cluster of the session; this process's API and MySQL clients verify with it."""
    global _session_pki
    base = Path(tempfile.mkdtemp(prefix="gp-pki-"))
    authority = init_authority(base / "pki", "tests")
    http.use_for_process(client_context(authority.ca_file), authority.api_token())
    _session_pki = authority
    try:
        yield authority
    finally:
        _session_pki = None
        http.use_for_process(None)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _dcs_backend(_test_pki: Authority) -> Iterator[None]:
    """With DCS=etcd: one real etcd for the session, torn down even when tests fail."""
    global _etcd_url
    assert DCS in ("sqlite", "etcd"), f"DCS={DCS!r}: expected sqlite or etcd"
    if DCS == "sqlite":
        yield
        return
    host = os.environ.get("GP_TEST_ETCD_HOST", "127.0.0.1")
    # etcd over TLS with client certificates from the session's PKI: agents present their bundles, the
    # CLI its folder's operator certificate (an etcds:// URL without options of its own).
    assert _session_pki is not None
    etcd = EtcdProcess(host, tls=_session_pki.issue_bundle("etcd", [host], out=_session_pki.dir / "etcd-tls"))
    try:
        _etcd_url = etcd.start().url
        yield
    finally:
        _etcd_url = None
        etcd.stop()


def test_address(default: str) -> str:
    """The address a test asked for, moved into GP_TEST_ADDRESS_BASE's range when that is set."""
    try:
        last_octet = ipaddress.IPv4Address(default).packed[3]
    except ValueError:
        return default  # a test of bad input: pass it on untouched
    if not ADDRESS_BASE:
        return default
    offset = (last_octet - 2) % ADDRESS_SPAN
    return str(ipaddress.ip_address(ADDRESS_BASE) + offset)


test_address.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def test_dcs(sqlite_dir: Path) -> tuple[str, str]:
    """(DCS URL, cluster name) for a test that talks to a store directly: a SQLite file in sqlite_dir, or
    the session's etcd with a cluster name no other test uses."""
    if DCS == "sqlite":
        return f"sqlite://{sqlite_dir}/dcs.sqlite", "proxytest"
    assert _etcd_url is not None and _session_pki is not None, "DCS=etcd but no etcd is running"
    operator = _session_pki.issued_dir("operator")
    if not operator.exists():
        _session_pki.issue_bundle("operator", ["127.0.0.1"], out=operator)
    # The test's own certificate, in the URL: the store is opened directly, by no agent with a bundle.
    files = f"cacert={operator / 'ca.pem'}&cert={operator / 'node.pem'}&key={operator / 'node.key'}"
    return f"{_etcd_url}?{files}", f"gp{os.getpid()}x{next(_cluster_numbers)}"


test_dcs.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


UP_TIMEOUT = 420  # seconds `up` waits for Synced in a test, unless the test says


def _up_arguments(args: list[str]) -> list[str]:
    """`up` as the test wrote it, plus what the environment asks for: the etcd DCS and a unique cluster
    name for a new folder, and the moved base address. Without proxy options of its own a test's cluster
    runs no proxy: the default endpoints (127.0.0.1:3306/3307) would be shared by every test cluster and
    by anything else on the machine; the routing tests give their own binds. Nor a dashboard, for the same
    reason (test_dashboard gives its own bind)."""
    if not {"--proxy", "--no-proxy", "--writer-bind", "--reader-bind"} & set(args):
        args.append("--no-proxy")
    if not {"--dashboard", "--no-dashboard", "--dashboard-bind"} & set(args):
        args.append("--no-dashboard")  # its default bind, 127.0.0.1:8080, would be shared too
    if "--base-address" in args:
        index = args.index("--base-address") + 1
        args[index] = test_address(args[index])
    elif ADDRESS_BASE:
        args += ["--base-address", test_address("127.0.0.2")]
    directory = Path(args[args.index("--dir") + 1])
    if "--own-pki" in args:
        args.remove("--own-pki")
    elif "--no-tls" not in args and "--pki-dir" not in args and _session_pki is not None:
        args += ["--pki-dir", str(_session_pki.dir)]
    if DCS == "etcd" and "--dcs" not in args and not (directory / "cluster.yaml").exists():
        assert _etcd_url is not None, "DCS=etcd but no etcd is running"
        args += ["--dcs", _etcd_url, "--cluster-name", f"gp{os.getpid()}x{next(_cluster_numbers)}"]
    if "--timeout" not in args:
        # Within cli()'s own 600 s: a wait that runs out then says which node waits for what, where the
        # subprocess's timeout would kill `up` and keep none of it.
        args += ["--timeout", str(UP_TIMEOUT)]
    return args


@pytest.fixture(scope="session", autouse=True)
def _prerequisites() -> None:
    assert os.geteuid() == 0, "integration tests start mariadbd as the mysql user and need root"
    for path in ("/usr/sbin/mariadbd", "/usr/bin/mariadb-install-db", "/usr/lib/galera/libgalera_smm.so"):
        assert Path(path).exists(), f"{path} missing: run scripts/setup.sh (installs mariadb-server, galera-4)"


def cli(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    if args and args[0] == "up":
        args = tuple(_up_arguments(list(args)))
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"galera-pilot {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def up_behind_proxy(directory: Path, base: str, proxy: str, writer_port: int = 3306, reader_port: int = 3307) -> None:
    """`up` a 3-node cluster from `base` with its managed HAProxy on `proxy`; all three must be Synced."""
    result = cli("up", "--dir", str(directory), "--base-address", base,
                 "--writer-bind", f"{proxy}:{writer_port}", "--reader-bind", f"{proxy}:{reader_port}")
    assert "3 nodes Synced" in result.stdout, result.stdout


def dcs_view(directory: Path) -> Cluster:
    """One read of the folder's DCS."""
    return EmbeddedCluster(directory).snapshot()


def members(directory: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(cli("list", "--dir", str(directory), "--format", "json").stdout)}


def query(directory: Path, sql: str, member: str | None = None) -> list[list[str]]:
    args = ["query", "--dir", str(directory)]
    if member:
        args += ["--member", member]
    out = cli(*args, sql).stdout
    return [line.split("\t") for line in out.splitlines()]


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
        for log_dir in [*directory.glob("node*/log"), *directory.glob("arbitrator*/log"), *directory.glob("proxy")]:
            shutil.copytree(log_dir, Path(keep) / directory.parent.name / log_dir.parent.name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.sock"))
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
