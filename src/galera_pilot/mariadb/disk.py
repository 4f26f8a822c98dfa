"""Disk space: measure the filesystems a node writes to, and judge whether mariadbd may start.

`measure` is the only function here that touches the system (one statvfs); the rest are pure judgements
over its numbers and over error-log text, unit-tested on their own (tests/unit/test_disk.py).

A node whose mariadbd died of ENOSPC ("preallocating ... failed with error 28", "Out of disk space") must
not be restarted into the same full disk, and its datadir is not corrupt: it is full. The agent waits,
saying so in one sentence, until the space has grown by at least `start_min_free_mb` beyond what was free
when it died (and is at least that much), then starts as after any crash (--wsrep-recover, IST), or,
when the full disk had made it fail a replicated write first (Galera then found it inconsistent,
mariadb/consistency.py), with a full SST.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

MIB = 1024 * 1024

# What mariadbd (InnoDB, Galera, the server) logs when a write fails for lack of space or inodes.
ENOSPC_RE = re.compile(
    r"failed with error 28\b|\berror:? 28\b|errno:? 28\b|Errcode: 28\b|No space left on device|Out of disk space"
    r"|Disk (?:is )?full|\bENOSPC\b",
    re.IGNORECASE,
)
# mariadbd's prefix of every error-log line: date, time, thread id.
LOG_PREFIX_RE = re.compile(r"^\d{4}-\d\d-\d\d\s+\d+:\d\d:\d\d\s+\d+\s+")
# mariadbd's first line at every start: "[Note] Starting MariaDB 10.11.19-... as process 1234".
START_RE = re.compile(r"Starting MariaDB .* as process \d+|mariadbd .*starting as process \d+")


@dataclass(frozen=True)
class Usage:
    """One filesystem as seen from `path` (which need not exist yet: its nearest existing parent)."""

    location: str  # data | log | base
    path: str
    total_bytes: int
    free_bytes: int  # available to an unprivileged user (mariadbd runs as mysql): f_bavail
    total_inodes: int
    free_inodes: int
    mount_point: bool = False  # `path` itself is a mount point

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 100.0

    @property
    def free_inodes_percent(self) -> float:
        # Some filesystems (btrfs, some FUSE) report 0 inodes: they have no fixed inode table.
        return 100.0 * self.free_inodes / self.total_inodes if self.total_inodes else 100.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["free_percent"] = round(self.free_percent, 1)
        data["free_inodes_percent"] = round(self.free_inodes_percent, 1)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Usage:
        return cls(str(data.get("location", "")), str(data.get("path", "")), int(data.get("total_bytes", 0)),
                   int(data.get("free_bytes", 0)), int(data.get("total_inodes", 0)),
                   int(data.get("free_inodes", 0)), bool(data.get("mount_point", False)))


@dataclass(frozen=True)
class Thresholds:
    """From the node configuration's `disk` section (config.DiskSettings)."""

    warn_free_percent: float = 10.0
    warn_free_mb: int = 1024
    warn_free_inodes_percent: float = 10.0
    start_min_free_mb: int = 32
    start_min_free_inodes: int = 1000


def measure(location: str, path: Path) -> Usage | None:
    """statvfs of `path`, or of its nearest existing parent; None if nothing can be measured."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        st = os.statvfs(probe)
    except OSError:
        return None
    return Usage(location, str(path), st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize, st.f_files,
                 st.f_favail, probe == Path(path) and os.path.ismount(path))


def size_text(count: int) -> str:
    """Bytes as a person reads them: 11 MB, 1.2 GB (powers of 1024, like df -h)."""
    if count >= 1024 * 1024 * MIB:
        return f"{count / (1024 * 1024 * MIB):.1f} TB"
    if count >= 1024 * MIB:
        return f"{count / (1024 * MIB):.1f} GB"
    return f"{count // MIB} MB"


def describe(usage: Usage) -> str:
    """'11 MB free of 260 MB' (and the inodes when those are what runs out)."""
    text = f"{size_text(usage.free_bytes)} free of {size_text(usage.total_bytes)}"
    if usage.total_inodes and usage.free_inodes_percent < usage.free_percent and usage.free_inodes_percent < 10:
        text += f", {usage.free_inodes} of {usage.total_inodes} inodes free"
    return text


def low_space(usage: Usage, thresholds: Thresholds) -> str | None:
    """The warning for a filesystem under a warning threshold, or None: free space under
    warn_free_percent % or under warn_free_mb MiB (whichever is reached first), or free inodes under
    warn_free_inodes_percent %."""
    reasons = []
    if usage.free_percent < thresholds.warn_free_percent:
        reasons.append(f"under {thresholds.warn_free_percent:g} %")
    if usage.free_bytes < thresholds.warn_free_mb * MIB:
        reasons.append(f"under {size_text(thresholds.warn_free_mb * MIB)}")
    if usage.total_inodes and usage.free_inodes_percent < thresholds.warn_free_inodes_percent:
        reasons.append(f"inodes under {thresholds.warn_free_inodes_percent:g} %")
    if not reasons:
        return None
    return f"low disk space on {usage.path}: {describe(usage)} ({' and '.join(reasons)})"


def lines_since_last_start(text: str) -> list[str]:
    """The error log of mariadbd's last run: the lines from its last 'Starting MariaDB ... as process'."""
    lines = text.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if START_RE.search(lines[index]):
            return lines[index:]
    return lines


def enospc_line(lines: list[str]) -> str | None:
    """The first line that says a write failed for lack of space, trimmed of its timestamp, or None."""
    for line in lines:
        if ENOSPC_RE.search(line):
            return without_timestamp(line)
    return None


def without_timestamp(line: str) -> str:
    """An error-log line trimmed of its "2026-12-04 18:52:52 7 " prefix, at most 200 characters: what a
    sentence quotes."""
    text = line.strip()
    match = LOG_PREFIX_RE.match(text)
    return (text[match.end():] if match else text)[:200]


@dataclass(frozen=True)
class SpaceShortage:
    """mariadbd died of ENOSPC: what it said, and how much was free when the agent saw the exit."""

    line: str
    free_bytes: int


def start_refusal(usage: Usage | None, thresholds: Thresholds, shortage: SpaceShortage | None) -> str | None:
    """Why mariadbd must not be started on this datadir's filesystem now, in one sentence, or None.

    Without a shortage: when less than start_min_free_mb MiB or start_min_free_inodes inodes are free.
    After an ENOSPC death: until the free space has grown by start_min_free_mb MiB beyond what was free
    then (restarting into the same full disk would only fail again, halfway through a state transfer).
    """
    if usage is None:
        return None
    margin = thresholds.start_min_free_mb * MIB
    needed = margin if shortage is None else max(margin, shortage.free_bytes + margin)
    short_of_space = usage.free_bytes < needed
    short_of_inodes = bool(usage.total_inodes) and usage.free_inodes < thresholds.start_min_free_inodes
    if not (short_of_space or short_of_inodes):
        return None
    need = (f"{size_text(needed)} are free" if short_of_space
            else f"{thresholds.start_min_free_inodes} inodes are free")
    cause = f" (mariadbd died: {shortage.line})" if shortage is not None else ""
    return (f"out of disk space on {usage.path}: {describe(usage)}{cause}; not starting mariadbd until at least "
            f"{need}")
