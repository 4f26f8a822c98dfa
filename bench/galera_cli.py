"""The one helper every benchmark shares: run the galera-pilot CLI and fail loudly with what it said."""

from __future__ import annotations

import subprocess
import sys

CLI = [sys.executable, "-m", "galera_pilot"]


def run(*args: str) -> str:
    """`galera-pilot ARGS`'s stdout; RuntimeError with its stdout and stderr when it exits non-zero."""
    result = subprocess.run([*CLI, *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"galera-pilot {' '.join(args)}: {result.stdout}\n{result.stderr}")
    return result.stdout
