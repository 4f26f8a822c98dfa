"""Multi-host fixtures: hosts are network namespaces (see harness.py). Needs root, iproute2, iptables and
etcd; asserted, never skipped. Leftover gp5-* namespaces and links are removed before and after the session,
so a run killed half-way does not break the next one."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from .harness import cleanup_leftovers


@pytest.fixture(scope="session", autouse=True)
def _namespaces_cleaned() -> Iterator[None]:
    assert os.geteuid() == 0, "the multi-host tests create network namespaces and need root"
    for tool in ("ip", "iptables", "etcd"):
        assert shutil.which(tool), f"{tool} is missing: run scripts/setup.sh"
    cleanup_leftovers()
    try:
        yield
    finally:
        cleanup_leftovers()
