"""The snapshot file (backup/snapshot_archive.py): what is sealed comes back whole with its key, and a
wrong key, a cut or altered file, a foreign member or a hostile object name is refused by name, with
nothing written outside the folder it is read into."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from galera_pilot.backup.encryption import generate_key_file, load_key
from galera_pilot.backup.snapshot_archive import (
    CHUNK,
    CREDENTIALS,
    FORMAT,
    HEADER,
    Member,
    SnapshotError,
    read_snapshot,
    write_snapshot,
)

HEADER_BYTES = json.dumps({"galera_pilot_snapshot": FORMAT, "cluster_name": "galera"}).encode()


def sealed(tmp_path: Path, members: list[Member], name: str = "snap.gp") -> tuple[Path, Path]:
    key_file = tmp_path / "key"
    if not key_file.exists():
        generate_key_file(key_file)
    path = tmp_path / name
    write_snapshot(path, load_key(key_file), members)
    return path, key_file


def unpack_into(tmp_path: Path, path: Path, key_file: Path) -> tuple[object, Path]:
    into = tmp_path / f"into-{path.name}"
    into.mkdir()
    return read_snapshot(path, load_key(key_file), into), into


def test_what_is_sealed_comes_back_whole_and_the_file_is_private(tmp_path: Path) -> None:
    big = bytes(range(256)) * (3 * CHUNK // 256 + 7)  # several chunks, not a multiple of one
    path, key_file = sealed(tmp_path, [Member(HEADER, HEADER_BYTES), Member(CREDENTIALS, b"admin_user: a\n"),
                                       Member("set/data.mbstream.zst", io.BytesIO(big)),
                                       Member("set/xtrabackup_checkpoints", b"")])
    assert path.stat().st_mode & 0o777 == 0o600 and b"admin_user" not in path.read_bytes()
    unpacked, into = unpack_into(tmp_path, path, key_file)
    assert unpacked.header["cluster_name"] == "galera" and unpacked.credentials == "admin_user: a\n"
    assert unpacked.objects["data.mbstream.zst"].read_bytes() == big
    assert unpacked.objects["xtrabackup_checkpoints"].read_bytes() == b""
    assert sorted(p.name for p in into.iterdir()) == ["data.mbstream.zst", "xtrabackup_checkpoints"]
    (tmp_path / ".again.gp.partial").write_text("left by a save cut short")
    with pytest.raises(SnapshotError, match="was cut short"):
        write_snapshot(tmp_path / "again.gp", load_key(key_file), [Member(HEADER, HEADER_BYTES)])
    assert not (tmp_path / "again.gp").exists()


def test_a_wrong_key_a_cut_or_altered_file_is_refused_by_name(tmp_path: Path) -> None:
    path, key_file = sealed(tmp_path, [Member(HEADER, HEADER_BYTES), Member(CREDENTIALS, b"x: y\n"),
                                       Member("set/data", io.BytesIO(b"z" * (2 * CHUNK)))])
    other = tmp_path / "other-key"
    generate_key_file(other)
    with pytest.raises(SnapshotError, match=str(path)):
        unpack_into(tmp_path, path, other)
    data = path.read_bytes()
    cut = tmp_path / "cut.gp"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SnapshotError, match=r"cut\.gp"):
        unpack_into(tmp_path, cut, key_file)
    altered = tmp_path / "altered.gp"
    flipped = bytearray(data)
    flipped[len(flipped) // 3] ^= 0x01
    altered.write_bytes(bytes(flipped))
    with pytest.raises(SnapshotError, match=r"altered\.gp"):
        unpack_into(tmp_path, altered, key_file)


@pytest.mark.parametrize("name", ["set/../../escape", "set/.hidden", "set/manifest.json", "../credentials",
                                  "other.txt", "set/a/b"])
def test_a_member_no_snapshot_has_is_refused_and_nothing_is_written_for_it(tmp_path: Path, name: str) -> None:
    path, key_file = sealed(tmp_path, [Member(HEADER, HEADER_BYTES), Member(name, b"payload")])
    with pytest.raises(SnapshotError, match="no snapshot has"):
        unpack_into(tmp_path, path, key_file)
    assert not (tmp_path / "escape").exists() and not list(tmp_path.glob("into-*/*"))


def test_a_missing_part_or_another_format_is_not_a_whole_snapshot(tmp_path: Path) -> None:
    path, key_file = sealed(tmp_path, [Member(HEADER, HEADER_BYTES)], "no-credentials.gp")
    with pytest.raises(SnapshotError, match=r"has no credentials\.yaml"):
        unpack_into(tmp_path, path, key_file)
    future = json.dumps({"galera_pilot_snapshot": FORMAT + 1}).encode()
    path, key_file = sealed(tmp_path, [Member(HEADER, future), Member(CREDENTIALS, b"")], "future.gp")
    with pytest.raises(SnapshotError, match=f"format {FORMAT + 1} is not {FORMAT}"):
        unpack_into(tmp_path, path, key_file)
