"""Galera's notifications (`wsrep_notify_cmd`): a tiny script queues them, the agent reads the queue.

Galera runs the command synchronously inside mariadbd, with no timeout, at every state and view change:
a slow or hanging command stalls replication. So the command is a few lines of sh that write their
arguments, NUL-separated and untouched, to a new file in the node's run/events and exit 0: no server
connection, no interpreter start, nothing parsed. Member names come from other nodes and may hold
anything: they never reach a shell (printf's %s writes them as data) and the agent reads them as data.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCRIPT, EVENTS = "notify", "events"
MAX_QUEUED = 1000  # files read per look; more means the agent was away long: the oldest are dropped
MAX_FIELD = 4096
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|-1|")
# What Galera 4 passes as --status (lowercase; the docs write them capitalised).
STATUSES = frozenset({"undefined", "joiner", "donor", "joined", "synced", "error", "disconnected", "connected",
                      "disconnecting", "connecting"})


def script_text(events_dir: Path) -> str:
    """The wsrep_notify_cmd script for this events folder."""
    folder = shlex.quote(str(events_dir))
    return f"""#!/bin/sh
# galera-pilot: Galera's notification, queued for the agent (see galera_pilot/events/notify.py).
umask 077
d={folder}
t="$d/.$$.tmp"
printf '%s\\0' "$@" > "$t" 2>/dev/null && mv -f "$t" "$d/$(date +%s%N).$$" 2>/dev/null
exit 0
"""


def install(run_dir: Path, user: str | None) -> Path:
    """Write the script and the queue folder (owned by mariadbd's user, who writes to it); the script's path."""
    events = run_dir / EVENTS
    events.mkdir(mode=0o700, exist_ok=True)
    if user and os.geteuid() == 0:
        shutil.chown(events, user, user)
    script = run_dir / SCRIPT
    staged = run_dir / f".{SCRIPT}.new"
    staged.write_text(script_text(events))
    os.chmod(staged, 0o755)
    os.replace(staged, script)
    return script


@dataclass(frozen=True)
class Member:
    uuid: str
    name: str
    incoming: str


@dataclass(frozen=True)
class Notification:
    """One call of wsrep_notify_cmd: a state change (status) and/or a view change (members)."""

    status: str | None = None
    uuid: str | None = None  # the cluster's state UUID
    primary: bool | None = None
    members: tuple[Member, ...] | None = None
    index: int | None = None  # this node's index in the members

    def sentence(self) -> str:
        parts = []
        if self.status:
            parts.append(f"status {self.status}")
        if self.members is not None:
            names = ", ".join(m.name for m in self.members) or "none"
            kind = "primary" if self.primary else "non-primary"
            parts.append(f"{kind} view of {len(self.members)} ({names})")
        return "Galera says: " + ("; ".join(parts) if parts else "nothing (an empty notification)")


class BadNotification(ValueError):
    pass


def parse(args: list[str]) -> Notification:
    """Galera's arguments (--status S --uuid U --primary yes|no --members LIST --index N), checked as
    data: BadNotification for anything else."""
    if len(args) % 2:
        raise BadNotification(f"an option without a value among {len(args)} arguments")
    found: dict[str, str] = {}
    for option, value in zip(args[::2], args[1::2], strict=True):
        if option not in ("--status", "--uuid", "--primary", "--members", "--index") or option in found:
            raise BadNotification(f"unexpected or repeated option {option[:40]!r}")
        if len(value) > MAX_FIELD * 16:
            raise BadNotification(f"{option} is {len(value)} characters long")
        found[option] = value
    status = found.get("--status")
    if status is not None and status.lower() not in STATUSES:
        raise BadNotification(f"unknown status {status[:40]!r}")
    uuid = found.get("--uuid")
    if uuid is not None and not UUID.fullmatch(uuid):
        raise BadNotification(f"not a UUID: {uuid[:40]!r}")
    primary = found.get("--primary")
    if primary is not None and primary not in ("yes", "no"):
        raise BadNotification(f"--primary is {primary[:10]!r}, not yes or no")
    index = found.get("--index")
    if index is not None and not index.removeprefix("-").isdigit():
        raise BadNotification(f"--index is {index[:10]!r}, not a number")
    members = None
    if "--members" in found:
        members = tuple(_member(entry) for entry in found["--members"].split(",") if entry)
    return Notification(status, uuid, None if primary is None else primary == "yes", members,
                        None if index is None else int(index))


def _member(entry: str) -> Member:
    """`uuid/name/incoming address`; the name is whatever the other node calls itself, kept as text."""
    uuid, _, rest = entry.partition("/")
    name, _, incoming = rest.rpartition("/") if rest.count("/") else (rest, "", "")
    printable = "".join(c if c.isprintable() else "?" for c in name)[:MAX_FIELD]
    return Member(uuid[:64], printable, incoming[:MAX_FIELD])


def drain(events_dir: Path) -> list[Notification | BadNotification]:
    """Read and remove what the script queued, oldest first (names sort by nanosecond time)."""
    try:
        names = sorted(entry.name for entry in os.scandir(events_dir) if not entry.name.startswith("."))
    except FileNotFoundError:
        return []
    if len(names) > MAX_QUEUED:
        log.warning("%d Galera notifications were queued; the oldest %d are dropped", len(names),
                    len(names) - MAX_QUEUED)
        for name in names[:-MAX_QUEUED]:
            (events_dir / name).unlink(missing_ok=True)
        names = names[-MAX_QUEUED:]
    result: list[Notification | BadNotification] = []
    for name in names:
        path = events_dir / name
        try:
            data = path.read_bytes()[: MAX_FIELD * 64]
        except OSError:
            continue
        path.unlink(missing_ok=True)
        args = data.decode("utf-8", errors="replace").split("\0")
        try:
            result.append(parse(args[:-1] if args and args[-1] == "" else args))
        except BadNotification as error:
            result.append(error)
    return result
