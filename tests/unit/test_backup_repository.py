"""backup/repository.py on a real directory: sets written, listed, verified and deleted; bad input named."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest

from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.repository import LocalRepository, RepositoryError
from galera_pilot.backup.retention import Retention, expired

NOW = 1_800_000_000.0


def started(repo: LocalRepository, set_id: str, at: float = NOW, kind: str = "full",
            parent: str | None = None) -> Manifest:
    return repo.begin(Manifest(set_id, kind, "galera", "uuid-1", at, node="node2", parent=parent))  # type: ignore[arg-type]


def test_a_set_is_streamed_hashed_and_verified(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path / "repo", "galera")
    manifest = started(repo, "20261202-full")
    payload = b"x" * (3 << 20) + b"tail"
    manifest = repo.store(manifest, "data.mbstream.zst", io.BytesIO(payload))
    manifest = repo.store(manifest, "galera-info", [b"uuid-1:", b"42"])
    done = repo.finish(manifest, "complete", NOW + 60)
    assert [o.name for o in done.objects] == ["data.mbstream.zst", "galera-info"]
    assert done.objects[0].sha256 == hashlib.sha256(payload).hexdigest() and done.size_bytes == len(payload) + 9
    assert repo.manifest("20261202-full") == done  # what is on disk is what was returned
    check = repo.verify("20261202-full")
    assert check.ok and check.checked == 2
    with repo.open(done, "galera-info") as stored:
        assert stored.read() == b"uuid-1:42"
    folder = tmp_path / "repo" / "galera" / "20261202-full"
    assert (folder.stat().st_mode & 0o777) == 0o700 and ((folder / "manifest.json").stat().st_mode & 0o777) == 0o600


def test_verify_names_a_changed_a_truncated_and_a_missing_object(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path, "galera")
    manifest = started(repo, "s1")
    for name in ("a", "b", "c"):
        manifest = repo.store(manifest, name, io.BytesIO(name.encode() * 100))
    repo.finish(manifest, "complete", NOW + 1)
    folder = tmp_path / "galera" / "s1"
    (folder / "a").write_bytes(b"b" * 100)  # same size, other bytes
    (folder / "b").write_bytes(b"b" * 10)
    (folder / "c").unlink()
    problems = {p.object: p.what for p in repo.verify("s1").problems}
    assert problems == {"a": "checksum differs from the manifest's", "b": "10 bytes, the manifest says 100",
                        "c": "missing"}


def test_a_running_or_failed_set_never_verifies(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path, "galera")
    started(repo, "s1")
    assert [p.what for p in repo.verify("s1").problems] == ["the set is running, not complete"]
    failed = repo.finish(repo.manifest("s1"), "failed", NOW + 5, error="mariabackup exited 1")
    assert failed.error == "mariabackup exited 1" and not repo.verify("s1").ok


def test_bad_names_duplicates_and_unknown_ids_are_refused_by_name(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path, "galera")
    manifest = started(repo, "s1")
    for bad in ("../escape", "", ".hidden"):
        with pytest.raises(RepositoryError, match="not a valid name"):
            started(repo, bad)
    with pytest.raises(RepositoryError, match="already exists"):
        started(repo, "s1")
    for bad in ("../x", "manifest.json", "a/b"):
        with pytest.raises(RepositoryError, match="not valid"):
            repo.store(manifest, bad, io.BytesIO(b""))
    repo.store(manifest, "data", io.BytesIO(b"1"))
    with pytest.raises(RepositoryError, match="cannot write"):
        repo.store(manifest, "data", io.BytesIO(b"2"))  # an object is written once, never overwritten
    with pytest.raises(RepositoryError, match="no backup 'nope'"):
        repo.delete("nope")


def test_listing_skips_a_folder_without_a_manifest_and_feeds_retention(tmp_path: Path) -> None:
    repo = LocalRepository(tmp_path, "galera")
    assert repo.manifests() == []  # no folder yet
    for index, at in enumerate((NOW - 30 * 86400, NOW - 20 * 86400, NOW - 86400)):
        repo.finish(started(repo, f"f{index}", at), "complete", at + 60)
    (tmp_path / "galera" / "half-made").mkdir()
    (tmp_path / "galera" / "garbled").mkdir()
    (tmp_path / "galera" / "garbled" / "manifest.json").write_text(json.dumps({"id": 1}))
    sets = [m.as_set() for m in repo.manifests()]
    assert [s.id for s in sets] == ["f0", "f1", "f2"]
    for set_id in expired(Retention(keep_full=2, window=0), sets, NOW):
        repo.delete(set_id)
    assert [m.id for m in repo.manifests()] == ["f1", "f2"]
    assert not (tmp_path / "galera" / "f0").exists()
