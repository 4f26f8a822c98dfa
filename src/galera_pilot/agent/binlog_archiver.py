"""This node's part in archiving binary logs (backup.binlogs.archive): when the pure rule gives it the
archiver lease (membership/archiver_node.py), close the binlog the server writes once its first transaction
is `interval_seconds` old, and upload every closed binlog that holds a transaction the archive lacks.

A pass runs in a thread of its own, at most every PASS_EVERY, never on the agent's cycle (an upload to a
slow repository takes what it takes; the cycle runs the failover). Each archived file is read from the
datadir (the agent runs as root, mariadbd's files are readable to it), its GTIDs indexed from its event
headers (backup/binlog_scan.py), compressed with zstd and stored with its index record
(`Repository.store_binlog`). The archive is listed once when this node takes the lease, then kept in
memory: this node is the only writer while it holds it.

After every pass: the gaps (GTID seqnos in no archived file, after the oldest backup's position) are
named in the note /status shows and in /metrics; a gap not seen before is logged, recorded in the
history, and a full backup is asked, so that a point in time after the gap can be restored again.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pymysql

from galera_pilot.agent.memory import CYCLE_LOGGER, History
from galera_pilot.backup.binlog_index import (
    ArchivedBinlog,
    Gap,
    covered_through,
    expired_binlogs,
    of_history,
    summarize,
)
from galera_pilot.backup.binlog_scan import BinlogUnreadable, scan_binlog
from galera_pilot.backup.chains import new_backup_id
from galera_pilot.backup.gtid import parse_position
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.repositories import open_repository
from galera_pilot.backup.repository import CHUNK, Repository
from galera_pilot.backup.request import BackupRequest
from galera_pilot.cluster import Cluster
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.backup import ask_backup
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.mariadb import sql
from galera_pilot.membership.archiver_node import ARCHIVER_LEASE, archiver_turn
from galera_pilot.membership.backup_node import choose_backup_node

log = logging.getLogger(CYCLE_LOGGER)

PASS_EVERY = 5.0  # s between two passes (each: the lease renewed, SHOW BINARY LOGS, maybe uploads)
LEASE_TTL = 30.0  # s: an archiver that died frees the lease this long after its last renewal
RELIST_EVERY = 600.0  # s: the archive listed again, in case something else changed it (a restore, a person)
MANIFESTS_EVERY = 60.0  # s between two listings of the backup sets (as the schedule's CATALOG_EVERY)


@dataclass(frozen=True)
class ArchiveState:
    """What the last pass found: /status and /metrics."""

    archiving: bool = False  # this node holds the lease
    # When the archive last held every transaction of the domain this node had (unix time; None: not
    # yet since it took the lease): the archive's lag is counted from here, so it stays small with no
    # writes and grows only while transactions wait to be archived.
    caught_up_at: float | None = None
    newest_time: int | None = None  # the newest archived transaction's second
    covered_through: int | None = None  # every seqno of the domain after the base up to here is archived
    gaps: tuple[Gap, ...] = ()
    error: str = ""


class BinlogArchiver:
    def __init__(self, config: NodeConfig, dcs: DCS, credentials: Credentials, history: History,
                 now: Callable[[], float] = time.time) -> None:
        self.config = config
        self.dcs = dcs
        self.credentials = credentials
        self.history = history
        self.now = now
        self.note = ""
        self.state = ArchiveState()
        self._next_pass = 0.0
        self._worker: threading.Thread | None = None
        self._archived: list[ArchivedBinlog] | None = None  # None: list it at the next pass
        self._listed_at = 0.0
        self._skipped: set[str] = set()  # closed files of this node found to hold nothing the archive lacks
        self._rotated_at = 0.0  # when this node last closed its binlog (monotonic), 0: not since the lease
        self._known_gaps: set[tuple[int, int]] = set()
        self._history = ""  # the node's wsrep_cluster_state_uuid at the last pass: the archive's history
        self._last_reason = ""  # what the last pass's turn said (logged when it changes)
        self._server_seqno: int | None = None  # the node's last seqno of the domain when the pass began
        self._flushed: tuple[int, float] | None = None  # (seqno, unix time) of the last FLUSH this node made
        self._sets: tuple[float, list[Manifest]] | None = None  # (monotonic time, the sets) of the last listing

    @property
    def enabled(self) -> bool:
        return self.config.backup.configured and self.config.backup.binlogs.archive

    def look(self, cluster: Cluster) -> None:
        """From the agent's cycle: at most every PASS_EVERY, a pass in its own thread."""
        if not self.enabled and self._archived is None:
            self.note = ""
            return
        if time.monotonic() < self._next_pass or (self._worker is not None and self._worker.is_alive()):
            return
        self._next_pass = time.monotonic() + PASS_EVERY
        self._worker = threading.Thread(target=self._pass_logged, args=(cluster,), name="binlog-archiver",
                                        daemon=True)
        self._worker.start()

    def _pass_logged(self, cluster: Cluster) -> None:
        try:
            self.pass_now(cluster)
        except Exception:
            log.exception("the binlog archiver's pass failed")

    def pass_now(self, cluster: Cluster) -> None:
        me = self.config.name
        try:
            turn = archiver_turn(cluster, me, self.dcs.lease_holder(ARCHIVER_LEASE), self.enabled)
            if turn.release:
                self.dcs.release_lease(ARCHIVER_LEASE, me)
            if turn.archive and not self.dcs.acquire_lease(ARCHIVER_LEASE, me, LEASE_TTL, "archiving binlogs"):
                turn = replace(turn, archive=False, reason="another node took the archiver lease first")
        except DCSError as error:
            self.note = f"the archiver cannot reach the DCS: {error}"
            return
        if turn.reason != self._last_reason:
            log.info("binlog archive: %s", turn.reason)
            self._last_reason = turn.reason
        self.note = turn.reason
        if not turn.archive:
            if self.state.archiving or self._archived is not None:
                self._archived, self._rotated_at, self._skipped, self._flushed = None, 0.0, set(), None
                self._sets = None
                self.state = ArchiveState()
            return
        try:
            repository = open_repository(self.config.backup, self.config.cluster_name)
            self._archive(repository, cluster)
        except (PilotError, OSError) as error:
            if str(error) != self.state.error:
                log.warning("binlog archive: the pass failed: %s", error)
            self.state = replace(self.state, archiving=True, error=str(error))
            self.note = f"this node archives the binlogs, but the last pass failed: {error}"

    # ---- one pass, lease held ----------------------------------------------------------------------------
    def _archive(self, repository: Repository, cluster: Cluster) -> None:
        if self._archived is None or time.monotonic() - self._listed_at > RELIST_EVERY:
            self._archived = repository.binlogs()
            self._listed_at = time.monotonic()
        settings = self.config.backup.binlogs
        files = self._server_binlogs(rotate_after=settings.interval_seconds)
        for name in files[:-1]:  # the last one is still written
            if name in self._skipped or any(b.node == self.config.name and b.file == name for b in self._archived):
                continue
            self._archive_file(repository, name)
            self.dcs.acquire_lease(ARCHIVER_LEASE, self.config.name, LEASE_TTL, "archiving binlogs")
        self._judge(repository, cluster)

    def _server_binlogs(self, rotate_after: float) -> list[str]:
        """The server's binlog files, oldest first; the one it writes is closed first (FLUSH LOCAL: this
        node only, never replicated) when its first transaction of the domain is `rotate_after` old."""
        try:
            connection = sql.connect_socket(self.config, self.credentials, timeout=5.0)
        except pymysql.MySQLError as error:
            raise PilotError(f"mariadbd does not answer: {error}") from None
        try:
            self._history = sql.global_status(connection, ("wsrep_cluster_state_uuid",)).get(
                "wsrep_cluster_state_uuid", "")
            self._server_seqno = _server_seqno(connection, self.config.backup.binlogs.domain_id)
            names = _binlog_names(connection)
            if not names:
                raise PilotError("the server writes no binary log (log_bin is off until mariadbd restarts with "
                                 "backup.binlogs.archive: `galera-pilot restart --pending`)")
            if self._rotated_at == 0.0:
                self._rotated_at = time.monotonic()  # the lease is new: the server's file is given its time
            if time.monotonic() - self._rotated_at >= rotate_after and self._holds_transactions(names[-1]):
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("FLUSH LOCAL BINARY LOGS")
                except pymysql.MySQLError as error:
                    raise PilotError(f"FLUSH LOCAL BINARY LOGS failed: {error}") from None
                self._rotated_at = time.monotonic()
                if self._server_seqno is not None:  # read above: all of these are in closed files from now on
                    self._flushed = (self._server_seqno, self.now())
                names = _binlog_names(connection)
            return names
        finally:
            with contextlib.suppress(Exception):
                connection.close()

    def _holds_transactions(self, name: str) -> bool:
        with self._path(name).open("rb") as stream:
            facts = scan_binlog(stream, self.config.backup.binlogs.domain_id, name, active=True)
        return facts.transactions > 0

    def _path(self, name: str) -> Path:
        return self.config.data_dir / name

    def _archive_file(self, repository: Repository, name: str) -> None:
        assert self._archived is not None
        domain = self.config.backup.binlogs.domain_id
        path = self._path(name)
        try:
            with path.open("rb") as stream:
                facts = scan_binlog(stream, domain, name)
        except FileNotFoundError:
            self._skipped.add(name)  # purged between the listing and now: the gap check tells what it cost
            return
        except BinlogUnreadable as error:
            raise PilotError(str(error)) from None
        if facts.first_seqno is not None and facts.last_seqno is not None:
            mine = of_history(self._archived, self._history)
            needed = covered_through(mine, domain, facts.first_seqno - 1) < facts.last_seqno
        else:
            needed = False
        if not needed:
            self._skipped.add(name)
            return
        record = ArchivedBinlog(node=self.config.name, file=name, object="", domain=domain, server=facts.server,
                                first_seqno=facts.first_seqno, last_seqno=facts.last_seqno,
                                first_time=facts.first_time, last_time=facts.last_time, seconds=facts.seconds,
                                archived_at=self.now(), history=self._history)
        stored = self._upload(repository, record, path)
        self._archived = [*self._archived, stored]
        log.info("binlog archive: %s archived (GTID seqnos %s..%s of domain %s, %d bytes stored)", name,
                 facts.first_seqno, facts.last_seqno, domain, stored.size)

    def _upload(self, repository: Repository, record: ArchivedBinlog, path: Path) -> ArchivedBinlog:
        """zstd -c FILE | the repository. zstd's end is checked before the stream ends (`_CheckedEnd`): a
        zstd that died mid-file only ends the pipe, and the record would describe a cut object."""
        settings = self.config.backup
        command = [settings.tools.zstd, "-q", "-c", f"-{settings.compress_level}", str(path)]
        try:
            packer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as error:
            raise PilotError(f"cannot run {settings.tools.zstd}: {error.strerror}") from None
        assert packer.stdout is not None
        try:
            return repository.store_binlog(record, _CheckedEnd(packer, path.name))
        finally:
            with contextlib.suppress(ProcessLookupError):
                packer.kill()
            packer.wait()
            packer.stdout.close()
            if packer.stderr is not None:
                packer.stderr.close()

    def _judge(self, repository: Repository, cluster: Cluster) -> None:
        """Gaps after the oldest kept backup's position (else after the oldest archived seqno); a new one is
        recorded and a full backup asked for."""
        assert self._archived is not None
        domain = self.config.backup.binlogs.domain_id
        manifests = self._manifests(repository)
        self._expire(repository, manifests, domain)
        summary = summarize(self._archived, manifests, domain, self._history)
        found = summary.gaps
        caught_up = self.state.caught_up_at
        if self._server_seqno is None or summary.covered_through >= self._server_seqno:
            caught_up = self.now()  # nothing waits (no writes since the last close)
        elif self._flushed is not None and summary.covered_through >= self._flushed[0]:
            # Under writes the server's file always holds newer ones: what counts is that everything
            # closed at the last rotation is archived, so the lag is counted from that rotation.
            caught_up = max(caught_up or 0.0, self._flushed[1])
        self.state = ArchiveState(True, caught_up, summary.newest_time, summary.covered_through, found)
        fresh = [gap for gap in found if (gap.first, gap.last) not in self._known_gaps]
        self._known_gaps = {(gap.first, gap.last) for gap in found}
        for gap in fresh:
            sentence = f"binlog archive: {gap}: a point in time after it needs a newer full backup; one is asked"
            log.warning("%s", sentence)
            self.history("binlog-gap", sentence, {"first": gap.first, "last": gap.last, "domain": gap.domain})
        if fresh:
            self._ask_full_backup(cluster)

    def _manifests(self, repository: Repository) -> list[Manifest]:
        """The sets, listed at most every MANIFESTS_EVERY (a pass runs every PASS_EVERY; on S3 a listing is
        requests): they only move the base the gaps count from and what the archive may let go."""
        if self._sets is None or time.monotonic() - self._sets[0] > MANIFESTS_EVERY:
            self._sets = (time.monotonic(), repository.manifests())
        return self._sets[1]

    def _expire(self, repository: Repository, manifests: list[Manifest], domain: int) -> None:
        """Delete the archived files no kept backup can use (the backup retention decides what is kept).
        Never without knowing this node's history: every file would look like another history's."""
        assert self._archived is not None
        if not self._history:
            return
        for binlog in expired_binlogs(self._archived, manifests, domain, self._history):
            repository.delete_binlog(binlog)
            self._archived = [b for b in self._archived if (b.node, b.file) != (binlog.node, binlog.file)]
            log.info("binlog archive: %s/%s deleted (no kept backup needs seqnos %s..%s of cluster %s)",
                     binlog.node, binlog.file, binlog.first_seqno, binlog.last_seqno, binlog.history or "?")

    def _ask_full_backup(self, cluster: Cluster) -> None:
        placement = choose_backup_node(cluster)
        if placement.node is None:
            return
        now = self.now()
        request = BackupRequest(id=new_backup_id("full", now, set()), kind="full", node=placement.node,
                                by=f"binlog archive ({self.config.name}): a gap in the archive", at=now,
                                note=placement.reason)
        with contextlib.suppress(DCSError):
            ask_backup(self.dcs, request, expect=cluster.backup_request)


