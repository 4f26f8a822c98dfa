"""The terminal live view, `list --watch [SECONDS]` and `top`: `list`'s member table redrawn in place.

Three parts, so that what a person sees can be tested without a cluster or a terminal:
- `take_frame`, the only one that does I/O: one read of the cluster as `list` reads it (the DCS snapshot,
  or while the DCS is unreachable the members' REST APIs, control/members.py);
- `ChangeTracker`, pure: when each member's cells last changed, so a state change stays visible for a
  few seconds even at a one-second interval (a redrawn table otherwise hides what just moved);
- `render`, pure: a frame as one rich renderable.
`watch` ties them together. On a terminal it redraws in place (rich's Live); anywhere else (a pipe, `ssh
host cmd` without -t, a dumb terminal) rich's Live would print only the last frame when it stops, so each
frame is printed after the one before instead: a log of the cluster, one table per interval.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Set
from dataclasses import dataclass, field
from datetime import datetime

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from galera_pilot.cluster import HistoryEvent
from galera_pilot.control.members import LIST_KEYS, Row, ask_members, outage_heading, rows_from_snapshot
from galera_pilot.control.target import ClusterTarget, DCSUnreachable
from galera_pilot.dashboard.frame import latest_history

HIGHLIGHT_SECONDS = 5.0  # long enough to be seen at any interval the CLI accepts, short enough to mean "just now"
HISTORY_LINES = 8
WRITER_MARK = "★ "
NO_MARK = "  "  # the other names, aligned with the writer's
NO_HISTORY_IN_OUTAGE = "history: not shown while the DCS is unreachable (it is kept in the DCS)"
IN_PROGRESS = ("Donor", "Joiner", "Joining", "Joined", "starting")  # on their way to Synced (or back)

Cell = tuple[str, str]  # (member name, column)


@dataclass(frozen=True)
class Frame:
    """One read of the cluster: what `list` would print at `at` (wall clock), and the history under it.
    `outage` is `list`'s first line while the DCS is unreachable (no history then), else None."""

    at: float
    cluster: str
    source: str
    rows: list[Row]
    history: Sequence[HistoryEvent] = ()
    writer: str | None = None
    outage: str | None = None


def take_frame(target: ClusterTarget, clock: Callable[[], float] = time.time) -> Frame:
    """One frame, read as `list` reads it, so the two never disagree about a member."""
    at = clock()
    try:
        snapshot = target.snapshot()
    except DCSUnreachable as error:
        view = ask_members(target.known)
        # Each agent's own view of the writer: during an outage two may claim it, and both are shown.
        writers = [str(row["name"]) for row in view.rows if row.get("role") == "writer"]
        return Frame(at, target.cluster_name, target.source, view.rows, (), ", ".join(writers) or None,
                     outage_heading(target, str(error), view))
    return Frame(at, target.cluster_name, target.source, rows_from_snapshot(target, snapshot), snapshot.history,
                 snapshot.writer)


@dataclass
class ChangeTracker:
    """When each (member, column) last changed, by the caller's clock (any monotonic number of seconds).

    The first frame sets the baseline and highlights nothing: everything would be "new" and nothing would
    stand out. After it, a member that appears counts as changed in every column, and one that disappears
    is remembered by name for the same window (it has no row left to highlight)."""

    window: float = HIGHLIGHT_SECONDS
    keys: tuple[str, ...] = LIST_KEYS
    _previous: dict[str, Row] | None = None
    _changed_at: dict[Cell, float] = field(default_factory=dict)
    _departed_at: dict[str, float] = field(default_factory=dict)

    def update(self, rows: Iterable[Row], now: float) -> None:
        current = {str(row["name"]): row for row in rows}
        previous, self._previous = self._previous, current
        if previous is None:
            return
        for name, row in current.items():
            before = previous.get(name)
            self._departed_at.pop(name, None)
            for key in self.keys:
                if before is None or _text(before, key) != _text(row, key):
                    self._changed_at[(name, key)] = now
        for name in previous.keys() - current.keys():
            self._departed_at[name] = now

    def highlighted(self, now: float) -> set[Cell]:
        return {cell for cell, at in self._changed_at.items() if now - at < self.window}

    def departed(self, now: float) -> list[str]:
        return sorted(name for name, at in self._departed_at.items() if now - at < self.window)


