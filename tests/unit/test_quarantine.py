"""quarantine.py: a datadir is kept, never deleted; a mount point (which cannot be renamed) has its
contents copied out, or the quarantine is refused with how much room it needs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from galera_pilot.agent import quarantine
from galera_pilot.agent.quarantine import copy_out_refusal, move_aside, place_seed_in_mount
from galera_pilot.errors import PilotError
from galera_pilot.mariadb.disk import Usage


def datadir(base: Path) -> Path:
    data = base / "data"
    (data / "mysql").mkdir(parents=True)
    (data / "mysql" / "user.frm").write_bytes(b"u" * 5000)
    (data / "ibdata1").write_bytes(b"i" * 20000)
    (data / "grastate.dat").write_text("seqno: 7\n")
    os.symlink("ibdata1", data / "link")
    return data


def test_a_plain_datadir_is_renamed(tmp_path: Path) -> None:
    data = datadir(tmp_path)
    target = move_aside(data, tmp_path)
    assert not data.exists() and (target / "ibdata1").stat().st_size == 20000
    assert target.name.startswith("data.refused-")
    assert move_aside(datadir(tmp_path), tmp_path) != target  # two in one second do not collide


def test_a_mount_point_has_its_contents_copied_out_and_stays(tmp_path: Path) -> None:
    data = datadir(tmp_path)
    target = move_aside(data, tmp_path, mount_point=True)
    assert data.is_dir() and list(data.iterdir()) == []  # the mount point stays, empty, for the SST
    assert (target / "mysql" / "user.frm").read_bytes() == b"u" * 5000
    assert (target / "grastate.dat").read_text() == "seqno: 7\n"
    assert (target / "link").is_symlink()


def test_no_room_for_the_copy_refuses_and_keeps_the_datadir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = datadir(tmp_path)
    monkeypatch.setattr(quarantine, "measure", lambda location, path: Usage(location, str(path), 10**9, 1000, 0, 0))
    refusal = copy_out_refusal(data, tmp_path, mount_point=True)
    assert refusal is not None and refusal.startswith(f"cannot quarantine {data}: it is a mount point")
    assert "needed" in refusal
    with pytest.raises(PilotError, match="cannot quarantine"):
        move_aside(data, tmp_path, mount_point=True)
    assert (data / "ibdata1").stat().st_size == 20000 and not list(tmp_path.glob("data.refused-*"))
    assert copy_out_refusal(data, tmp_path, mount_point=False) is None  # a rename needs no room


def test_a_failed_copy_leaves_the_datadir_unchanged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = datadir(tmp_path)

    def failing_copy(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(quarantine.shutil, "copy2", failing_copy)
    with pytest.raises(PilotError, match="the datadir is unchanged"):
        move_aside(data, tmp_path, mount_point=True)
    assert (data / "ibdata1").exists() and not list(tmp_path.glob("data.refused-*"))


def test_seed_is_placed_into_a_mount_point(tmp_path: Path) -> None:
    seed = datadir(tmp_path / "seed-parent")
    mount = tmp_path / "data"
    mount.mkdir()
    (mount / ".seed-copy").mkdir()  # an interrupted earlier attempt
    prepared: list[Path] = []
    place_seed_in_mount(seed, mount, prepared.append)
    assert sorted(p.name for p in mount.iterdir()) == ["grastate.dat", "ibdata1", "link", "mysql"]
    assert prepared == [mount / ".seed-copy"]
