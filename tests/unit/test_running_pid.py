"""embedded.running_pid: is the process behind a pid file the one we started?

Found by a 10x run of the routing tests (and issue 10's `up --dcs etcd` report): `up` said "the proxy
exited" (and once "its agent exited") about a process that was running. A child that has just exec'd shows
an empty /proc/PID/cmdline for a moment: Popen returns when exec closes the close-on-exec pipe, before the
kernel sets the new argument pages up. Here 9 to 167 of 2,000 fresh children looked like that.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psutil

from galera_pilot.embedded.processes import running_pid


def test_a_child_that_has_just_started_is_recognised(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    fd = os.open(pid_file, os.O_WRONLY | os.O_CREAT, 0o644)  # the pid goes in at once, as close to exec as can be
    missed = 0
    try:
        for _ in range(2000):
            child = subprocess.Popen(["sh", "-c", "sleep 5", "galera-pilot-test-marker"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, start_new_session=True, close_fds=True)
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{child.pid}\n".encode(), 0)
                if running_pid(pid_file, "galera-pilot-test-marker") != child.pid:
                    missed += 1
            finally:
                child.kill()
                child.wait()
    finally:
        os.close(fd)
    assert missed == 0, f"{missed} of 2000 running children were taken for gone"


def test_a_reused_pid_a_zombie_or_a_bad_file_is_not_ours(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    assert running_pid(pid_file, "x") is None  # no file
    pid_file.write_text("not a pid\n")
    assert running_pid(pid_file, "x") is None
    other = subprocess.Popen(["sh", "-c", "sleep 5", "someone-else"], stdin=subprocess.DEVNULL)
    try:
        pid_file.write_text(f"{other.pid}\n")
        assert running_pid(pid_file, "galera-pilot-test-marker") is None  # a pid reused by another program
        other.kill()  # exited, not reaped yet: a zombie
        while psutil.Process(other.pid).status() != psutil.STATUS_ZOMBIE:
            time.sleep(0.01)
        assert running_pid(pid_file, "someone-else") is None, "a zombie is not running"
    finally:
        other.kill()
        other.wait()
