"""`ProxyManager`: keep HAProxy's member list in step with the DCS; `run_proxy`: its foreground loop.

Every cycle reads one DCS snapshot, renders the configuration for every member the cluster knows (the
roster, i.e. every node that ever joined, plus every live member), and reloads HAProxy only when that
text differs from the one running. Health is not part of the text: HAProxy asks each node's agent
itself, several times a second, so a writer change needs no reload at all and reaches clients within
a few hundred milliseconds, while the manager's one-second cycle only matters when nodes are added or
removed. Like the agent, each cycle yields one sentence saying what happened.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from galera_pilot.config import NAME_PATTERN, load_model, parse_model
from galera_pilot.dcs import get_dcs
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import ConfigError, DCSError, PilotError
from galera_pilot.proxy.check_tls import ProxyTls, prepare_check_tls, record_loaded
from galera_pilot.proxy.haproxy_config import (
    ProxySettings,
    check_run_dir,
    parse_bind,
    render_haproxy_config,
)
from galera_pilot.proxy.haproxy_process import ConfigRefused, HaproxyProcess
from galera_pilot.proxy.membership import backends_from
from galera_pilot.tls.bundle import bundle_files, bundle_signature, load_bundle

log = logging.getLogger("galera_pilot.proxy")
CONFIG_FILE = "haproxy.cfg"
LOOP_WAIT = 1.0
OLD_WORKER_WAIT = 0.2
REPEAT_LOG_EVERY = 30.0


class ProxyManager:
    """Renders the configuration from the DCS and starts or reloads HAProxy when it changes."""

    def __init__(self, dcs: DCS, settings: ProxySettings, run_dir: Path, process: HaproxyProcess | None = None,
                 binary: str = "haproxy") -> None:
        self.dcs = dcs
        self.settings = settings
        self.run_dir = Path(run_dir).absolute()
        self.process = process or HaproxyProcess(self.run_dir / CONFIG_FILE, self.run_dir, binary)
        self._applied: str | None = None  # the text the running HAProxy serves
        self._refused: str | None = None  # the last text HAProxy refused: not retried until it changes
        self._old_workers = False  # did the last cycle see workers replaced by a reload still running?
        # New check certificates on disk that the running HAProxy has not loaded yet. Kept apart from
        # the text: a certificate change leaves the text as it was, so a refused or failed reload must
        # not let the next cycle read "unchanged" and claim the new certificates are served.
        self._certificates_pending = False

    def _running_text(self) -> str | None:
        """What the running HAProxy serves: ours, or, for an adopted one, its configuration file."""
        if self._applied is None:
            try:
                self._applied = self.process.config_path.read_text()
            except OSError:
                return None
        return self._applied

    def run_cycle(self) -> str:
        """One look at the DCS, at most one start or reload of HAProxy; returns what happened.

        Then sessions that workers replaced by a reload still hold to servers now DOWN are closed
        (see `HaproxyProcess.cut_stale_sessions`), and said so in the sentence.
        """
        sentence = self._apply()
        if not self.process.is_running():
            self._old_workers = False
            return sentence
        try:
            closed = self.process.cut_stale_sessions()
            state = self.process.show_proc()
        except PilotError as error:
            return f"{sentence}; could not check sessions of old haproxy workers: {error}"
        self._old_workers = bool(state and state.old_workers)
        if closed:
            counts = {name: closed.count(name) for name in sorted(set(closed))}
            listed = ", ".join(f"{name} ({n})" for name, n in counts.items())
            sentence += f"; closed sessions that old workers held to servers now DOWN: {listed}"
        return sentence

    def next_wait(self) -> float:
        """Seconds until the next cycle: short while old workers may hold sessions that must be cut,
        so a writer change reaches them within a fraction of a second too."""
        return OLD_WORKER_WAIT if self._old_workers else LOOP_WAIT

    def _apply(self) -> str:
        try:
            cluster = self.dcs.snapshot(with_history=False)
        except DCSError as error:
            return self._without_dcs(error)
        backends, skipped = backends_from(cluster)
        text = render_haproxy_config(self.settings, backends, self.run_dir)
        members = ",".join(b.name for b in backends) or "none"
        note = f"; skipped {'; '.join(skipped)}" if skipped else ""
        if not self.process.is_running():
            # We had it running (started or adopted) and it is gone: say so, it should not happen.
            lost = "haproxy was no longer running; " if self._applied is not None else ""
            self._applied = None
            try:
                pid = self.process.start(text)
            except PilotError as error:
                return f"{lost}haproxy could not start: {error}"
            self._applied, self._refused, self._certificates_pending = text, None, False
            return f"{lost}haproxy started (pid {pid}): members {members}{note}"
        if text == self._running_text() and not self._certificates_pending:
            return f"haproxy config unchanged: members {members}{note}"
        if text == self._refused:
            return f"haproxy keeps its previous config; the one for members {members} was refused{note}"
        try:
            self.process.reload(text)
        except PilotError as error:
            # After a failed reload the running configuration is unknown to us only if the adapter
            # could not put the previous file back; reading it again next cycle covers both cases.
            self._applied = None
            if isinstance(error, ConfigRefused):
                self._refused = text
                return f"haproxy reload refused, still serving the previous config: {error}"
            return f"haproxy reload failed, tried again next cycle: {error}"
        reason = " (new check certificates)" if self._certificates_pending else ""
        self._applied, self._refused, self._certificates_pending = text, None, False
        return f"haproxy reloaded{reason}: members {members}{note}"

    def _without_dcs(self, error: DCSError) -> str:
        """No snapshot: keep whatever runs; if nothing runs, serve the last rendered configuration."""
        if self.process.is_running():
            return f"DCS unavailable, keeping haproxy's current config: {error}"
        try:
            text = self.process.config_path.read_text()
        except OSError:
            return f"DCS unavailable and no earlier haproxy config to start from: {error}"
        try:
            pid = self.process.start(text)
        except PilotError as start_error:
            return f"DCS unavailable, and haproxy could not start with its last config: {start_error}"
        self._applied = text
        return f"DCS unavailable; started haproxy (pid {pid}) with its last config: {error}"

    def stop(self) -> None:
        self.process.stop()
        self._applied = None

    def reload_certificates(self) -> None:
        """The check certificates changed on disk (same configuration text): reload at the next cycle,
        even a text HAProxy refused before (it may have refused the previous, broken certificates)."""
        self._certificates_pending = True
        self._refused = None

    def serves_current_certificates(self) -> bool:
        """Whether the running HAProxy was (re)started after the last certificate change."""
        return self.process.is_running() and self._applied is not None and not self._certificates_pending


class ProxyConfig(BaseModel):
    """`galera-pilot proxy -c CONFIG`: where the endpoints listen and which cluster they front."""

    model_config = ConfigDict(extra="forbid")

    cluster_name: str = Field("galera", pattern=NAME_PATTERN)
    dcs: str = Field(description="coordination store URL, e.g. sqlite:///var/lib/galera-pilot/dcs.sqlite")
    writer_bind: str = Field("127.0.0.1:3306", description="ADDRESS:PORT of the writer endpoint")
    reader_bind: str = Field("127.0.0.1:3307", description="ADDRESS:PORT of the reader endpoint")
    run_dir: Path = Field(Path("/run/galera-pilot/proxy"),
                          description="haproxy.cfg, pid file, admin and master sockets, haproxy.log")
    check_interval_ms: int = Field(200, ge=50, le=60000, description="health check interval (HAProxy `inter`)")
    nbthread: int | None = Field(None, ge=1, le=64, description="HAProxy worker threads (default: one per CPU)")
    mode: Literal["haproxy", "kernel"] = Field(
        "haproxy", description="haproxy: a proxy process carries the connections; kernel: nftables DNAT rules "
        "lead them to the members (proxy/kernel.py)")
    tls: ProxyTls = Field(default_factory=ProxyTls)

    @field_validator("writer_bind", "reader_bind")
    @classmethod
    def _bind(cls, value: str) -> str:
        parse_bind(value)
        return value

    @field_validator("run_dir")
    @classmethod
    def _run_dir(cls, value: Path) -> Path:
        check_run_dir(value)
        return value

    @model_validator(mode="after")
    def _distinct_binds(self) -> ProxyConfig:
        if parse_bind(self.writer_bind) == parse_bind(self.reader_bind):
            raise ValueError("writer_bind and reader_bind must differ")
        return self

    def settings(self, check_tls: tuple[str, str] | None = None) -> ProxySettings:
        ca_file, cert_file = check_tls or (None, None)
        return ProxySettings(writer_bind=self.writer_bind, reader_bind=self.reader_bind,
                             check_interval_ms=self.check_interval_ms, nbthread=self.nbthread,
                             check_ca_file=ca_file, check_cert_file=cert_file)


def parse_proxy_config(data: object, source: str = "<config>") -> ProxyConfig:
    return parse_model(ProxyConfig, data, source)


def load_proxy_config(path: Path) -> ProxyConfig:
    return load_model(ProxyConfig, path)


def _follow_bundle(config: ProxyConfig, manager: ProxyManager | None,
                   watched: tuple[tuple[int, int], ...]) -> tuple[tuple[tuple[int, int], ...], bool]:
    """A new proxy bundle (pki rotate): checked, then HAProxy reloaded with it; a broken one is refused and
    the old certificates stay. (The signature now, whether a new bundle was taken.)"""
    assert config.tls.bundle is not None
    now = bundle_signature(config.tls.bundle)
    if now == watched:
        return watched, False
    try:
        prepare_check_tls(config.tls, config.run_dir)
    except ConfigError as error:
        log.error("the new proxy TLS bundle is not used, the old certificates stay: %s", error)
        return now, False
    log.info("loaded a new proxy certificate from %s", config.tls.bundle)
    if manager is not None:
        manager.reload_certificates()
    return now, True


def run_proxy(config_path: Path) -> None:
    """Run the proxy manager in the foreground until SIGTERM or SIGINT, then stop HAProxy.

    A manager killed without that (kill -9, a crash) leaves HAProxy serving; the next one adopts it.
    SIGHUP takes a changed configuration file the same way: once it is checked, the manager executes
    itself anew and leaves HAProxy (or the kernel's rules) serving for the new one to adopt; a bad file
    is refused, named in the log, and the manager goes on as it was.
    """
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the handler below: SIGHUP's default would kill us
    config = load_proxy_config(Path(config_path))
    check_tls = prepare_check_tls(config.tls, config.run_dir)  # a bad bundle is named before anything starts
    bundle = config.tls.bundle if config.tls.enabled else None
    dcs = get_dcs(config.dcs, config.cluster_name, bundle_files(bundle) if bundle else None)
    stop = threading.Event()
    again = threading.Event()  # SIGHUP with a good file: execute anew instead of stopping

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        stop.set()

    def _on_hangup(_signum: int, _frame: object) -> None:
        try:
            fresh = load_proxy_config(Path(config_path))
            if fresh.mode != config.mode:
                raise ConfigError(f"mode changed from {config.mode} to {fresh.mode}; that takes a restart of the proxy")
            if fresh.tls.enabled and fresh.tls.bundle is not None:
                load_bundle(fresh.tls.bundle)
        except ConfigError as error:
            log.error("SIGHUP: the configuration is not taken, the proxy goes on as it was: %s", error)
            return
        log.info("SIGHUP: taking the new configuration (HAProxy keeps serving)")
        again.set()
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, _on_hangup)
    try:
        _serve(config, config_path, check_tls, dcs, stop, again)
    finally:
        dcs.close()
    if again.is_set():
        os.execv(sys.executable, [sys.executable, "-m", "galera_pilot", *sys.argv[1:]])  # the same options


def _serve(config: ProxyConfig, config_path: Path, check_tls: tuple[str, str] | None, dcs: DCS,
           stop: threading.Event, again: threading.Event) -> None:
    if config.mode == "kernel":
        from galera_pilot.proxy.kernel import KernelEndpoints, run_kernel_proxy

        endpoints = KernelEndpoints(dcs, config.settings(check_tls), config.cluster_name)
        log.info("proxy for cluster %s started in kernel mode: writer %s, reader %s (nftables table %s)",
                 config.cluster_name, config.writer_bind, config.reader_bind, endpoints.table)
        record_loaded(config.tls, config.run_dir)
        kernel_watched = bundle_signature(config.tls.bundle) if check_tls and config.tls.bundle else None

        def follow() -> None:  # the kernel mode's only certificates are its API client's
            nonlocal kernel_watched
            if kernel_watched is not None:
                kernel_watched, taken = _follow_bundle(config, None, kernel_watched)
                if taken:
                    record_loaded(config.tls, config.run_dir)
        run_kernel_proxy(endpoints, stop, follow, keep_rules=again.is_set)
        log.info("proxy for cluster %s %s", config.cluster_name, "executing anew; its nftables table stays"
                 if again.is_set() else "stopped; its nftables table is removed")
        return
    manager = ProxyManager(dcs, config.settings(check_tls), config.run_dir)
    log.info("proxy for cluster %s started: writer %s, reader %s, run dir %s", config.cluster_name,
             config.writer_bind, config.reader_bind, config.run_dir)
    last_sentence, last_logged = "", 0.0
    watched = bundle_signature(config.tls.bundle) if check_tls and config.tls.bundle else None
    unrecorded = watched is not None  # certificates taken but not yet said to be served (record_loaded)
    try:
        while not stop.is_set():
            if watched is not None and config.tls.bundle is not None:
                watched, taken = _follow_bundle(config, manager, watched)
                unrecorded = unrecorded or taken
            try:
                sentence = manager.run_cycle()
            except PilotError as error:
                sentence = f"error: {error}"
            except Exception as error:  # a bug: keep the proxy serving, but leave the traceback in the log
                log.exception("unexpected error in the proxy cycle")
                sentence = f"unexpected error: {error!r}"
            if unrecorded and manager.serves_current_certificates():
                try:
                    record_loaded(config.tls, config.run_dir)
                    unrecorded = False
                except (ConfigError, OSError) as error:
                    log.error("could not record the certificates in use: %s", error)
            now = time.monotonic()
            if sentence != last_sentence or now - last_logged >= REPEAT_LOG_EVERY:
                log.info("%s", sentence)
                last_sentence, last_logged = sentence, now
            stop.wait(manager.next_wait())
    finally:
        if again.is_set():
            log.info("proxy for cluster %s executing anew; HAProxy keeps serving", config.cluster_name)
        else:
            manager.stop()
            log.info("proxy for cluster %s stopped", config.cluster_name)
