"""The terminal live view (dashboard/terminal.py, `list --watch` and `top`): the change tracker, the
renderer (drawn to plain text), one frame read from a target, the loop off a terminal, and the CLI's
usage errors. Pure logic: no cluster, no terminal."""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console

from galera_pilot.cli.main import main
from galera_pilot.cluster import Cluster, HistoryEvent, Member
from galera_pilot.control.members import LIST_KEYS, Row
from galera_pilot.control.target import ClusterTarget, DCSUnreachable
from galera_pilot.dashboard import terminal
from galera_pilot.dashboard.terminal import (
    NO_HISTORY_IN_OUTAGE,
    ChangeTracker,
    Frame,
    latest_history,
    render,
    state_style,
    take_frame,
    watch,
)
from galera_pilot.dcs.history import NOTIFICATION
from galera_pilot.errors import PilotError

AT = datetime(2025, 3, 1, 12, 30, 15, 250000).timestamp()


def row(name: str, state: str = "Synced", role: str = "", seqno: int = 42) -> Row:
    values: dict[str, Any] = {key: "" for key in LIST_KEYS}
    return {**values, "name": name, "address": f"10.0.0.{name[-1]}", "role": role, "state": state,
            "cluster_status": "Primary", "cluster_size": 3, "seqno": seqno, "activity": "watching"}


def three(**states: str) -> list[Row]:
    return [row(n, states.get(n, "Synced"), "writer" if n == "node1" else "") for n in ("node1", "node2", "node3")]


