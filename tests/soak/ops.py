"""What the clients did: one record per operation, with when it started and ended and how it ended.

An operation is `ok` (acknowledged), `fail` (the server said it did not happen: a rollback, a deadlock,
a refused connection before anything was sent) or `unknown` (the connection broke while the commit was
in flight: it may or may not have happened). Unknown outcomes are never counted as lost; the checker
finds out afterwards which of them committed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"


@dataclass(frozen=True)
class Op:
    kind: str  # transfer | append | read
    client: str
    start: float  # time.time()
    end: float
    outcome: str
    key: str = ""  # the transfer's id, or the appended value
    target: int = 0  # the list appended to (append), the accounts (transfer: src*1000+dst)
    seen: str = ""  # a read: what it saw
    error: str = ""


@dataclass
class Recorder:
    ops: list[Op] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, op: Op) -> None:
        with self._lock:
            self.ops.append(op)

    def snapshot(self) -> list[Op]:
        with self._lock:
            return list(self.ops)
