"""Reading a binlog's GTIDs and commit seconds from its event headers, on a file a real mariadbd 10.11
wrote (`log_bin`, `gtid_domain_id=7`, ROW; seqnos 6-9 of domain 7 over three seconds, one transaction
of domain 0 among them), checked against what `mariadb-binlog` prints of the same file."""

from __future__ import annotations

import datetime as dt
import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from galera_pilot.backup.binlog_scan import HEADER, MAGIC, BinlogUnreadable, scan_binlog

REAL = Path(__file__).parent / "data" / "mariadb-bin.domain7.bin"


def test_a_real_binlog_is_indexed_as_mariadb_binlog_reads_it() -> None:
    with REAL.open("rb") as stream:
        facts = scan_binlog(stream, 7, REAL.name)
    assert (facts.first_seqno, facts.last_seqno, facts.server, facts.transactions) == (6, 9, 1, 4)
    assert facts.other_domains == (0,)
    binary = shutil.which("mariadb-binlog")
    assert binary, "mariadb-binlog missing: run scripts/setup.sh"
    text = subprocess.run([binary, str(REAL)], capture_output=True, text=True, check=True, timeout=60,
                          env={"TZ": "UTC", "PATH": "/usr/bin:/bin"}).stdout
    printed = [(int(dt.datetime.strptime(f"{day} {clock}", "%y%m%d %H:%M:%S").replace(tzinfo=dt.UTC).timestamp()),
                int(domain), int(seqno))
               for day, clock, domain, seqno in re.findall(r"^#(\d{6})\s+(\d{1,2}:\d\d:\d\d) server id \d+ .*"
                                                           r"\tGTID (\d+)-\d+-(\d+)", text, re.MULTILINE)]
    ours = [(at, seqno) for at, seqno in facts.seconds]
    expected: list[tuple[int, int]] = []
    for at, domain, seqno in printed:
        if domain != 7:
            continue
        if expected and expected[-1][0] == at:
            expected[-1] = (at, seqno)
        else:
            expected.append((at, seqno))
    assert ours == expected and len(expected) >= 2, text
    assert facts.first_time == printed[0][0] and facts.last_time == printed[-1][0]


def test_what_is_not_a_whole_binlog_is_named() -> None:
    data = REAL.read_bytes()
    with pytest.raises(BinlogUnreadable, match="x is not a binary log"):
        scan_binlog(io.BytesIO(b"PK\x03\x04" + data[4:]), 7, "x")
    with pytest.raises(BinlogUnreadable, match="ends inside an event"):
        scan_binlog(io.BytesIO(data[:-7]), 7, "cut")
    with pytest.raises(BinlogUnreadable, match="ends inside an event header"):
        scan_binlog(io.BytesIO(MAGIC + b"\x00" * 5), 7, "cut")
    encrypted = MAGIC + HEADER.pack(0, 164, 1, HEADER.size + 4, 0, 0) + b"\x00" * 4
    with pytest.raises(BinlogUnreadable, match="encrypted"):
        scan_binlog(io.BytesIO(encrypted), 7, "e")
    tiny = MAGIC + HEADER.pack(0, 2, 1, 3, 0, 0)
    with pytest.raises(BinlogUnreadable, match="corrupt"):
        scan_binlog(io.BytesIO(tiny), 7, "t")
    empty = scan_binlog(io.BytesIO(MAGIC), 7)
    assert empty.first_seqno is None and empty.transactions == 0
