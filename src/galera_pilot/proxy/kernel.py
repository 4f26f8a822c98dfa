"""`mode: kernel`: the endpoints as nftables DNAT rules that the proxy manager points at the members
(the rules and the judgement are in kernel_rules.py; this is the adapter around `nft` and `conntrack`).

Every `check_interval_ms` the manager asks each member's agent for its /status (one request per member
gives both verdicts, /writer and /read), judges, and when the targets change replaces its nftables table
in one transaction. Connections already established to a member that lost its place are cut: their
conntrack entries are deleted, so the client's next packet is translated anew, reaches a member that
does not know the connection, and the client gets a reset (as HAProxy's `shutdown-sessions` closes
them). The table is removed when the manager stops; a manager that is killed leaves it as it was, and
the next one replaces it on its first round.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from galera_pilot.dcs.base import DCS
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.proxy.haproxy_config import ProxyBackend, ProxySettings, parse_bind
from galera_pilot.proxy.kernel_rules import (
    Answer,
    CheckState,
    Targets,
    answer_from_status,
    describe,
    judge,
    kernel_backend_refusal,
    render_ruleset,
    table_name,
)
from galera_pilot.proxy.membership import backends_from
from galera_pilot.routing.peers import fetch_status
from galera_pilot.tls.http import api

log = logging.getLogger("galera_pilot.proxy")
MEMBERSHIP_EVERY = 1.0  # s between two reads of the DCS membership (checks run every check interval)
COMMAND_TIMEOUT = 10.0
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def kernel_tools_missing() -> list[str]:
    return [tool for tool in ("nft", "conntrack") if shutil.which(tool) is None]


class KernelEndpoints:
    """The writer and reader endpoints as one nftables table, kept pointed at the members' verdicts."""

    def __init__(self, dcs: DCS, settings: ProxySettings, cluster_name: str) -> None:
        missing = kernel_tools_missing()
        if missing:
            raise PilotError(f"mode: kernel needs {' and '.join(missing)} (apt-get install nftables conntrack)")
        self.dcs = dcs
        self.settings = settings
        self.writer_bind = self._concrete(settings.writer_bind, "writer_bind")
        self.reader_bind = self._concrete(settings.reader_bind, "reader_bind")
        self.table = table_name(cluster_name, self.writer_bind[1])
        self.interval = settings.check_interval_ms / 1000.0
        self._backends: list[ProxyBackend] = []
        self._membership_known = False  # one snapshot read: until then no rules are written
        self._skipped: list[str] = []
        self._membership_at = float("-inf")
        self._state = CheckState()
        self._applied: str | None = None
        self._targets = Targets()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kernel-check")

    @staticmethod
    def _concrete(bind: str, field: str) -> tuple[str, int]:
        host, port = parse_bind(bind, field)
        if not host:
            raise PilotError(f"field '{field}': mode: kernel needs the endpoint's own address ({bind!r} listens on "
                             "every address; a DNAT rule would catch the members' own port too)")
        return host, port

    # ---- one round ------------------------------------------------------------------------------------
    def run_round(self) -> str | None:
        """Refresh membership when due, ask every agent, apply the rules if the targets moved; returns the
        sentence to log when something changed (None when nothing did)."""
        sentence = self._refresh_membership()
        if not self._membership_known:
            # No membership read yet: leave whatever rules exist (a predecessor's, after a SIGHUP) rather
            # than replace them with endpoints that lead nowhere.
            return sentence
        answers = self._ask(self._backends)
        targets = judge(self._backends, answers, self._state)
        text = render_ruleset(self.table, self.writer_bind, self.reader_bind, targets)
        if text == self._applied:
            return sentence
        previous, self._targets = self._targets, targets
        try:
            self._nft(text)
        except PilotError as error:
            self._applied = None  # try again next round
            return f"nftables refused the endpoints' rules ({describe(targets)}): {error}"
        self._applied = text
        cut = self._cut_moved(previous, targets)
        change = f"endpoints now lead to {describe(targets)}" + (f"; cut {cut}" if cut else "")
        return f"{sentence}; {change}" if sentence else change

    def _refresh_membership(self) -> str | None:
        if time.monotonic() - self._membership_at < MEMBERSHIP_EVERY:
            return None
        self._membership_at = time.monotonic()
        try:
            cluster = self.dcs.snapshot(with_history=False)
        except DCSError as error:
            return f"DCS unavailable, checking the members last known: {error}" if not self._backends else None
        self._membership_known = True
        backends, skipped = backends_from(cluster)
        refusals = {b.name: kernel_backend_refusal(b) for b in backends}
        usable = [b for b in backends if not refusals[b.name]]
        skipped += [why for why in refusals.values() if why]
        if [b.name for b in usable] == [b.name for b in self._backends] and skipped == self._skipped:
            self._backends = usable
            return None
        self._backends, self._skipped = usable, skipped
        note = f"; skipped {'; '.join(skipped)}" if skipped else ""
        return f"members {','.join(b.name for b in usable) or 'none'}{note}"

    def _ask(self, backends: list[ProxyBackend]) -> dict[str, Answer | None]:
        timeout = max(0.2, min(1.0, 2 * self.interval))

        def one(backend: ProxyBackend) -> Answer | None:
            scheme = "https" if api().tls and backend.api_tls else "http"
            document, _ = fetch_status(f"{scheme}://{backend.address}:{backend.api_port}", timeout)
            return answer_from_status(document)
        return dict(zip([b.name for b in backends], self._pool.map(one, backends), strict=True))

    # ---- the kernel -------------------------------------------------------------------------------------
    def _nft(self, script: str) -> None:
        result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT, check=False)
        if result.returncode != 0:
            raise PilotError(result.stderr.strip() or f"nft exited {result.returncode}")

    def _cut_moved(self, before: Targets, after: Targets) -> str:
        """Delete the conntrack entries of connections through an endpoint to a member that no longer
        serves it; the sentence part saying how many, or ""."""
        cuts = []
        if before.writer is not None and (after.writer is None or after.writer.name != before.writer.name):
            cuts.append(("writer", self.writer_bind, before.writer))
        kept = {b.name for b in after.readers}
        cuts += [("reader", self.reader_bind, b) for b in before.readers if b.name not in kept]
        parts = []
        for role, (address, port), backend in cuts:
            count = self._delete_flows(address, port, backend)
            parts.append(f"{count} {role} connection{'s' if count != 1 else ''} to {backend.name}")
        return ", ".join(parts)

    @staticmethod
    def _delete_flows(address: str, port: int, backend: ProxyBackend) -> int:
        result = subprocess.run(
            ["conntrack", "-D", "-p", "tcp", "--orig-dst", address, "--orig-port-dst", str(port),
             "--reply-src", backend.address, "--reply-port-src", str(backend.client_port)],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT, check=False)
        found = re.search(r"(\d+) flow entr", result.stderr)
        return int(found.group(1)) if found else 0

    def forwarding_note(self) -> str:
        """A sentence for the start: clients on other hosts need the kernel to forward."""
        try:
            enabled = IP_FORWARD.read_text().strip() == "1"
        except OSError:
            return ""
        return "" if enabled else ("net.ipv4.ip_forward is 0: only clients on this host reach the endpoints "
                                   "(sysctl -w net.ipv4.ip_forward=1 for clients on other hosts)")

    def leave(self) -> None:
        """Stop asking the agents, and leave the rules as they are (the manager's successor adopts them)."""
        self._pool.shutdown(wait=False)

    def stop(self) -> None:
        """Remove the table: the endpoints stop existing with the manager."""
        remove_table(self.table)
        self._applied = None
        self._pool.shutdown(wait=False)


