"""The embedded DCS: one SQLite file shared by every agent on this machine.

Atomicity comes from SQLite's write lock (`BEGIN IMMEDIATE`): every create / compare-and-set reads and
writes inside one write transaction, so two processes can never both win. Expired rows are ignored on
read and replaced on create, so no janitor process is needed.

TTLs are expiry times on the host's monotonic clock (CLOCK_MONOTONIC), never the wall clock: on Linux
the monotonic clock is one clock for every process of the machine, and NTP (or a person, or faketime)
may step the wall clock of a process but never the monotonic one. A wall-clock expiry let a process
whose clock ran 30 s ahead see every other agent's keys as expired, and take the writer lease that
another agent still held. The monotonic clock starts again at boot, so each row also records the boot
(`/proc/sys/kernel/random/boot_id`): a leased row written during another boot (or by an older version,
with no boot id) is expired.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from galera_pilot.dcs.base import DCS, KV, ROOT, ChangeCallback
from galera_pilot.errors import DCSError

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    version INTEGER NOT NULL,
    expires_at REAL,
    boot_id TEXT
);
CREATE TABLE IF NOT EXISTS revision (id INTEGER PRIMARY KEY CHECK (id = 0), rev INTEGER NOT NULL);
INSERT OR IGNORE INTO revision (id, rev) VALUES (0, 0);
"""
BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
LIVE = "(expires_at IS NULL OR (boot_id = ? AND expires_at > ?))"


def boot_id() -> str:
    """This boot of the machine (the monotonic clock's epoch); a constant where /proc does not say."""
    try:
        return BOOT_ID_FILE.read_text().strip()
    except OSError:
        return "unknown-boot"


