"""Which datadir a physical backup was copied from, so that an incremental is only ever taken on the
datadir its parent came from.

InnoDB's LSNs belong to one datadir: every Galera node writes its own redo log, so node2's LSN 53364 says
nothing about node1's pages, and a node whose datadir a state transfer or a restore replaced goes on from
another sequence (the donor's, the backup's). mariadb-backup only checks that an incremental starts at
its base's end LSN, which we hand it: taken on another datadir, an incremental "applies" and silently
misses changes. So each physical set records its datadir's lineage, and an incremental is refused where
the lineage is not its parent's.

The lineage is a file in the datadir's root holding "node:random", written by the first full backup of
that datadir. What replaces a datadir drops it or makes it foreign: mariadb-backup's SST deletes every
file of the root it does not know, a restored datadir has none, the seed is copied without it, and a
copy that carries one (rsync SST, a copied folder) carries another node's name, which counts as none.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from galera_pilot.files import write_private

LINEAGE_FILE = "galera-pilot.lineage"


def read_lineage(datadir: Path, node: str) -> str | None:
    """This datadir's lineage, when it is this node's own; None when it has none or another node's."""
    try:
        text = (datadir / LINEAGE_FILE).read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None
    owner, _, tag = text.partition(":")
    return text if owner == node and tag else None


def ensure_lineage(datadir: Path, node: str) -> str:
    """The lineage a full backup records: the datadir's own, or a new one written now."""
    found = read_lineage(datadir, node)
    if found is not None:
        return found
    lineage = f"{node}:{secrets.token_hex(8)}"
    write_private(datadir / LINEAGE_FILE, lineage + "\n", mode=0o644)
    return lineage
