"""Galera's notifications (`wsrep_notify_cmd`): a tiny script queues them, the agent reads the queue.

Galera runs the command synchronously inside mariadbd, with no timeout, at every state and view change:
a slow or hanging command stalls replication. So the command is a few lines of sh that write their
arguments, NUL-separated and untouched, to a new file in the node's run/events and exit 0: no server
connection, no interpreter start, nothing parsed. mariadbd itself starts the command through `sh -c`
with the members' names in its command line, as the other nodes give them: so it is set only where every
node holds a certificate of the node CA (mariadb/mycnf.notifications_on). Past that, the script writes
the names as data (printf's %s) and the agent reads them as data.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import re
import shlex
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from galera_pilot.errors import PilotError
from galera_pilot.files import write_private

log = logging.getLogger(__name__)

SCRIPT, EVENTS = "notify", "events"
MAX_QUEUED = 1000  # files read per look; more means the agent was away long: the oldest are dropped
MAX_FIELD = 4096
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|-1|")
# What Galera 4 passes as --status (lowercase; the docs write them capitalised).
STATUSES = frozenset({"undefined", "initializing", "initialized", "joiner", "donor", "joined", "synced", "error",
                      "disconnected", "connected", "disconnecting", "connecting"})


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


def install(base_dir: Path, run_dir: Path, user: str | None) -> Path:
    """Write the script into the node's folder (root's: mariadbd's user cannot replace it) and make the
    queue folder in run/ (mariadbd's user writes to it); the script's path. Nothing here follows a
    symbolic link that user could have put in run/."""
    events = run_dir / EVENTS
    with contextlib.suppress(FileExistsError):
        os.mkdir(events, 0o700)
    info = os.lstat(events)
    if not stat.S_ISDIR(info.st_mode):
        raise PilotError(f"{events} is not a folder (a link or a file put there?); remove it")
    if user and os.geteuid() == 0:
        pw = pwd.getpwnam(user)
        os.chown(events, pw.pw_uid, pw.pw_gid, follow_symlinks=False)
    script = base_dir / SCRIPT
    write_private(script, script_text(events), 0o755)
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


def consume(events_dir: Path, take: Callable[[Notification | BadNotification], bool]) -> None:
    """Give each queued notification to `take`, oldest first (names sort by nanosecond time), and remove
    its file once `take` says it is done with it (False: stop, the rest stays queued). Everything goes
    through a descriptor of the folder opened without following links: mariadbd's user owns it and
    could swap it for a link to a folder of root's; entries that are not regular files (links, FIFOs)
    are removed unread. Beyond MAX_QUEUED the oldest are dropped (the agent was away long)."""
    try:
        folder = os.open(events_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return  # not there yet, or not a folder: nothing of ours to read
    try:
        names = sorted(name for name in os.listdir(folder) if not name.startswith("."))
        if len(names) > MAX_QUEUED:
            log.warning("%d Galera notifications were queued; the oldest %d are dropped", len(names),
                        len(names) - MAX_QUEUED)
        for index, name in enumerate(names):
            item = None if index < len(names) - MAX_QUEUED else _read(folder, name)
            if item is not None and not take(item):
                return
            with contextlib.suppress(OSError):
                os.unlink(name, dir_fd=folder)
    finally:
        os.close(folder)


def _read(folder: int, name: str) -> Notification | BadNotification | None:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=folder)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = os.read(fd, MAX_FIELD * 64)
    finally:
        os.close(fd)
    args = data.decode("utf-8", errors="replace").split("\0")
    try:
        return parse(args[:-1] if args and args[-1] == "" else args)
    except BadNotification as error:
        return error


def drain(events_dir: Path) -> list[Notification | BadNotification]:
    """Read and remove everything queued."""
    found: list[Notification | BadNotification] = []

    def keep(item: Notification | BadNotification) -> bool:
        found.append(item)
        return True
    consume(events_dir, keep)
    return found