class SQLiteDCS(DCS):
    def __init__(self, path: Path, cluster_name: str) -> None:
        super().__init__(cluster_name)
        self.path = path
        self._local = threading.local()
        if not path.parent.is_dir():
            raise DCSError(f"DCS file {path}: folder {path.parent} does not exist")
        self.boot = boot_id()
        try:
            db = self._connection()
            db.executescript(SCHEMA)
            if "boot_id" not in {row[1] for row in db.execute("PRAGMA table_info(kv)")}:
                db.execute("ALTER TABLE kv ADD COLUMN boot_id TEXT")  # a file from before boot ids
        except sqlite3.Error as error:
            raise DCSError(f"cannot initialize DCS file {path}: {error}") from None

    def _connection(self) -> sqlite3.Connection:
        # One connection per thread: the REST API thread and the agent loop never share a cursor.
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as error:
                raise DCSError(f"cannot open DCS file {self.path}: {error}") from None
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as error:
            raise DCSError(f"DCS file {self.path}: {error}") from None

    def _next_version(self, db: sqlite3.Connection) -> int:
        db.execute("UPDATE revision SET rev = rev + 1 WHERE id = 0")
        return int(db.execute("SELECT rev FROM revision WHERE id = 0").fetchone()[0])

    @staticmethod
    def _expiry(ttl: float | None) -> float | None:
        return None if ttl is None else time.monotonic() + ttl

    def _live(self) -> tuple[str, float]:
        """The parameters of LIVE: this boot and the monotonic time now."""
        return self.boot, time.monotonic()

    def _live_version(self, db: sqlite3.Connection, key: str) -> int | None:
        query = f"SELECT version FROM kv WHERE key = ? AND {LIVE}"
        row = db.execute(query, (self.prefix + key, *self._live())).fetchone()
        return None if row is None else int(row[0])

    def get(self, key: str) -> KV | None:
        try:
            row = self._connection().execute(
                f"SELECT value, version FROM kv WHERE key = ? AND {LIVE}", (self.prefix + key, *self._live()),
            ).fetchone()
        except sqlite3.Error as error:
            raise DCSError(f"DCS file {self.path}: {error}") from None
        return None if row is None else KV(key, row[0], int(row[1]))

    def list_outside(self, skip: str) -> list[KV]:
        full, skipped = self.prefix, self.prefix + skip
        try:
            rows = self._connection().execute(
                f"SELECT key, value, version FROM kv WHERE ((key >= ? AND key < ?) OR (key >= ? AND key < ?)) "
                f"AND {LIVE} ORDER BY key",
                (full, skipped, skipped + "\uffff", full + "\uffff", *self._live()),
            ).fetchall()
        except sqlite3.Error as error:
            raise DCSError(f"DCS file {self.path}: {error}") from None
        return [KV(k[len(self.prefix):], v, int(ver)) for k, v, ver in rows]

    def list(self, prefix: str = "") -> list[KV]:
        full = self.prefix + prefix
        try:
            rows = self._connection().execute(
                f"SELECT key, value, version FROM kv WHERE key >= ? AND key < ? AND {LIVE} ORDER BY key",
                (full, full + "\uffff", *self._live()),
            ).fetchall()
        except sqlite3.Error as error:
            raise DCSError(f"DCS file {self.path}: {error}") from None
        return [KV(k[len(self.prefix):], v, int(ver)) for k, v, ver in rows]

    def cluster_names(self) -> tuple[str, ...]:
        try:
            rows = self._connection().execute(
                f"SELECT key FROM kv WHERE key >= ? AND key < ? AND {LIVE}", (ROOT, ROOT + "\uffff", *self._live()),
            ).fetchall()
        except sqlite3.Error as error:
            raise DCSError(f"DCS file {self.path}: {error}") from None
        return tuple(sorted({key[len(ROOT):].partition("/")[0] for (key,) in rows}))

    def create(self, key: str, value: str, ttl: float | None = None) -> bool:
        with self._write() as db:
            if self._live_version(db, key) is not None:
                return False
            version = self._next_version(db)
            db.execute("INSERT OR REPLACE INTO kv (key, value, version, expires_at, boot_id) VALUES (?, ?, ?, ?, ?)",
                       (self.prefix + key, value, version, self._expiry(ttl), self.boot))
            return True

    def compare_and_set(self, key: str, value: str, version: int, ttl: float | None = None) -> bool:
        with self._write() as db:
            if self._live_version(db, key) != version:
                return False
            new_version = self._next_version(db)
            db.execute("UPDATE kv SET value = ?, version = ?, expires_at = ?, boot_id = ? WHERE key = ?",
                       (value, new_version, self._expiry(ttl), self.boot, self.prefix + key))
            return True

    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        with self._write() as db:
            version = self._next_version(db)
            db.execute("INSERT OR REPLACE INTO kv (key, value, version, expires_at, boot_id) VALUES (?, ?, ?, ?, ?)",
                       (self.prefix + key, value, version, self._expiry(ttl), self.boot))

    def delete(self, key: str, version: int | None = None) -> bool:
        with self._write() as db:
            live = self._live_version(db, key)
            if live is None or (version is not None and live != version):
                return False
            db.execute("DELETE FROM kv WHERE key = ?", (self.prefix + key,))
            self._next_version(db)  # a deletion moves the revision too: the watch looks again (watch below)
            return True

    def watch(self, on_change: ChangeCallback, stop: threading.Event) -> None:
        """The base class's listing comparison, but a listing only when something may have changed: the
        file's revision moved (every write and deletion moves it) or the earliest lease expiry has come.
        Between those, one poll is one single-row query instead of a listing of every key."""
        seen_revision: int | None = None
        next_expiry = 0.0

        def changed() -> bool:
            nonlocal seen_revision, next_expiry
            revision = self._revision()
            if revision == seen_revision and time.monotonic() < next_expiry:
                return False
            seen_revision, next_expiry = revision, self._next_expiry()
            return True

        self._watch_listings(on_change, stop, lambda: self.list(""), changed)

    def _revision(self) -> int:
        try:
            return int(self._connection().execute("SELECT rev FROM revision WHERE id = 0").fetchone()[0])
        except sqlite3.Error as error:
            raise DCSError(f"DCS file {self.path}: {error}") from None

    def _next_expiry(self) -> float:
        """When the earliest live lease of this cluster runs out (monotonic; far away when none is leased)."""
        boot, now = self._live()
        try:
            row = self._connection().execute(
                "SELECT MIN(expires_at) FROM kv WHERE key >= ? AND key < ? AND boot_id = ? AND expires_at > ?",
                (self.prefix, self.prefix + "\uffff", boot, now)).fetchone()
        except sqlite3.Error as error:
            raise DCSError(f"DCS file {self.path}: {error}") from None
        return float(row[0]) if row and row[0] is not None else now + 3600.0

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
