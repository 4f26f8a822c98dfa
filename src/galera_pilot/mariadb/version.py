"""MariaDB versions: the one a server runs (`SELECT VERSION()`) and the one its installed binary would
run (`mariadbd --version`), which differ once new packages are installed and the server not restarted."""

from __future__ import annotations

import os
import re
import subprocess

VERSION_RE = re.compile(r"\b(\d+)\.(\d+)\.(\d+)")
INSTALLED_RE = re.compile(r"\bVer\s+(\S+)")

Version = tuple[int, int, int]


def parse_version(text: str) -> Version | None:
    """(major, minor, patch) of `10.11.19-MariaDB-0+deb12u1`; None when there is no version in it."""
    found = VERSION_RE.search(text or "")
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def short(text: str) -> str:
    """`10.11.19` of `10.11.19-MariaDB-0+deb12u1` (what `list` shows)."""
    return text.split("-")[0]


class InstalledVersion:
    """What `mariadbd --version` says, asked again only when the binary changed (a package replaced it)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self._seen: tuple[tuple[int, int, int], str] | None = None

    def get(self) -> str:
        try:
            stat = os.stat(self.binary)
        except OSError:
            return ""
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._seen is None or self._seen[0] != key:
            self._seen = (key, self._ask())
        return self._seen[1]

    def _ask(self) -> str:
        try:
            result = subprocess.run([self.binary, "--no-defaults", "--version"], capture_output=True, text=True,
                                    timeout=30, check=False)
        except (OSError, subprocess.SubprocessError):
            return ""
        found = INSTALLED_RE.search(result.stdout)
        return found[1] if found else ""
