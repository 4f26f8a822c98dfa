"""MariaDB GTIDs (`domain-server-seqno`) and GTID positions (one GTID per domain, comma-separated).

Point-in-time recovery counts in GTIDs, not in Galera seqnos: with one `wsrep_gtid_domain_id`,
`wsrep_gtid_mode=ON`, `log_slave_updates` and the same `server_id` on every node, each transaction has
the same GTID on every node, so binary logs archived from any node continue one sequence in that domain
(`../shared` notes, measured on 10.11). A position may also carry other domains (transactions from before
the cluster was set up so, or from an asynchronous replica); they are kept, never replayed by number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GTID_RE = re.compile(r"^(\d{1,10})-(\d{1,10})-(\d{1,20})$")
MAX_UINT32 = 2**32 - 1
MAX_UINT64 = 2**64 - 1


@dataclass(frozen=True, order=True)
class Gtid:
    domain: int
    server: int
    seqno: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server}-{self.seqno}"


def parse_gtid(text: str) -> Gtid:
    """`0-1-42`; ValueError naming the text when it is not one GTID."""
    match = GTID_RE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a GTID (DOMAIN-SERVER-SEQNO, e.g. 0-1-42)")
    domain, server, seqno = (int(part) for part in match.groups())
    if domain > MAX_UINT32 or server > MAX_UINT32 or seqno > MAX_UINT64:
        raise ValueError(f"{text!r} is out of range for a GTID")
    return Gtid(domain, server, seqno)


@dataclass(frozen=True)
class GtidPosition:
    """One GTID per domain, what `@@gtid_binlog_pos` and mariabackup's binlog info show."""

    gtids: tuple[Gtid, ...] = ()  # sorted by domain, one per domain

    def __post_init__(self) -> None:
        domains = [g.domain for g in self.gtids]
        if len(set(domains)) != len(domains):
            raise ValueError(f"a GTID position has one GTID per domain: {self}")
        if domains != sorted(domains):
            object.__setattr__(self, "gtids", tuple(sorted(self.gtids)))

    def __str__(self) -> str:
        return ",".join(str(g) for g in self.gtids)

    def seqno(self, domain: int) -> int | None:
        """This position's seqno in `domain`, None when it has none there (nothing in that domain yet)."""
        return next((g.seqno for g in self.gtids if g.domain == domain), None)

    def get(self, domain: int) -> Gtid | None:
        return next((g for g in self.gtids if g.domain == domain), None)

    def with_gtid(self, gtid: Gtid) -> GtidPosition:
        return GtidPosition(tuple(sorted([*[g for g in self.gtids if g.domain != gtid.domain], gtid])))


def parse_position(text: str) -> GtidPosition:
    """`0-1-42,1-5-7`, or "" (an empty binlog state); ValueError naming the bad part."""
    parts = [part for part in (p.strip() for p in text.replace("\n", ",").split(",")) if part]
    return GtidPosition(tuple(parse_gtid(part) for part in parts))
