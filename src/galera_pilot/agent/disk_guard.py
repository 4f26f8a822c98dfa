"""The agent's watch over disk space: the last measurements (for /status, /metrics, `list`), the
warnings, and whether mariadbd may be started (the `disk_full` sentence of `LocalState`).

The judgements are pure functions in `mariadb/disk.py`; this class only keeps what it measured and what
the error log said at the last exit of mariadbd.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from galera_pilot.config import NodeConfig
from galera_pilot.mariadb.disk import (
    SpaceShortage,
    Thresholds,
    Usage,
    describe,
    enospc_line,
    lines_since_last_start,
    low_space,
    measure,
    start_refusal,
)
from galera_pilot.mariadb.process import tail

log = logging.getLogger(__name__)
ERROR_LOG_LINES = 400  # enough for an InnoDB abort with its stack trace after the ENOSPC line


class DiskGuard:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        d = config.disk
        self.thresholds = Thresholds(d.warn_free_percent, d.warn_free_mb, d.warn_free_inodes_percent,
                                     d.start_min_free_mb, d.start_min_free_inodes)
        self._lock = threading.Lock()
        self._usages: dict[str, Usage] = {}
        self._warnings: dict[str, str] = {}
        self.shortage: SpaceShortage | None = None
        self.refusal: str | None = None

    def locations(self) -> dict[str, str]:
        """What is measured: the datadir, the error log's folder, and the node folder, where a
        quarantined datadir and a seed copy go; then `disk.locations` (a backup folder, ...)."""
        named = {name: str(path) for name, path in self.config.disk.locations.items()}
        return {"data": str(self.config.data_dir), "log": str(self.config.log_dir),
                "base": str(self.config.base_dir), **named}

    def measure(self) -> dict[str, Usage]:
        usages = {}
        for location, path in self.locations().items():
            usage = measure(location, Path(path))
            if usage is not None:
                usages[location] = usage
        warnings = {name: w for name, u in usages.items() if (w := low_space(u, self.thresholds))}
        for name, warning in warnings.items():
            if self._warnings.get(name) is None:
                log.warning("%s", warning)
        for name in set(self._warnings) - set(warnings):
            log.info("disk space on %s is above the warning thresholds again", self.locations()[name])
        with self._lock:
            self._usages, self._warnings = usages, warnings
        return usages

    def usages(self) -> dict[str, Usage]:
        with self._lock:
            return dict(self._usages)

    def warnings(self) -> dict[str, str]:
        with self._lock:
            return dict(self._warnings)

    def report(self) -> dict[str, dict[str, object]]:
        """What the member record and /status carry: each location's numbers and its warning (or None)."""
        usages, warnings = self.usages(), self.warnings()
        report: dict[str, dict[str, object]] = {}
        for name, usage in usages.items():
            entry = usage.to_dict()
            entry["warning"] = warnings.get(name)
            report[name] = entry
        return report

    def note_exit(self, error_log_text: str | None = None, at_start: bool = False) -> SpaceShortage | None:
        """After mariadbd exited (or at agent start, for the last run): did it die for lack of space?

        At agent start the space free at the death is unknown (it may have been freed since): only
        start_min_free_mb is then asked for."""
        text = tail(self.config.error_log, ERROR_LOG_LINES) if error_log_text is None else error_log_text
        line = enospc_line(lines_since_last_start(text))
        if line is None:
            self.shortage = None
            return None
        usage = None if at_start else measure("data", self.config.data_dir)
        self.shortage = SpaceShortage(line, usage.free_bytes if usage else 0)
        return self.shortage

    def note_recover_failure(self, message: str) -> bool:
        """--wsrep-recover failed: True (and a shortage) if for lack of space, a transient condition."""
        line = enospc_line(message.splitlines())
        if line is None:
            return False
        usage = measure("data", self.config.data_dir)
        self.shortage = SpaceShortage(line, usage.free_bytes if usage else 0)
        return True

    def judge(self, running: bool) -> str | None:
        """The sentence for LocalState.disk_full (only while mariadbd is stopped), else None."""
        if running:
            self.refusal = None
            self.shortage = None  # it started: the space it needed was there
            return None
        refusal = start_refusal(self.usages().get("data"), self.thresholds, self.shortage)
        data = self.usages().get("data")
        if refusal is None and self.shortage is not None and data is not None:
            log.info("disk space on %s is back (%s); mariadbd may start again", data.path, describe(data))
            self.shortage = None
        self.refusal = refusal
        return refusal