def remove_table(table: str) -> bool:
    """Delete an endpoints' table if it exists (whether one was deleted). Also what `down` does after the
    manager is gone: one killed, or stopped before it could set its signal handlers, left it behind."""
    try:
        listed = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True,
                                timeout=COMMAND_TIMEOUT, check=False)
    except FileNotFoundError:
        return False  # no nft, no table
    if listed.returncode != 0:
        return False
    result = subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True, text=True,
                            timeout=COMMAND_TIMEOUT, check=False)
    if result.returncode != 0:
        raise PilotError(f"could not delete the nftables table {table}: {result.stderr.strip()}")
    return True


def run_kernel_proxy(endpoints: KernelEndpoints, stop: threading.Event,
                     before_round: Callable[[], None] = lambda: None,
                     keep_rules: Callable[[], bool] = lambda: False) -> None:
    """The manager's loop in kernel mode: a round every check interval until `stop` (`before_round`: the
    manager's own upkeep, such as taking a new bundle). The table is removed at the end, unless
    `keep_rules()` says the manager executes anew (SIGHUP) and its successor takes the rules over."""
    note = endpoints.forwarding_note()
    if note:
        log.info("%s", note)
    try:
        while not stop.is_set():
            started = time.monotonic()
            try:
                before_round()
                sentence = endpoints.run_round()
            except PilotError as error:
                sentence = f"error: {error}"
            except Exception as error:  # a bug: keep the endpoints as they are, leave the traceback
                log.exception("unexpected error in the kernel endpoints' round")
                sentence = f"unexpected error: {error!r}"
            if sentence:
                log.info("%s", sentence)
            stop.wait(max(0.0, endpoints.interval - (time.monotonic() - started)))
    finally:
        if keep_rules():
            endpoints.leave()
        else:
            endpoints.stop()
