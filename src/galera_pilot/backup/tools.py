"""The command lines of the programs a backup and its restore test run, and what their files say.

Credentials reach the programs through a defaults file of mode 0600 in the node's run folder, never argv
(`ps` shows argv to every user). Construction, parsing and quoting their logs here; running them is take.py's and
trial_restore.py's job.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from galera_pilot.backup.settings import BackupTools

SYSTEM_SCHEMAS = ("mysql", "information_schema", "performance_schema", "sys")
PHYSICAL_OBJECT = "data.mbstream.zst"
LOGICAL_OBJECT = "dump.sql.zst"
INFO_OBJECT = "xtrabackup_info"
CHECKPOINTS_OBJECT = "xtrabackup_checkpoints"


def client_defaults(user: str, password: str, socket: Path, datadir: Path) -> str:
    """A defaults file for mariadb-backup and mariadb-dump on this node's socket."""
    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    common = f"user={quoted(user)}\npassword={quoted(password)}\nsocket={quoted(str(socket))}\n"
    return (f"[client]\n{common}\n[mariadb-dump]\n{common}\n"
            f"[mariabackup]\n{common}datadir={quoted(str(datadir))}\n")


def physical_backup(tools: BackupTools, defaults: Path, work: Path, lsn_dir: Path,
                    from_lsn: int | None = None, no_lock: bool = False) -> list[str]:
    command = [tools.mariabackup, f"--defaults-file={defaults}", "--backup", "--stream=mbstream",
               f"--target-dir={work}", f"--extra-lsndir={lsn_dir}"]
    if no_lock:
        command.append("--no-lock")
    if from_lsn is not None:
        command.append(f"--incremental-lsn={from_lsn}")
    return command


def logical_backup(tools: BackupTools, defaults: Path) -> list[str]:
    """A consistent dump of every schema (users included), in one transaction."""
    return [tools.dump, f"--defaults-file={defaults}", "--single-transaction", "--all-databases", "--routines",
            "--events", "--triggers", "--hex-blob", "--default-character-set=utf8mb4"]


def compress(tools: BackupTools, level: int) -> list[str]:
    return [tools.zstd, f"-{level}", "-T2", "-q", "-c"]


def decompress(tools: BackupTools) -> list[str]:
    return [tools.zstd, "-d", "-q", "-c"]


def unpack(tools: BackupTools, into: Path) -> list[str]:
    return [tools.mbstream, "-x", "-C", str(into)]


def prepare(tools: BackupTools, full: Path, incremental: Path | None = None) -> list[str]:
    command = [tools.mariabackup, "--prepare", f"--target-dir={full}"]
    if incremental is not None:
        command.append(f"--incremental-dir={incremental}")
    return command


def parse_key_values(text: str) -> dict[str, str]:
    """xtrabackup_checkpoints and xtrabackup_info: `key = value` lines."""
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    return values


def lsn_range(checkpoints: str) -> tuple[int | None, int | None]:
    """(from_lsn, to_lsn) of a backup; an incremental's next one starts at to_lsn."""
    values = parse_key_values(checkpoints)

    def number(key: str) -> int | None:
        try:
            return int(values[key])
        except (KeyError, ValueError):
            return None

    return number("from_lsn"), number("to_lsn")


def checksum_statement(tables: list[tuple[str, str]]) -> str:
    """One CHECKSUM TABLE over (schema, table) pairs, each part quoted."""
    def quoted(part: str) -> str:
        return "`" + part.replace("`", "``") + "`"

    return "CHECKSUM TABLE " + ", ".join(f"{quoted(schema)}.{quoted(table)}" for schema, table in tables)


TABLES_QUERY = ("SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
                "AND table_schema NOT IN (" + ", ".join(f"'{s}'" for s in SYSTEM_SCHEMAS) + ") "
                "ORDER BY table_schema, table_name")


def tail_of(log: Path, lines: int = 4) -> str:
    """A tool's last lines, on one line: what an error message quotes."""
    try:
        text = log.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(line.strip() for line in text[-lines:]) or "(nothing logged)"


def table_checksums(cursor: Any) -> dict[str, int | None]:
    """CHECKSUM TABLE of every non-system table ("db.table" -> figure), 50 tables a statement: what a
    backup records under its read lock and what a restore test computes on the restored copy."""
    cursor.execute(TABLES_QUERY)
    tables = [(str(s), str(t)) for s, t in cursor.fetchall()]
    found: dict[str, int | None] = {}
    for start in range(0, len(tables), 50):
        cursor.execute(checksum_statement(tables[start:start + 50]))
        found.update({str(t): (int(c) if c is not None else None) for t, c in cursor.fetchall()})
    return found


LAST_GTID = re.compile(r"GTID of the last change '([0-9,-]*)'")


def last_gtid(log: Path) -> str:
    """The binlog position mariadb-backup says its copy is consistent at ("MySQL binlog position: ...,
    GTID of the last change '0-1-9'"), "" when it names none (no binary log)."""
    try:
        found = LAST_GTID.findall(log.read_text(errors="replace"))
    except OSError:
        return ""
    return found[-1] if found else ""
