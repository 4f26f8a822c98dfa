"""The managed HAProxy of a cluster folder: DIR/proxy.yaml, its process (`galera-pilot proxy`) and the
wait until clients reach the writer through it."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import yaml

from galera_pilot.cluster import Cluster
from galera_pilot.credentials import Credentials
from galera_pilot.embedded.processes import running_pid
from galera_pilot.errors import PilotError
from galera_pilot.files import write_private
from galera_pilot.mariadb import sql
from galera_pilot.mariadb.process import tail
from galera_pilot.proxy.haproxy_config import parse_bind
from galera_pilot.proxy.haproxy_process import HaproxyProcess
from galera_pilot.proxy.manager import ProxyConfig, load_proxy_config, parse_proxy_config

PROXY_CONFIG = "proxy.yaml"
PROXY_DIR = "proxy"
DEFAULT_WRITER_BIND = "127.0.0.1:3306"
DEFAULT_READER_BIND = "127.0.0.1:3307"


def _node_behind(host: str, port: int, credentials: Credentials) -> str:
    """The wsrep_node_name a new connection to host:port ("" = this host) reaches."""
    connection = sql.connect_tcp(host or "127.0.0.1", port, credentials, timeout=1.0)
    try:
        return sql.node_name(connection)
    finally:
        connection.close()


class EmbeddedProxy:
    """The proxy part of a cluster folder; the folder's credentials and DCS are asked through callables so
    that this class needs nothing else of the cluster."""

    def __init__(self, cluster_dir: Path, cluster_name: str, dcs_url: str,
                 credentials: Callable[[], Credentials], snapshot: Callable[[], Cluster], tls: bool = False) -> None:
        self.cluster_dir = cluster_dir
        self.tls = tls
        self.cluster_name = cluster_name
        self.dcs_url = dcs_url
        self._credentials = credentials
        self._snapshot = snapshot

    @property
    def config_path(self) -> Path:
        return self.cluster_dir / PROXY_CONFIG

    @property
    def run_dir(self) -> Path:
        return self.cluster_dir / PROXY_DIR

    @property
    def tls_bundle(self) -> Path:
        return self.run_dir / "tls"

    def config(self) -> ProxyConfig | None:
        """The proxy's configuration, or None when this cluster has no managed proxy."""
        if not self.config_path.exists():
            return None
        return load_proxy_config(self.config_path)

    def planned_binds(self, writer_bind: str | None, reader_bind: str | None) -> tuple[str, str]:
        """The binds `configure` will use: given binds win, else those already configured, else the defaults."""
        current = self.config()
        return (writer_bind or (current.writer_bind if current else DEFAULT_WRITER_BIND),
                reader_bind or (current.reader_bind if current else DEFAULT_READER_BIND))

    def configure(self, writer_bind: str | None, reader_bind: str | None, mode: str | None = None) -> ProxyConfig:
        """Write DIR/proxy.yaml with the planned binds (see planned_binds)."""
        current = self.config()
        writer_bind, reader_bind = self.planned_binds(writer_bind, reader_bind)
        data = {
            **(current.model_dump(mode="json") if current else {}),  # keeps fields set by hand (nbthread, ...)
            "cluster_name": self.cluster_name,
            "dcs": self.dcs_url,
            "writer_bind": writer_bind,
            "reader_bind": reader_bind,
            "run_dir": str(self.run_dir),
            "mode": mode or (current.mode if current else "haproxy"),
            "tls": {"enabled": self.tls, "bundle": str(self.tls_bundle) if self.tls else None},
        }
        config = parse_proxy_config(data, str(self.config_path))
        if current != config:
            # 0600: the dcs URL may carry an etcd password.
            write_private(self.config_path, yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        return config

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "manager.pid"

    def pid(self) -> int | None:
        """The running proxy manager of this cluster (its command line names DIR/proxy.yaml)."""
        return running_pid(self.pid_file, str(self.config_path))

    def check_binds(self, config: ProxyConfig) -> None:
        """Fail now, with the owner named, if something else listens on an endpoint's address (an
        HAProxy of this cluster left running by a dead manager is adopted, not refused)."""
        if config.mode == "kernel":
            return  # nothing listens: the kernel rewrites connections to the endpoint addresses
        if HaproxyProcess(self.run_dir / "haproxy.cfg", self.run_dir).is_running():
            return
        taken = HaproxyProcess._taken([parse_bind(config.writer_bind), parse_bind(config.reader_bind)])
        if taken:
            raise PilotError(f"cannot start the proxy: {'; '.join(taken)} (choose --writer-bind/--reader-bind, "
                             "or --no-proxy)")

    def spawn(self) -> subprocess.Popen[bytes]:
        """Start `galera-pilot proxy -c DIR/proxy.yaml` in its own session, like an agent."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.run_dir / "proxy.log", "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "galera_pilot", "proxy", "-c", str(self.config_path)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                close_fds=True,
            )
        self.pid_file.write_text(f"{proc.pid}\n")
        return proc

    def wait_routed(self, timeout: float = 60.0) -> str:
        """Wait until a query through the writer endpoint reaches the DCS's writer, and one through the
        reader endpoint reaches some node (HAProxy offers a server only after its first check passed);
        return the writer's name."""
        config = self.config()
        if config is None:
            raise PilotError("this cluster has no managed proxy")
        host, port = parse_bind(config.writer_bind)
        reader_host, reader_port = parse_bind(config.reader_bind)
        credentials = self._credentials()
        deadline = time.monotonic() + timeout
        last = "no writer elected yet"
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise PilotError(f"the proxy exited; last lines of {self.run_dir / 'proxy.log'}:\n"
                                 f"{tail(self.run_dir / 'proxy.log', 8)}")
            writer = self._snapshot().writer
            if writer is not None:
                try:
                    reached = _node_behind(host, port, credentials)
                except Exception as error:
                    last = f"the writer endpoint {config.writer_bind} does not answer yet: {error}"
                    reached = None
                if reached is not None and reached != writer:
                    last = f"the writer endpoint reached {reached}, the writer is {writer}"
                elif reached == writer:
                    try:
                        _node_behind(reader_host, reader_port, credentials)
                        return writer
                    except Exception as error:
                        last = f"the reader endpoint {config.reader_bind} does not answer yet: {error}"
            time.sleep(0.1)
        raise PilotError(f"clients cannot reach the writer through the proxy after {timeout:.0f} s: {last}")

    def stop(self, timeout: float = 30.0) -> bool:
        """SIGTERM the proxy manager (it stops HAProxy, or removes its nftables table) and wait for it to
        exit; then remove what a manager that could not (killed, or stopped while still starting, before
        its handlers were set) left behind. Whether anything was stopped."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.pid() is not None:
                if time.monotonic() > deadline:
                    raise PilotError(f"the proxy manager (pid {pid}) did not stop within {timeout:.0f} s")
                time.sleep(0.05)
            self.pid_file.unlink(missing_ok=True)
        return self._remove_leftovers() or pid is not None

    def _remove_leftovers(self) -> bool:
        config = self.config()
        if config is None:
            return False
        if config.mode == "kernel":
            from galera_pilot.proxy.kernel import remove_table
            from galera_pilot.proxy.kernel_rules import table_name

            return remove_table(table_name(config.cluster_name, parse_bind(config.writer_bind)[1]))
        haproxy = HaproxyProcess(config.run_dir / "haproxy.cfg", config.run_dir)
        if not haproxy.is_running():
            return False
        haproxy.stop()
        return True
