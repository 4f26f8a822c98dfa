"""Archived binlogs in a directory repository, in the clear and behind encryption (backup/repository.py,
backup/encrypted.py): an object and its record, the record written last, so that a listed record always has
its whole object; names that cannot leave the binlogs' folder; the sets' listing blind to that folder."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest

from galera_pilot.backup.binlog_index import ArchivedBinlog
from galera_pilot.backup.encrypted import EncryptedRepository
from galera_pilot.backup.encryption import EncryptionError, generate_key_file, is_encrypted, load_key
from galera_pilot.backup.manifest import Manifest, Problem
from galera_pilot.backup.repository import LocalRepository, Repository, RepositoryError

DATA = os.urandom(3 << 20) + b"tail"  # "already zstd-compressed": the repository takes it as bytes
OTHER = os.urandom(70_000)
OBJECT = "binlogs/node1/mariadb-bin.000012.zst"
Opener = Callable[[Path], Repository]


def binlog(node: str = "node1", file: str = "mariadb-bin.000012", last_seqno: int = 20) -> ArchivedBinlog:
    return ArchivedBinlog(node=node, file=file, object="", domain=0, server=1, first_seqno=10,
                          last_seqno=last_seqno, first_time=1000, last_time=1005, seconds=((1000, 12), (1005, 20)),
                          archived_at=1010.0)


def plain(tmp_path: Path) -> Repository:
    return LocalRepository(tmp_path / "repo", "galera")


def encrypted(tmp_path: Path) -> Repository:
    """Behind the key in tmp_path (made by the first call): every call opens the same repository."""
    key_file = tmp_path / "backup.key"
    key = load_key(key_file) if key_file.exists() else generate_key_file(key_file)
    return EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), key)


def keyless(tmp_path: Path) -> Repository:
    return EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), None)


REPOSITORIES = pytest.mark.parametrize("opened", [plain, encrypted, keyless], ids=["local", "encrypted", "keyless"])


def content(repository: Repository, record: ArchivedBinlog) -> bytes:
    with repository.open_binlog(record) as data:
        return data.read()


def folder_files(tmp_path: Path) -> list[str]:
    root = tmp_path / "repo" / "galera" / "binlogs"
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@REPOSITORIES
def test_store_list_open_verify_and_delete(tmp_path: Path, opened: Opener) -> None:
    repository = opened(tmp_path)
    first = repository.store_binlog(binlog(), iter([DATA[:1000], DATA[1000:]]))
    second = repository.store_binlog(binlog("node0", "mariadb-bin.000003"), io.BytesIO(OTHER))
    stored = (tmp_path / "repo" / "galera" / OBJECT).read_bytes()
    assert (first.object, first.size, first.sha256) == (OBJECT, len(stored), hashlib.sha256(stored).hexdigest())
    assert first == stored_record(binlog(), first)  # only what storing fills in changed
    assert (stored == DATA) == (first.key_id == "")
    assert opened(tmp_path).binlogs() == [second, first]  # by node, then file
    assert content(repository, first) == DATA and content(repository, second) == OTHER
    assert repository.verify_binlog(first) == [] and repository.verify_binlog(second) == []

    repository.delete_binlog(first)
    assert repository.binlogs() == [second]
    assert folder_files(tmp_path) == ["node0/mariadb-bin.000003.json", "node0/mariadb-bin.000003.zst"]
    repository.delete_binlog(first)  # already gone: a delete that died half-way is redone without complaint
    assert repository.verify_binlog(first) == [Problem(OBJECT, "missing")]
    with pytest.raises(RepositoryError, match=r"cannot read archived binlog .*/mariadb-bin\.000012\.zst"):
        repository.open_binlog(first)


def stored_record(original: ArchivedBinlog, filled: ArchivedBinlog) -> ArchivedBinlog:
    return replace(original, object=filled.object, size=filled.size, sha256=filled.sha256, key_id=filled.key_id)


@REPOSITORIES
def test_storing_a_file_again_replaces_its_object_and_record(tmp_path: Path, opened: Opener) -> None:
    repository = opened(tmp_path)
    repository.store_binlog(binlog(last_seqno=15), iter([DATA]))
    again = repository.store_binlog(binlog(last_seqno=20), iter([OTHER]))
    assert repository.binlogs() == [again] and again.last_seqno == 20
    assert content(repository, again) == OTHER and repository.verify_binlog(again) == []
    assert folder_files(tmp_path) == ["node1/mariadb-bin.000012.json", "node1/mariadb-bin.000012.zst"]


@REPOSITORIES
def test_a_failed_upload_leaves_no_record_and_keeps_what_was_stored(tmp_path: Path, opened: Opener) -> None:
    def dying(after: bytes) -> Iterator[bytes]:
        yield after
        raise OSError(errno.EPIPE, "Broken pipe")  # the compressor died mid-stream

    repository = opened(tmp_path)
    with pytest.raises(RepositoryError, match=r"cannot write .*/mariadb-bin\.000012\.zst"):
        repository.store_binlog(binlog(), dying(DATA))
    assert repository.binlogs() == [] and folder_files(tmp_path) == []  # no record, no half object

    kept = repository.store_binlog(binlog(), iter([DATA]))
    with pytest.raises(RepositoryError):
        repository.store_binlog(binlog(last_seqno=30), dying(OTHER))
    assert repository.binlogs() == [kept] and content(repository, kept) == DATA
    assert repository.verify_binlog(kept) == []


@REPOSITORIES
@pytest.mark.parametrize(("node", "file", "named"), [
    ("../galera", "f", "node name '../galera'"), ("", "f", "node name ''"), (".hidden", "f", "node name '.hidden'"),
    ("a/b", "f", "node name 'a/b'"), ("node1", "../../../etc/passwd", "binlog file name '../../../etc/passwd'"),
    ("node1", "x/y", "binlog file name 'x/y'"), ("node1", "", "binlog file name ''")])
def test_names_that_could_leave_the_folder_are_refused(tmp_path: Path, opened: Opener, node: str, file: str,
                                                       named: str) -> None:
    repository, bad = opened(tmp_path), binlog(node, file)
    for call in (partial(repository.store_binlog, bad, iter([b"x"])), partial(repository.open_binlog, bad),
                 partial(repository.delete_binlog, bad), partial(repository.verify_binlog, bad)):
        with pytest.raises(RepositoryError, match=f"^{re.escape(named)} is not valid for an archived binlog$"):
            call()
    assert sorted(p.name for p in tmp_path.rglob("*")) == (["backup.key"] if opened is encrypted else [])


@REPOSITORIES
def test_unreadable_or_misplaced_records_are_skipped(tmp_path: Path, opened: Opener) -> None:
    repository = opened(tmp_path)
    good = repository.store_binlog(binlog(), iter([DATA]))
    folder = tmp_path / "repo" / "galera" / "binlogs"
    (folder / "node1" / "garbled.json").write_text("{not json")
    (folder / "node1" / "partial.json").write_text('{"node": "node1"}')
    (folder / "node2").mkdir()
    (folder / "node2" / "mariadb-bin.000012.json").write_bytes((folder / "node1" / "mariadb-bin.000012.json")
                                                               .read_bytes())  # says node1: not its place
    (folder / "node1" / "mariadb-bin.000012.zst.part").write_bytes(b"left by a writer that died")
    (folder / "stray.json").write_text("{}")
    assert repository.binlogs() == [good]


@REPOSITORIES
def test_the_sets_listing_and_deletes_never_see_the_binlogs(tmp_path: Path, opened: Opener) -> None:
    repository = opened(tmp_path)
    manifest = repository.begin(Manifest("20260101-000000F", "full", "galera", "", started_at=1.0))
    manifest = repository.finish(repository.store(manifest, "data.mbstream.zst", iter([OTHER])), "complete", 2.0)
    record = repository.store_binlog(binlog(), iter([DATA]))
    assert repository.manifests() == [manifest] and repository.verify(manifest.id).ok
    with pytest.raises(RepositoryError, match="no backup 'binlogs'"):
        repository.manifest("binlogs")
    with pytest.raises(RepositoryError, match="no backup 'binlogs'"):
        repository.delete("binlogs")
    with pytest.raises(RepositoryError, match="backup id 'binlogs' is not a valid name"):
        repository.begin(Manifest("binlogs", "full", "galera", "", started_at=3.0))
    repository.delete(manifest.id)
    assert repository.manifests() == [] and repository.binlogs() == [record]
    assert content(repository, record) == DATA


def test_an_encrypted_binlog_is_sealed_and_refused_by_name_without_its_key(tmp_path: Path) -> None:
    key = generate_key_file(tmp_path / "backup.key")
    repository = EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), key)
    record = repository.store_binlog(binlog(), iter([DATA]))
    raw = (tmp_path / "repo" / "galera" / OBJECT).read_bytes()
    assert record.key_id == key.key_id and repository.binlogs()[0].key_id == key.key_id
    assert is_encrypted(raw[:16]) and DATA[:64] not in raw

    other = EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), generate_key_file(tmp_path / "k2"))
    with pytest.raises(EncryptionError, match=f"^archived binlog node1/mariadb-bin.000012 is encrypted with key "
                                              f"{key.key_id}; the key configured here is {other.key.key_id}"):
        other.open_binlog(record)
    none = EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), None)
    with pytest.raises(EncryptionError, match=f"encrypted \\(key {key.key_id}\\): this host has no key"):
        none.open_binlog(record)
    assert none.binlogs() == [record] and none.verify_binlog(record) == []  # the record and hashes need no key
    assert other.verify_binlog(record) == []


def test_a_binlog_stored_in_the_clear_opens_once_a_key_is_configured(tmp_path: Path) -> None:
    record = keyless(tmp_path).store_binlog(binlog(), iter([DATA]))
    assert record.key_id == "" and (tmp_path / "repo" / "galera" / OBJECT).read_bytes() == DATA
    assert content(encrypted(tmp_path), record) == DATA


@REPOSITORIES
def test_verify_names_a_changed_or_truncated_object(tmp_path: Path, opened: Opener) -> None:
    repository = opened(tmp_path)
    record = repository.store_binlog(binlog(), iter([DATA]))
    path = tmp_path / "repo" / "galera" / OBJECT
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
    assert repository.verify_binlog(record) == [Problem(OBJECT, "checksum differs from the record's")]
    if record.key_id:
        data = repository.open_binlog(record)
        with pytest.raises(EncryptionError, match="fails authentication"):
            data.read()
        data.close()
    path.write_bytes(bytes(raw[:1000]))
    assert repository.verify_binlog(record) == [Problem(OBJECT, f"1000 bytes, the record says {record.size}")]
