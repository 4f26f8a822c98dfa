"""What garbd says about itself, read from its log: it has no SQL and no status port, and its log lines
are the only account of its component and state. Pure parsing plus a reader that follows the file."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

COMPONENT = re.compile(r"New COMPONENT: primary = (yes|no), bootstrap = (?:yes|no), my_idx = -?\d+, "
                       r"memb_num = (\d+)")
SHIFT = re.compile(r"Shifting (\w+) -> (\w+)")
READ_AT_MOST = 1 << 20  # bytes per look: a log that grew by more is read from its last MiB


@dataclass(frozen=True)
class GarbdView:
    """garbd's last word on its component and its state machine (gcs: OPEN, PRIMARY, JOINER, JOINED,
    SYNCED, DONOR, CLOSED...)."""

    state: str = ""
    primary: bool = False
    size: int = 0
    last_line: str = ""  # the last line it wrote (why it exited, when it did)


def follow(view: GarbdView, lines: Iterable[str]) -> GarbdView:
    """The view after these new log lines."""
    for line in lines:
        if not line.strip():
            continue
        view = replace(view, last_line=line.strip())
        component = COMPONENT.search(line)
        if component:
            view = replace(view, primary=component.group(1) == "yes", size=int(component.group(2)))
            continue
        shift = SHIFT.search(line)
        if shift:
            view = replace(view, state=shift.group(2))
    return view


class GarbdLogReader:
    """Reads what garbd appended since the last look (from the start again if the file shrank: rotated
    or replaced)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self.view = GarbdView()

    def restart(self) -> None:
        """A new garbd process: its state starts over, and only what it writes from now on counts."""
        try:
            self._offset = self.path.stat().st_size
        except FileNotFoundError:
            self._offset = 0
        self.view = GarbdView()

    def look(self) -> GarbdView:
        try:
            size = self.path.stat().st_size
            if size < self._offset:
                self._offset = 0
            if size - self._offset > READ_AT_MOST:
                self._offset = size - READ_AT_MOST
            with open(self.path, "rb") as log:
                log.seek(self._offset)
                data = log.read(size - self._offset)
        except FileNotFoundError:
            return self.view
        complete = data.rfind(b"\n") + 1  # a line still being written is read next time, whole
        self._offset += complete
        self.view = follow(self.view, data[:complete].decode(errors="replace").splitlines())
        return self.view
