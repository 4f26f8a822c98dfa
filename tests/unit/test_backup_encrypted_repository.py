"""A repository behind encryption (backup/encrypted.py) over a real directory repository, and the
factory that opens what a `backup` section names (backup/repositories.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from galera_pilot.backup.encrypted import EncryptedRepository
from galera_pilot.backup.encryption import EncryptionError, generate_key_file, is_encrypted
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.repositories import open_repository
from galera_pilot.backup.repository import LocalRepository, RepositoryError
from galera_pilot.backup.settings import BackupSettings

DATA = os.urandom(3 << 20) + b"tail"


def stored(repository: EncryptedRepository, set_id: str = "20260101-000000F") -> Manifest:
    manifest = repository.begin(Manifest(set_id, "full", "galera", "", started_at=1.0))
    manifest = repository.store(manifest, "data.mbstream.zst", iter([DATA[:1000], DATA[1000:]]))
    return repository.finish(manifest, "complete", 2.0)


def test_objects_are_sealed_on_disk_and_open_in_the_clear_with_the_key(tmp_path: Path) -> None:
    key = generate_key_file(tmp_path / "backup.key")
    repository = EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), key)
    manifest = stored(repository)
    assert manifest.key_id == key.key_id and repository.manifest(manifest.id).key_id == key.key_id
    raw = (tmp_path / "repo" / "galera" / manifest.id / "data.mbstream.zst").read_bytes()
    assert is_encrypted(raw[:16]) and DATA[:64] not in raw
    with repository.open(manifest, "data.mbstream.zst") as data:
        assert data.read(10) == DATA[:10] and data.read() == DATA[10:]
    assert repository.verify(manifest.id).ok  # the checksums are of the sealed bytes: no key needed
    assert EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), None).verify(manifest.id).ok


def test_a_set_is_refused_by_name_without_its_key_or_with_another(tmp_path: Path) -> None:
    key = generate_key_file(tmp_path / "backup.key")
    manifest = stored(EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), key))
    keyless = EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), None)
    with pytest.raises(EncryptionError, match=f"encrypted \\(key {key.key_id}\\): this host has no key"):
        keyless.open(manifest, "data.mbstream.zst")
    other = EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), generate_key_file(tmp_path / "k2"))
    with pytest.raises(EncryptionError, match=f"encrypted with key {key.key_id}; the key configured here"):
        other.open(manifest, "data.mbstream.zst")


def test_a_tampered_object_fails_while_read(tmp_path: Path) -> None:
    key = generate_key_file(tmp_path / "backup.key")
    repository = EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), key)
    manifest = stored(repository)
    path = tmp_path / "repo" / "galera" / manifest.id / "data.mbstream.zst"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
    assert not repository.verify(manifest.id).ok
    data = repository.open(manifest, "data.mbstream.zst")
    with pytest.raises(EncryptionError, match="fails authentication"):
        data.read()
    data.close()


def test_without_a_key_sets_are_stored_in_the_clear_and_stay_readable_after_a_key_is_added(tmp_path: Path) -> None:
    plain = EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), None)
    manifest = stored(plain)
    assert manifest.key_id == ""
    assert (tmp_path / "repo" / "galera" / manifest.id / "data.mbstream.zst").read_bytes() == DATA
    keyed = EncryptedRepository(LocalRepository(tmp_path / "repo", "galera"), generate_key_file(tmp_path / "k"))
    with keyed.open(manifest, "data.mbstream.zst") as data:
        assert data.read() == DATA


def test_the_factory_opens_what_the_section_names(tmp_path: Path) -> None:
    key_file = tmp_path / "backup.key"
    key = generate_key_file(key_file)
    opened = open_repository(BackupSettings(repository=tmp_path / "repo", encryption_key_file=key_file), "galera")
    assert isinstance(opened, EncryptedRepository) and opened.key == key
    assert opened.where == str(tmp_path / "repo" / "galera")
    override = open_repository(BackupSettings(repository=tmp_path / "repo"), "galera", tmp_path / "elsewhere")
    assert override.where == str(tmp_path / "elsewhere" / "galera")
    with pytest.raises(RepositoryError, match="no backup repository is configured"):
        open_repository(BackupSettings(), "galera")
    key_file.chmod(0o644)
    with pytest.raises(EncryptionError, match=str(key_file)):
        open_repository(BackupSettings(repository=tmp_path / "repo", encryption_key_file=key_file), "galera")
    with pytest.raises(RepositoryError, match="AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY not set"):
        open_repository(BackupSettings(s3={"endpoint": "http://127.0.0.1:9", "bucket": "backups"}), "galera",
                        environ={})


def test_the_section_refuses_two_repositories_and_bad_s3_fields() -> None:
    with pytest.raises(ValidationError, match="either repository"):
        BackupSettings(repository=Path("/srv/b"), s3={"endpoint": "http://h:1", "bucket": "backups"})
    with pytest.raises(ValidationError, match="without credentials"):
        BackupSettings(s3={"endpoint": "http://key:secret@h:1", "bucket": "backups"})
    with pytest.raises(ValidationError, match="bucket"):
        BackupSettings(s3={"endpoint": "http://h:1", "bucket": "No_Such"})
    with pytest.raises(ValidationError, match="absolute"):
        BackupSettings(repository=Path("/srv/b"), encryption_key_file=Path("key"))