def _binlog_names(connection: object) -> list[str]:
    """SHOW BINARY LOGS; [] when the server writes none (error 1381)."""
    try:
        with connection.cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute("SHOW BINARY LOGS")
            return [str(row[0]) for row in cursor.fetchall()]
    except pymysql.MySQLError as error:
        if error.args and error.args[0] == 1381:
            return []
        raise PilotError(f"SHOW BINARY LOGS failed: {error}") from None


class _CheckedEnd:
    """zstd's output as chunks whose end is only an end once zstd exited 0; otherwise the iteration
    raises OSError, so the repository never writes the record of a cut object."""

    def __init__(self, packer: subprocess.Popen[bytes], name: str) -> None:
        self.packer, self.name = packer, name

    def __iter__(self) -> Iterator[bytes]:
        assert self.packer.stdout is not None
        while chunk := self.packer.stdout.read(CHUNK):
            yield chunk
        code = self.packer.wait()
        if code != 0:
            errors = self.packer.stderr.read().decode(errors="replace").strip() if self.packer.stderr else ""
            raise OSError(f"zstd exited with {code} on {self.name}: {errors or 'no message'}")


def _server_seqno(connection: object, domain: int) -> int | None:
    """The node's newest GTID seqno in the domain (@@gtid_binlog_pos), None when it has none."""
    try:
        with connection.cursor() as cursor:  # type: ignore[attr-defined]
            cursor.execute("SELECT @@GLOBAL.gtid_binlog_pos")
            row = cursor.fetchone()
        return parse_position(str(row[0] or "")).seqno(domain)
    except (pymysql.MySQLError, ValueError):
        return None
