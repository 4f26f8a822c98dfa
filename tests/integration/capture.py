"""A packet capture on the loopback interface (tcpdump), to prove what crosses the wire is encrypted."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from tests.waiting import wait_for


class Capture:
    """tcpdump -i lo of every packet from or to `addresses`, written to `path` as it arrives (-U)."""

    def __init__(self, path: Path, addresses: list[str]) -> None:
        assert shutil.which("tcpdump"), "tcpdump missing: run scripts/setup.sh"
        self.path = path
        self.filter = " or ".join(f"host {address}" for address in addresses)
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Capture:
        self._process = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "-n", "-s", "0", "-w", str(self.path),
                                          self.filter], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # tcpdump says "listening on lo" once it captures; before that, packets would be missed.
        assert self._process.stderr is not None
        line = self._process.stderr.readline().decode()
        assert "listening on" in line, f"tcpdump did not start: {line}"
        wait_for(self.path.exists, 5, "tcpdump's capture file")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._process is not None
        time.sleep(0.2)  # the last packets' write (-U flushes per packet)
        self._process.terminate()
        self._process.wait(10)

    def data(self) -> bytes:
        return self.path.read_bytes()
