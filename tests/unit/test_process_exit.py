"""Telling a mariadbd that could not reach its peers from one that crashed, by its last log lines."""

from __future__ import annotations

from galera_pilot.mariadb.process import gave_up_reaching_peers

UNREACHABLE = """\
2026-11-26 10:25:08 0 [Note] WSREP: view((empty))
2026-11-26 10:25:08 0 [ERROR] WSREP: failed to open gcomm backend connection: 110: failed to reach primary view
2026-11-26 10:25:09 0 [ERROR] WSREP: gcs connect failed: Operation timed out
2026-11-26 10:25:09 0 [ERROR] Aborting
"""

CRASH = """\
2026-11-26 10:25:08 0 [ERROR] InnoDB: Database page corruption on disk or a failed file read of page
2026-11-26 10:25:08 0 [ERROR] mariadbd got signal 6 ;
"""


def test_gcomm_timeout_is_not_a_crash() -> None:
    assert gave_up_reaching_peers(UNREACHABLE)


def test_a_real_crash_is_one() -> None:
    assert not gave_up_reaching_peers(CRASH)
    assert not gave_up_reaching_peers("")
