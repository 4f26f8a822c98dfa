"""A SQLite DCS made unreachable for new connections, for the tests of what falls back during an outage.

The file is moved aside and a folder put in its place: every new connection fails (a CLI read, a
dashboard look), while the agents keep the connections they have, on the moved file, and the cluster
keeps running. Leaving puts the file back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class SqliteOutage:
    path: Path

    def __enter__(self) -> SqliteOutage:
        self.path.rename(self.path.with_name(self.path.name + ".aside"))
        try:
            self.path.mkdir()
        except OSError:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.path.is_dir():
            self.path.rmdir()
        self.path.with_name(self.path.name + ".aside").rename(self.path)