def text_of(renderable: Any) -> str:
    console = Console(record=True, width=200, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def lines_with(text: str, word: str) -> list[str]:
    return [line for line in text.splitlines() if word in line]


# ---- the change tracker -------------------------------------------------------------------------------------------
def test_the_first_frame_highlights_nothing() -> None:
    tracker = ChangeTracker()
    tracker.update(three(), now=100.0)
    assert tracker.highlighted(100.0) == set() and tracker.departed(100.0) == []


def test_a_changed_state_is_highlighted_for_the_window_only() -> None:
    tracker = ChangeTracker(window=5.0)
    tracker.update(three(), now=100.0)
    tracker.update(three(node2="Joiner"), now=101.0)
    assert tracker.highlighted(101.0) == {("node2", "state")}
    tracker.update(three(node2="Joiner"), now=102.0)  # unchanged since: still within the window
    assert tracker.highlighted(105.9) == {("node2", "state")}
    assert tracker.highlighted(106.0) == set()
    tracker.update(three(), now=107.0)  # back to Synced: a change again
    assert tracker.highlighted(107.0) == {("node2", "state")}


def test_only_the_cells_that_changed_are_highlighted() -> None:
    tracker = ChangeTracker()
    tracker.update(three(), now=0.0)
    rows = three(node3="stopped")
    rows[0]["seqno"] = 43
    tracker.update(rows, now=1.0)
    assert tracker.highlighted(1.0) == {("node1", "seqno"), ("node3", "state")}


def test_a_member_that_appears_or_disappears_counts_as_changed() -> None:
    tracker = ChangeTracker(window=5.0)
    tracker.update(three(), now=0.0)
    tracker.update([*three(), row("node4", "Joiner")], now=1.0)
    assert tracker.highlighted(1.0) == {("node4", key) for key in LIST_KEYS}
    tracker.update(three(), now=2.0)
    assert tracker.departed(2.0) == ["node4"] and tracker.departed(7.0) == []
    tracker.update([*three(), row("node4")], now=8.0)  # back: no longer departed, highlighted as new
    assert tracker.departed(8.0) == [] and ("node4", "name") in tracker.highlighted(8.0)


# ---- the renderer -------------------------------------------------------------------------------------------------
def events() -> list[HistoryEvent]:
    return [HistoryEvent(AT - 30, "node1", "initialize", "won the create"),
            HistoryEvent(AT - 20, "node2", "join", "joined node1"),
            HistoryEvent(AT - 15, "node2", NOTIFICATION, "state Synced"),
            HistoryEvent(AT - 10, "node1", "writer", "took the writer role")]


def test_the_writer_is_starred_and_the_history_is_newest_first_without_notifications() -> None:
    frame = Frame(AT, "galera", "the folder /x", three(node3="Joiner"), events(), "node1")
    text = text_of(render(frame))
    assert text.splitlines()[0] == "galera (the folder /x) at 12:30:15; writer: node1"
    assert lines_with(text, "node1 ")[0].lstrip().startswith("★ node1")
    assert not lines_with(text, "★ node2") and not lines_with(text, "★ node3")
    for column in ("name", "address", "role", "state", "seqno", "activity"):
        assert column in lines_with(text, "cluster_status")[0]
    assert "Joiner" in lines_with(text, "10.0.0.3")[0]
    history = text[text.index("latest history"):]
    assert history.index("took the writer role") < history.index("joined node1") < history.index("won the create")
    assert "state Synced" not in text and NOTIFICATION not in history
    assert "12:30:05.250" in history  # HH:MM:SS.mmm


def test_the_history_shows_the_latest_n() -> None:
    assert [e.action for e in latest_history(events(), 2)] == ["writer", "join"]
    text = text_of(render(Frame(AT, "galera", "s", three(), events(), "node1"), history_lines=1))
    assert "took the writer role" in text and "joined node1" not in text
    assert "latest history" not in text_of(render(Frame(AT, "galera", "s", three(), events(), "node1"),
                                                  history_lines=0))


def test_during_an_outage_the_heading_says_so_and_there_is_no_history() -> None:
    outage = "the DCS sqlite:///x is unreachable: boom; showing what the members' REST APIs say"
    frame = Frame(AT, "galera", "the folder /x", three(), (), "node1", outage)
    text = text_of(render(frame))
    assert outage in text and NO_HISTORY_IN_OUTAGE in text
    assert "writer: node1 (each agent's own view)" in text.splitlines()[0]
    assert "★ node1" in text


def test_no_writer_is_said() -> None:
    text = text_of(render(Frame(AT, "galera", "s", [row("node1", "stopped")], (), None)))
    assert "writer: none" in text and "★" not in text


def test_states_are_coloured_and_changed_cells_reversed() -> None:
    assert state_style("Synced") == "green"
    assert {state_style(s) for s in ("Donor/Desynced", "Joiner", "Joined")} == {"yellow"}
    assert {state_style(s) for s in ("stopped", "unreachable", "Initialized")} == {"red"}
    console = Console(record=True, width=200, color_system="standard", force_terminal=True, file=io.StringIO())
    console.print(render(Frame(AT, "galera", "s", three(node2="Joiner"), (), "node1"), {("node2", "state")}))
    styled = console.export_text(styles=True)
    assert "\x1b[7;33mJoiner" in styled  # reverse video, yellow
    assert "\x1b[32mSynced" in styled  # green, not reversed


# ---- one frame, read as `list` reads it ----------------------------------------------------------------------------
class Target(ClusterTarget):
    def __init__(self, snapshot: Cluster | Exception) -> None:
        super().__init__(dcs_url="sqlite:///x/dcs.sqlite", cluster_name="galera", source="the DCS sqlite:///x")
        self._snapshot = snapshot

    def snapshot(self) -> Cluster:
        if isinstance(self._snapshot, Exception):
            raise self._snapshot
        return self._snapshot


UNREACHABLE = DCSUnreachable("the DCS sqlite:///x is unreachable: gone")


def test_a_frame_from_the_dcs() -> None:
    snapshot = Cluster(members={n: Member(n, f"10.0.0.{n[-1]}", running=True, state="Synced",
                                          cluster_status="Primary") for n in ("node1", "node2")},
                       history=tuple(events()), writer="node2")
    frame = take_frame(Target(snapshot), clock=lambda: AT)
    assert frame.at == AT and frame.outage is None and frame.writer == "node2"
    assert [r["name"] for r in frame.rows] == ["node1", "node2"] and frame.rows[1]["role"] == "writer"
    assert len(frame.history) == 4


def test_a_frame_during_an_outage_falls_back_as_list_does() -> None:
    frame = take_frame(Target(UNREACHABLE), clock=lambda: AT)
    assert frame.outage is not None and frame.outage.startswith("the DCS sqlite:///x is unreachable: gone")
    assert "no member address is known here" in frame.outage  # outage_heading's words, nothing known
    assert frame.history == () and frame.writer is None


def test_a_store_that_cannot_be_opened_is_an_outage_too(tmp_path: Path) -> None:
    """A SQLite file that is gone fails when it is opened: ClusterTarget.snapshot counts that as unreachable."""
    gone = tmp_path / "moved-aside" / "dcs.sqlite"
    frame = take_frame(ClusterTarget(f"sqlite://{gone}", "galera", "the folder /x"))
    assert frame.outage is not None
    assert frame.outage.startswith(f"the DCS sqlite://{gone} is unreachable:"), frame.outage


def test_other_errors_end_the_view() -> None:
    with pytest.raises(PilotError, match="holds no cluster"):
        take_frame(Target(PilotError("the DCS sqlite:///x holds no cluster named 'galera'")))


# ---- the loop off a terminal -------------------------------------------------------------------------------------
def test_off_a_terminal_every_frame_is_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    states = iter(["Synced", "Joiner", "Synced"])
    monkeypatch.setattr(terminal, "take_frame",
                        lambda target: Frame(AT, "galera", "s", three(node2=next(states)), events(), "node1"))
    out = io.StringIO()
    slept: list[float] = []
    watch(Target(UNREACHABLE), 0.5, console=Console(file=out, width=200), frames=3, sleep=slept.append)
    text = out.getvalue()
    assert len(lines_with(text, "galera (s) at")) == 3 and slept == [0.5, 0.5]
    assert [line.split()[2] for line in lines_with(text, "10.0.0.2")] == ["Synced", "Joiner", "Synced"]


# ---- the CLI's usage errors: before any cluster is addressed -----------------------------------------------------
@pytest.mark.parametrize(("args", "says"), [
    (["list", "--watch", "0"], "'--watch'"),
    (["list", "--watch", "-0.5"], ""),
    (["list", "--watch", "0.1"], "'--watch'"),
    (["list", "--watch", "--format", "json"], "--watch draws a table; it does not go with --format json"),
    (["list", "--format", "json", "--watch", "2"], "--watch draws a table"),
    (["top", "--interval", "0"], "'--interval'"),
    (["top", "--history", "-1"], "'--history'"),
])
def test_usage_errors(args: list[str], says: str) -> None:
    result = CliRunner().invoke(main, [*args, "--dir", "/nonexistent/folder"])
    assert result.exit_code == 2, result.output
    assert says in result.output and "does not exist" not in result.output, result.output


def test_top_and_watch_are_verbs_of_the_group() -> None:
    assert "top" in CliRunner().invoke(main, ["--help"]).output
    assert "--watch [SECONDS]" in CliRunner().invoke(main, ["list", "--help"]).output
