"""The terminal live view (issue 16), on a real 3-node cluster (nodes on 127.0.0.150-152): `list --watch`
with stdout a pipe, as over `ssh host cmd` without -t, prints every frame one after another. It follows a
mariadbd killed and restarted by its agent, shows the DCS outage as `list` does (the members' REST APIs,
no history), and ends with exit status 0 on SIGINT (Ctrl-C).

The outage is made on a SQLite DCS only (this module runs in the sqlite lane): the file is moved aside
and a folder put in its place, so every new connection fails (each frame opens one) while the agents keep
the connections they have, on the moved file, and the cluster keeps running under the view.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from galera_pilot.dashboard.terminal import NO_HISTORY_IN_OUTAGE
from galera_pilot.dcs.history import NOTIFICATION
from galera_pilot.embedded.cluster import EmbeddedCluster
from tests.waiting import wait_for

from .conftest import CLI, cli, destroy, mariadbd_pid, new_cluster_path
from .sqlite_outage import SqliteOutage

BASE = "127.0.0.150"
NODES = ("node1", "node2", "node3")
HEADING = re.compile(r"^(\S+) \((.*)\) at (\d\d:\d\d:\d\d); writer: (.*)$")
HISTORY_LINE = re.compile(r"^(\d\d:\d\d:\d\d\.\d{3})\s+(\S+)\s+(\S+)")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory), "--base-address", BASE, "--timeout", "300")
        assert "3 nodes Synced" in result.stdout, result.stdout
        yield directory
    finally:
        destroy(directory)


@dataclass
class Frame:
    """One frame of the plain-text output: its heading's writer, each row's cells by column, who is starred."""

    index: int
    writer: str
    rows: dict[str, dict[str, str]]
    starred: list[str]
    history: list[tuple[str, str, str]]  # (time, member, action) of each history line, as printed
    text: str  # the frame's lines joined by spaces (rich wraps long lines at the console's width)


def parse(index: int, lines: list[str]) -> Frame:
    writer = HEADING.match(lines[0]).group(4)  # type: ignore[union-attr]
    header = next(i for i, line in enumerate(lines) if line.startswith("name ") and "cluster_status" in line)
    starts = [m.start() for m in re.finditer(r"\S+", lines[header])]
    columns = lines[header].split()
    rows: dict[str, dict[str, str]] = {}
    starred = []
    for line in lines[header + 1:]:
        if not line.strip() or line.startswith(("latest history", "history:", "no longer listed")):
            break
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        name = cells[0].removeprefix("★").strip()
        if not re.fullmatch(r"node\d+", name):
            continue  # a wrapped cell's continuation
        rows[name] = dict(zip(columns, cells, strict=True))
        if cells[0].startswith("★"):
            starred.append(name)
    history = [(m[1], m[2], m[3]) for line in lines if (m := HISTORY_LINE.match(line))]
    return Frame(index, writer, rows, starred, history, " ".join(line.strip() for line in lines))


class Watch:
    """`galera-pilot list --dir DIR --watch SECONDS` with stdout a pipe (stderr into it: a traceback would
    show), read line by line by a thread."""

    def __init__(self, directory: Path, interval: str = "0.5") -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "TTY_COMPATIBLE")}
        self.process = subprocess.Popen([*CLI, "list", "--dir", str(directory), "--watch", interval],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def frames(self) -> list[Frame]:
        """Every complete frame so far (one that the next frame's heading follows)."""
        with self._lock:
            lines = list(self.lines)
        starts = [i for i, line in enumerate(lines) if HEADING.match(line)]
        return [parse(n, lines[a:b]) for n, (a, b) in enumerate(itertools.pairwise(starts))]

    def wait_frame(self, predicate: Callable[[Frame], bool], timeout: float, what: str, after: int = -1) -> Frame:
        def found() -> Frame | None:
            assert self.process.poll() is None, f"the watch exited {self.process.returncode}: {self.output()}"
            return next((f for f in self.frames() if f.index > after and predicate(f)), None)
        try:
            return wait_for(found, timeout, what, interval=0.3)  # type: ignore[return-value]
        except AssertionError as error:
            raise AssertionError(f"{error}\nlast output:\n{self.output()[-6000:]}") from None

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def interrupt(self) -> int:
        """Ctrl-C: SIGINT, and the exit status."""
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self._reader.join(timeout=10)  # it reads to the end of the pipe, then the pipe can be closed
        if self.process.stdout is not None:
            self.process.stdout.close()


def all_synced(frame: Frame) -> bool:
    return all(frame.rows.get(node, {}).get("state") == "Synced" for node in NODES)


def healthy(frame: Frame) -> bool:
    """Three Synced rows, one writer, starred, and the heading names it."""
    return all_synced(frame) and len(frame.starred) == 1 and frame.writer == frame.starred[0] \
        and frame.rows[frame.writer]["role"] == "writer"


def test_the_live_view_follows_a_restart_and_a_dcs_outage(cluster: Path) -> None:
    watch = Watch(cluster)
    try:
        first = watch.wait_frame(healthy, 120, "a frame with three Synced nodes and the writer starred")
        assert "latest history, newest first" in first.text and first.history, first.text
        times = [at for at, _, _ in first.history]  # newest first: each no later than the one above (but midnight)
        assert all(a >= b or (a < "01" and b >= "23") for a, b in itertools.pairwise(times)), first.text
        assert NOTIFICATION not in {action for _, _, action in first.history}, first.text
        victim = next(node for node in NODES if node != first.writer)
        pid = mariadbd_pid(cluster, victim)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        down = watch.wait_frame(lambda f: f.rows.get(victim, {}).get("state") not in (None, "Synced"), 120,
                                f"a frame showing {victim} no longer Synced", after=watch.frames()[-1].index)
        watch.wait_frame(lambda f: f.rows[victim]["state"] == "Synced" and len(f.starred) == 1, 300,
                         f"a later frame showing {victim} Synced again (its agent restarts it)", after=down.index)
        assert watch.interrupt() == 0, watch.output()[-3000:]
        assert "Traceback" not in watch.output()
    finally:
        watch.close()

    dcs_url = EmbeddedCluster(cluster).dcs_url
    if not dcs_url.startswith("sqlite://"):
        return  # the outage is made on SQLite only; this module runs in the sqlite lane (scripts/test.sh)
    wait_for(lambda: mariadbd_pid(cluster, victim) is not None, 60, f"{victim}'s mariadbd running")
    watch = Watch(cluster)
    try:
        before = watch.wait_frame(healthy, 120, "a healthy frame before the outage")
        with SqliteOutage(Path(dcs_url.removeprefix("sqlite://"))):
            during = watch.wait_frame(
                lambda f: "is unreachable" in f.text and "showing what the members' REST APIs say" in f.text,
                120, "a frame with the outage heading", after=before.index)
            assert NO_HISTORY_IN_OUTAGE in during.text and "latest history" not in during.text, during.text
            assert all_synced(during) and during.starred, during.text  # the REST APIs' word, each agent's own
            assert "(each agent's own view)" in during.text
        watch.wait_frame(lambda f: healthy(f) and "is unreachable" not in f.text and "latest history" in f.text,
                         120, "a frame from the DCS again after the outage", after=during.index)
        assert watch.interrupt() == 0, watch.output()[-3000:]
        assert "Traceback" not in watch.output()
    finally:
        watch.close()
