"""The kernel endpoints' pure part: which members the writer and reader endpoints lead to, and the
nftables ruleset that says so.

In `mode: kernel` no proxy process carries the clients' bytes: nftables rewrites the destination of each
new connection to the endpoint (DNAT) to the writer, or to one of the readers chosen at random, and the
kernel forwards the packets itself. Measured on 2 shared cores this keeps about 0.9 of a direct
connection's throughput, against 0.45 through HAProxy (docs/benchmarks.md). The price: nothing checks
the members but the proxy manager (it asks every agent's /status each `check_interval_ms`), an
established connection is never moved, and while the manager does not run the rules stay as they were.

Judgement mirrors the HAProxy checks (haproxy_config.py): an agent's own "not the writer" or "may not
serve reads" counts at once (it is a considered answer); an agent that does not answer counts after
FALL consecutive misses, so one slow answer does not cut every session. The rules are one nftables table
per endpoint pair, replaced as a whole in one transaction, so a reader never sees half of an update.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from galera_pilot.proxy.haproxy_config import ProxyBackend

FALL = 2  # consecutive unanswered checks before a member counts as failed (HAProxy's `fall 2`)
TABLE_PREFIX = "galera_pilot_"
# Connections DNATed in prerouting (from other hosts) carry this conntrack mark, so that only they are
# masqueraded on the way to the member (replies must come back through this host to be un-NATed).
FORWARD_MARK = 0x47500001


@dataclass(frozen=True)
class Answer:
    """What one member's agent said in one round of checks (None: it did not answer)."""

    writer: bool | None
    read: bool | None


@dataclass(frozen=True)
class Targets:
    """Where the endpoints lead: the writer (or nobody) and the readers, sorted by name."""

    writer: ProxyBackend | None = None
    readers: tuple[ProxyBackend, ...] = ()


@dataclass
class CheckState:
    """What the judgement remembers between rounds: consecutive misses, and who passed last time."""

    misses: dict[str, int] = field(default_factory=dict)
    writer: str | None = None
    readers: frozenset[str] = frozenset()


def judge(backends: list[ProxyBackend], answers: Mapping[str, Answer | None], state: CheckState) -> Targets:
    """This round's targets; updates `state`. At most one writer: if two agents claimed the role in the
    same round (the lease makes that impossible, but a check is not the lease), nobody gets writes."""
    writers: list[ProxyBackend] = []
    readers: list[ProxyBackend] = []
    for backend in backends:
        answer = answers.get(backend.name)
        if answer is None or answer.writer is None:
            state.misses[backend.name] = state.misses.get(backend.name, 0) + 1
            tolerated = state.misses[backend.name] < FALL
            was_writer, was_reader = backend.name == state.writer, backend.name in state.readers
            if tolerated and was_writer:
                writers.append(backend)
            if tolerated and was_reader:
                readers.append(backend)
            continue
        state.misses[backend.name] = 0
        if answer.writer:
            writers.append(backend)
        if answer.read:
            readers.append(backend)
    writer = writers[0] if len(writers) == 1 else None
    state.writer = writer.name if writer else None
    state.readers = frozenset(b.name for b in readers)
    return Targets(writer, tuple(sorted(readers, key=lambda b: b.name)))


def answer_from_status(document: Mapping[str, object] | None) -> Answer | None:
    """An agent's /status as a check answer: its routing verdicts for /writer and /read."""
    if document is None:
        return None
    routing = document.get("routing")
    if not isinstance(routing, Mapping):
        return None
    return Answer(writer=bool(routing.get("writer")), read=bool(routing.get("read")))


def table_name(cluster_name: str, writer_port: int) -> str:
    """One table per endpoint pair: two clusters (or two proxies of one) on a host never share rules."""
    return f"{TABLE_PREFIX}{cluster_name.replace('-', '_')}_{writer_port}"


def kernel_backend_refusal(backend: ProxyBackend) -> str:
    """Why a member cannot be a DNAT target ("" if it can): the kernel needs an IPv4 address."""
    try:
        ipaddress.IPv4Address(backend.address)
    except ValueError:
        return f"{backend.name} ({backend.address!r} is not an IPv4 address; kernel endpoints need one)"
    return ""


def _target(backend: ProxyBackend) -> str:
    return f"{backend.address}:{backend.client_port}"


def _dnat(readers: tuple[ProxyBackend, ...]) -> str:
    if len(readers) == 1:
        return f"dnat to {_target(readers[0])}"
    entries = ", ".join(f"{i} : {b.address} . {b.client_port}" for i, b in enumerate(readers))
    return f"dnat ip to numgen random mod {len(readers)} map {{ {entries} }}"


def render_ruleset(table: str, writer_bind: tuple[str, int], reader_bind: tuple[str, int],
                   targets: Targets) -> str:
    """The nftables script that replaces `table` as a whole (one transaction).

    Local clients (this host's own connections) are rewritten in `output`, clients on other hosts in
    `prerouting` (marked, and masqueraded in `postrouting` so that replies come back through here). An
    endpoint without a target refuses new connections with a TCP reset, so clients fail at once rather
    than wait for a timeout."""
    nat: list[tuple[str, str]] = []  # (match, dnat statement)
    refuse: list[str] = []
    for (address, port), chosen in ((writer_bind, (targets.writer,) if targets.writer else ()),
                                    (reader_bind, targets.readers)):
        match = f"ip daddr {address} tcp dport {port}"
        if chosen:
            nat.append((match, _dnat(tuple(chosen))))
        else:
            refuse.append(f"{match} reject with tcp reset")
    lines = [f"table ip {table}", f"delete table ip {table}", f"table ip {table} {{"]
    lines += ["  chain output {", "    type nat hook output priority -100; policy accept;"]
    lines += [f"    {match} {dnat}" for match, dnat in nat] + ["  }"]
    lines += ["  chain prerouting {", "    type nat hook prerouting priority -100; policy accept;"]
    lines += [f"    {match} ct mark set {FORWARD_MARK:#x} {dnat}" for match, dnat in nat] + ["  }"]
    lines += ["  chain postrouting {", "    type nat hook postrouting priority 100; policy accept;",
              f"    ct mark {FORWARD_MARK:#x} masquerade", "  }"]
    lines += ["  chain refuse_local {", "    type filter hook output priority 0; policy accept;"]
    lines += [f"    {rule}" for rule in refuse] + ["  }"]
    lines += ["  chain refuse_forwarded {", "    type filter hook input priority 0; policy accept;"]
    lines += [f"    {rule}" for rule in refuse] + ["  }", "}"]
    return "\n".join(lines) + "\n"


def describe(targets: Targets) -> str:
    readers = ", ".join(b.name for b in targets.readers) or "none"
    return f"writer {targets.writer.name if targets.writer else 'none'}, readers {readers}"
