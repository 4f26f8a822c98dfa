"""Reading a datadir's Galera position (grastate.dat) and judging whether it may seed a bootstrap."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from galera_pilot.cluster import UNKNOWN_UUID, Position

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class CorruptGrastate(ValueError):
    """grastate.dat exists but cannot be trusted."""


@dataclass(frozen=True)
class GraState:
    uuid: str
    seqno: int
    safe_to_bootstrap: bool


def parse_grastate(text: str) -> GraState:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or ":" not in line:
            continue
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    uuid = fields.get("uuid", "")
    if not UUID_RE.match(uuid):
        raise CorruptGrastate(f"uuid {uuid!r} is not a UUID")
    try:
        seqno = int(fields.get("seqno", ""))
    except ValueError:
        raise CorruptGrastate(f"seqno {fields.get('seqno')!r} is not a number") from None
    if seqno < -1:
        raise CorruptGrastate(f"seqno {seqno} is below -1")
    safe = fields.get("safe_to_bootstrap", "0")
    if safe not in ("0", "1"):
        raise CorruptGrastate(f"safe_to_bootstrap {safe!r} is neither 0 nor 1")
    return GraState(uuid, seqno, safe == "1")


def has_data(data_dir: Path) -> bool:
    """A datadir 'has data' once mariadb-install-db or an SST has put the system schema there."""
    return (data_dir / "mysql").is_dir() or (data_dir / "ibdata1").exists()


def datadir_position(data_dir: Path) -> Position | None:
    """The position grastate.dat claims, flagged unusable where it must not seed a bootstrap.

    None means there is no data at all. seqno -1 on a usable datadir means 'ask --wsrep-recover'.
    """
    if not has_data(data_dir):
        return None
    if (data_dir / "sst_in_progress").exists():
        return Position(UNKNOWN_UUID, -1, unusable="an SST was aborted here (sst_in_progress marker)")
    path = data_dir / "grastate.dat"
    # A missing, unreadable or corrupt grastate.dat is not the end of the datadir: InnoDB keeps the wsrep
    # position with every commit, so the caller asks --wsrep-recover (seqno -1 means "recover"), and only
    # a datadir whose InnoDB holds no position either is unusable.
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Position(UNKNOWN_UUID, -1, grastate_problem="grastate.dat is missing")
    except (OSError, UnicodeDecodeError) as error:
        why = error.strerror if isinstance(error, OSError) else "not text"
        return Position(UNKNOWN_UUID, -1, grastate_problem=f"grastate.dat cannot be read: {why}")
    try:
        state = parse_grastate(text)
    except CorruptGrastate as error:
        problem = "grastate.dat is empty" if not text.strip() else f"grastate.dat is corrupt: {error}"
        return Position(UNKNOWN_UUID, -1, grastate_problem=problem)
    if state.uuid == UNKNOWN_UUID:
        # Not "never joined": Galera writes the all-zero UUID whenever a transaction is in flight (its
        # SavedState.mark_unsafe) and the real one back when none is, so a server killed under load leaves
        # this file. Only InnoDB can tell (--wsrep-recover); an install-db datadir answers with zeros too.
        return Position(UNKNOWN_UUID, -1, state.safe_to_bootstrap, "grastate")
    return Position(state.uuid, state.seqno, state.safe_to_bootstrap, "grastate")


def set_safe_to_bootstrap(data_dir: Path, value: bool) -> None:
    """Flip safe_to_bootstrap in place, keeping every other line as mariadbd wrote it."""
    path = data_dir / "grastate.dat"
    text = path.read_text()
    new = re.sub(r"^safe_to_bootstrap:.*$", f"safe_to_bootstrap: {int(value)}", text, flags=re.M)
    path.write_text(new)


def restore_cluster_uuid(data_dir: Path, uuid: str) -> bool:
    """Put the cluster UUID that --wsrep-recover found back into a grastate.dat that lost it to a crash.

    Galera blanks the UUID while a transaction is in flight and ignores a recovered start position unless
    its UUID matches the file's: without this, a node killed under load asks for a full SST where an IST
    would do. The seqno stays -1 (what Galera itself writes while running). True if the file was changed.
    """
    path = data_dir / "grastate.dat"
    text = path.read_text()
    if not UUID_RE.match(uuid) or uuid == UNKNOWN_UUID or parse_grastate(text).uuid != UNKNOWN_UUID:
        return False
    new = re.sub(r"^uuid:.*$", f"uuid:    {uuid}", text, flags=re.M)
    new = re.sub(r"^seqno:.*$", "seqno:   -1", new, flags=re.M)
    path.write_text(new)
    return True


GRASTATE_TEMPLATE = """# GALERA saved state
version: 2.1
uuid:    {uuid}
seqno:   -1
safe_to_bootstrap: {safe}
"""


def rewrite_grastate(data_dir: Path, uuid: str, stamp: str) -> Path | None:
    """Replace a missing or damaged grastate.dat with one naming the UUID that --wsrep-recover found
    (seqno -1: the start position comes from wsrep_start_position, as after any crash). The damaged file
    is kept beside it as grastate.dat.damaged-STAMP, never deleted; returns that path (None if missing)."""
    if not UUID_RE.match(uuid) or uuid == UNKNOWN_UUID:
        raise ValueError(f"{uuid!r} is not a cluster UUID")
    path = data_dir / "grastate.dat"
    kept: Path | None = None
    if path.exists() or path.is_symlink():
        kept = data_dir / f"grastate.dat.damaged-{stamp}"
        path.rename(kept)
    path.write_text(GRASTATE_TEMPLATE.format(uuid=uuid, safe=0))
    return kept