def _text(row: Row, key: str) -> str:
    return str(row.get(key, ""))


def state_style(state: str) -> str:
    """Synced green, on the way to or from it yellow, anything else (stopped, unreachable, ...) red."""
    if state == "Synced":
        return "green"
    return "yellow" if state.startswith(IN_PROGRESS) else "red"


def clock_text(at: float, with_millis: bool = True) -> str:
    text = datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")
    return text[:-3] if with_millis else text[:-7]


def render(frame: Frame, highlighted: Set[Cell] = frozenset(),
           departed: Sequence[str] = (), history_lines: int = HISTORY_LINES) -> Group:
    """The heading, the member table and the latest history, as one renderable."""
    parts: list[RenderableType] = [heading(frame)]
    if frame.outage is not None:
        parts.append(Text(frame.outage, style="bold red"))
    parts.append(member_table(frame, highlighted))
    if departed:
        parts.append(Text(f"no longer listed: {', '.join(departed)}", style="reverse"))
    if history_lines > 0 or frame.outage is not None:
        parts.append(history_part(frame, history_lines))
    return Group(*parts)


def heading(frame: Frame) -> Text:
    text = Text()
    text.append(frame.cluster, style="bold")
    text.append(f" ({frame.source}) at {clock_text(frame.at, with_millis=False)}; writer: ")
    text.append(frame.writer or "none", style="bold" if frame.writer else "bold red")
    if frame.outage is not None:
        text.append(" (each agent's own view)")
    return text


def member_table(frame: Frame, highlighted: Set[Cell] = frozenset()) -> Table:
    """`list`'s columns; the writer's row bold with a star before its name, states coloured, cells that
    changed within the tracker's window in reverse video."""
    table = Table(*LIST_KEYS, box=None, pad_edge=False)
    for row in frame.rows:
        name = str(row["name"])
        writer = row.get("role") == "writer"
        cells = []
        for key in LIST_KEYS:
            value = _text(row, key)
            style = state_style(value) if key == "state" else ""
            if key == "name":
                value = (WRITER_MARK if writer else NO_MARK) + value
            if (name, key) in highlighted:
                style = f"{style} reverse".strip()
            cells.append(Text(value, style=style))
        table.add_row(*cells, style="bold" if writer else None)
    return table


def history_part(frame: Frame, count: int = HISTORY_LINES) -> RenderableType:
    if frame.outage is not None:
        return Text(NO_HISTORY_IN_OUTAGE, style="dim")
    events = latest_history(frame.history, count)
    if not events:
        return Text("history: nothing recorded yet", style="dim")
    table = Table("time", "member", "action", "reason", box=None, pad_edge=False,
                  title="latest history, newest first", title_justify="left")
    for event in events:
        table.add_row(clock_text(event.at), event.member, event.action, event.reason)
    return table


def default_console() -> Console:
    """stdout's console; off a terminal as wide as `list` prints its table (rich would wrap at 80)."""
    console = Console()
    return console if console.is_terminal else Console(width=max(console.width, 200))


def watch(target: ClusterTarget, interval: float, history_lines: int = HISTORY_LINES,
          console: Console | None = None, frames: int | None = None,
          sleep: Callable[[float], None] = time.sleep) -> None:
    """Read and draw a frame every `interval` seconds until interrupted (or `frames` of them, for tests).
    A KeyboardInterrupt is the caller's to take as the normal end."""
    console = console or default_console()
    tracker = ChangeTracker()

    def views() -> Iterator[Group]:
        for index in itertools.count() if frames is None else range(frames):
            if index:
                sleep(interval)
            frame = take_frame(target)
            now = time.monotonic()
            tracker.update(frame.rows, now)
            yield render(frame, tracker.highlighted(now), tracker.departed(now), history_lines)

    if console.is_terminal and not console.is_dumb_terminal:
        with Live(console=console, auto_refresh=False, screen=False, transient=False) as live:
            for view in views():
                live.update(view)
                live.refresh()
        return
    for view in views():  # not a terminal: Live would print the last frame only, when it stops
        console.print(view)
        console.print()
        console.file.flush()  # a pipe is block-buffered: each frame must leave when it is drawn
