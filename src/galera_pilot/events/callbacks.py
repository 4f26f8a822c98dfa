"""Running the user's callbacks: one at a time, in order, in a thread of their own, each with a timeout.

A callback never blocks the agent: `submit` only queues (a full queue drops the event and counts it),
and a callback that outlives its timeout is killed with its whole process group. It runs without a
shell as `COMMAND ACTION ROLE CLUSTER`, with a JSON description of the event in GALERA_PILOT_EVENT and
an environment of its own: PATH and the locale, never the agent's (which may carry secrets).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from galera_pilot.events.settings import CallbackSettings

log = logging.getLogger(__name__)
QUEUE_SIZE = 100
ENV_VARIABLE = "GALERA_PILOT_EVENT"
KEPT_ENVIRONMENT = ("PATH", "LANG", "LC_ALL", "TZ")


@dataclass(frozen=True)
class Call:
    action: str
    role: str
    cluster: str
    description: dict[str, Any]


class CallbackRunner:
    """`settings` gives the current callbacks section (a reload may change it while calls wait)."""

    def __init__(self, settings: Callable[[], CallbackSettings]) -> None:
        self._settings = settings
        self._outcomes: Counter[tuple[str, str]] = Counter()  # (action, ok|failed|timeout|dropped) -> count
        self._queue: queue.Queue[Call | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, call: Call) -> None:
        """Queue the call if a command is configured for its action; never waits."""
        if self._settings().command(call.action) is None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="callbacks", daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(call)
        except queue.Full:
            self._count(call.action, "dropped")
            log.error("callback %s dropped: %d callbacks are waiting already", call.action, QUEUE_SIZE)

    def outcomes(self) -> dict[tuple[str, str], int]:
        """(action, outcome) -> how many, for /metrics (read from the API's thread)."""
        with self._lock:
            return dict(self._outcomes)

    def _count(self, action: str, outcome: str) -> None:
        with self._lock:
            self._outcomes[(action, outcome)] += 1

    def stop(self, timeout: float = 5.0) -> None:
        """Let the queued callbacks run for up to `timeout` seconds, then stop taking more."""
        with self._lock:
            thread = self._thread
        if thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        thread.join(timeout)

    def _run(self) -> None:
        while True:
            call = self._queue.get()
            if call is None:
                return
            self._call(call)

    def _call(self, call: Call) -> None:
        settings = self._settings()
        command = settings.command(call.action)
        if command is None:  # a reload removed it while the call waited
            return
        argv = [*command, call.action, call.role, call.cluster]
        environment = {k: v for k, v in os.environ.items() if k in KEPT_ENVIRONMENT}
        environment[ENV_VARIABLE] = json.dumps(call.description, sort_keys=True, default=str)
        started = time.monotonic()
        try:
            process = subprocess.Popen(argv, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, start_new_session=True, close_fds=True)
        except OSError as error:
            self._count(call.action, "failed")
            log.error("callback %s could not start %s: %s", call.action, command[0], error.strerror or error)
            return
        try:
            output, _ = process.communicate(timeout=settings.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            try:  # a child that left the group may hold the pipe open: do not wait for it
                process.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                assert process.stdout is not None
                process.stdout.close()
                process.wait()
            self._count(call.action, "timeout")
            log.error("callback %s (%s) killed after %.0f s", call.action, command[0], settings.timeout)
            return
        said = output.decode(errors="replace").strip()[-500:]
        if process.returncode == 0:
            self._count(call.action, "ok")
            log.info("callback %s ran in %.2f s%s", call.action, time.monotonic() - started,
                     f": {said}" if said else "")
        else:
            self._count(call.action, "failed")
            log.error("callback %s (%s) exited %d%s", call.action, command[0], process.returncode,
                      f": {said}" if said else "")
