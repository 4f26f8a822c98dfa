"""Learn the moment mariadbd exits, instead of at the agent's next cycle.

Fast eviction is only fast if it starts at once: every millisecond between the death of mariadbd and the
`evs.evict` on a survivor is a millisecond of stalled writes on the whole cluster. The agent's cycle
sleeps up to `loop_wait` (1 s), so a poll would cost up to a second; a pidfd becomes readable the
instant the process exits, whether the agent started it (a child) or adopted it (any process).
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)

# How often the watching thread checks whether it was told to stop watching (it never busy-polls
# the process: the pidfd wakes it on exit).
CANCEL_CHECK = 0.5


class ExitWatcher:
    """Calls `on_exit(pid)` from a daemon thread when the watched pid exits; one pid at a time."""

    def __init__(self, on_exit: Callable[[int], None]) -> None:
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._cancel = threading.Event()

    @property
    def pid(self) -> int | None:
        return self._pid

    def watch(self, pid: int) -> None:
        """Start watching pid (no-op if it is already the one watched)."""
        with self._lock:
            if self._pid == pid:
                return
            self._cancel.set()
            self._cancel = threading.Event()
            self._pid = pid
            thread = threading.Thread(target=self._run, args=(pid, self._cancel), name=f"exit-watch-{pid}",
                                      daemon=True)
            thread.start()

    def cancel(self) -> None:
        with self._lock:
            self._cancel.set()
            self._pid = None

    def _run(self, pid: int, cancel: threading.Event) -> None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self._exited(pid, cancel)
            return
        except OSError as error:  # kernels before 5.3: fall back to a short poll
            log.debug("pidfd_open(%d) failed (%s); polling instead", pid, error)
            self._poll(pid, cancel)
            return
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            while not cancel.is_set():
                if poller.poll(CANCEL_CHECK * 1000):
                    self._exited(pid, cancel)
                    return
        finally:
            os.close(fd)

    def _poll(self, pid: int, cancel: threading.Event) -> None:
        while not cancel.wait(0.05):
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
        self._exited(pid, cancel)

    def _exited(self, pid: int, cancel: threading.Event) -> None:
        with self._lock:
            if cancel.is_set():
                return
            self._pid = None
        try:
            self._on_exit(pid)
        except Exception:  # the watcher thread must not die silently
            log.exception("handling the exit of pid %d failed", pid)
