"""What one binary log file holds, read from its event headers: the GTIDs of the domain and when they were
committed, for the archive's index (backup/binlog_index.py).

Why not `mariadb-binlog`'s text: its event times are printed in the local time zone with no zone, and row
transactions carry no `SET TIMESTAMP`. The file itself is simple to walk: a 4-byte magic, then events,
each with a 19-byte header (timestamp: seconds since the epoch; type; server id; size of the whole event,
its checksum included; next position; flags). A GTID event (type 162) starts with the seqno (8 bytes) and
the domain (4 bytes). Nothing else of the file is read, so compressed or row events change nothing. An
encrypted binlog (`encrypt_binlog`) cannot be read this way, and is said to be so.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO

MAGIC = b"\xfebin"
HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server id, event size, next position, flags
GTID_EVENT = 162
START_ENCRYPTION_EVENT = 164
GTID_BODY = struct.Struct("<QI")  # seqno, domain


class BinlogUnreadable(ValueError):
    """The file is not a binary log this can read (the reason in the message)."""


@dataclass(frozen=True)
class BinlogFacts:
    domain: int
    server: int  # the server id of the domain's last GTID (0: none seen)
    first_seqno: int | None
    last_seqno: int | None
    first_time: int
    last_time: int
    seconds: tuple[tuple[int, int], ...]  # (second, last seqno of a run committed in it), in file order
    other_domains: tuple[int, ...]  # domains seen besides `domain` (reported, never replayed by number)
    transactions: int


def scan_binlog(stream: BinaryIO, domain: int, name: str = "binlog", active: bool = False) -> BinlogFacts:
    """Walk the events of one binlog file; BinlogUnreadable naming `name` when it is not one. `active`:
    the file the server still writes, whose last event may be half written: reading stops there."""
    if stream.read(4) != MAGIC:
        raise BinlogUnreadable(f"{name} is not a binary log (no magic number)")
    first: int | None = None
    last: int | None = None
    server = 0
    first_time = last_time = 0
    seconds: list[tuple[int, int]] = []
    others: set[int] = set()
    count = 0
    position = 4
    while True:
        header = stream.read(HEADER.size)
        if not header:
            break
        if len(header) < HEADER.size:
            if active:
                break
            raise BinlogUnreadable(f"{name} ends inside an event header at byte {position} (still being written?)")
        timestamp, kind, server_id, size, _next, _flags = HEADER.unpack(header)
        if size < HEADER.size:
            raise BinlogUnreadable(f"{name} has an event of {size} bytes at byte {position}: corrupt")
        body = stream.read(size - HEADER.size)
        if len(body) < size - HEADER.size:
            if active:
                break
            raise BinlogUnreadable(f"{name} ends inside an event at byte {position} (still being written?)")
        if kind == START_ENCRYPTION_EVENT:
            raise BinlogUnreadable(f"{name} is encrypted (encrypt_binlog): its GTIDs cannot be indexed")
        if kind == GTID_EVENT and len(body) >= GTID_BODY.size:
            seqno, event_domain = GTID_BODY.unpack_from(body)
            if event_domain != domain:
                others.add(event_domain)
            else:
                count += 1
                if first is None:
                    first, first_time = seqno, timestamp
                if last is not None and seqno <= last:
                    raise BinlogUnreadable(f"{name}: GTID seqno {seqno} of domain {domain} after {last} at byte "
                                           f"{position} (the sequence must grow; gtid_strict_mode)")
                last, last_time, server = seqno, timestamp, server_id
                if seconds and seconds[-1][0] == timestamp:
                    seconds[-1] = (timestamp, seqno)
                else:
                    seconds.append((timestamp, seqno))
        position += size
    return BinlogFacts(domain, server, first, last, first_time, last_time, tuple(seconds), tuple(sorted(others)),
                       count)
