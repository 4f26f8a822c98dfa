"""The exit watcher: told at once when a child or an adopted process exits, silent once cancelled."""

from __future__ import annotations

import os
import signal
import subprocess
import threading

from galera_pilot.mariadb.exit_watch import ExitWatcher


class Recorder:
    def __init__(self) -> None:
        self.pids: list[int] = []
        self.event = threading.Event()

    def __call__(self, pid: int) -> None:
        self.pids.append(pid)
        self.event.set()


def test_child_exit_is_reported_with_its_pid() -> None:
    recorder = Recorder()
    child = subprocess.Popen(["sleep", "60"])
    try:
        watcher = ExitWatcher(recorder)
        watcher.watch(child.pid)
        assert not recorder.event.wait(0.3)
        child.kill()
        assert recorder.event.wait(10)
        assert recorder.pids == [child.pid]
        assert watcher.pid is None
    finally:
        child.kill()
        child.wait()


def test_adopted_process_exit_is_reported() -> None:
    """A mariadbd left by an earlier agent is not our child: the watcher must not depend on wait()."""
    recorder = Recorder()
    shell = subprocess.run(["sh", "-c", "setsid sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True,
                           text=True, check=True)
    pid = int(shell.stdout.strip())
    watcher = ExitWatcher(recorder)
    watcher.watch(pid)
    os.kill(pid, signal.SIGKILL)
    assert recorder.event.wait(10)
    assert recorder.pids == [pid]


def test_already_gone_pid_is_reported_at_once() -> None:
    recorder = Recorder()
    child = subprocess.Popen(["true"])
    child.wait()
    ExitWatcher(recorder).watch(child.pid)
    assert recorder.event.wait(10)


def test_cancelled_watch_reports_nothing() -> None:
    recorder = Recorder()
    child = subprocess.Popen(["sleep", "60"])
    try:
        watcher = ExitWatcher(recorder)
        watcher.watch(child.pid)
        watcher.cancel()
        child.kill()
        child.wait()
        assert not recorder.event.wait(1.5)
    finally:
        child.kill()


def test_watching_a_new_pid_replaces_the_old_one() -> None:
    recorder = Recorder()
    first = subprocess.Popen(["sleep", "60"])
    second = subprocess.Popen(["sleep", "60"])
    try:
        watcher = ExitWatcher(recorder)
        watcher.watch(first.pid)
        watcher.watch(second.pid)
        first.kill()
        first.wait()
        assert not recorder.event.wait(1.0)
        second.kill()
        assert recorder.event.wait(10)
        assert recorder.pids == [second.pid]
    finally:
        for child in (first, second):
            child.kill()
            child.wait()
