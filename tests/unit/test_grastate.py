"""mariadb/grastate.py: parsing grastate.dat and judging a datadir's position."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galera_pilot.cluster import UNKNOWN_UUID, Position
from galera_pilot.mariadb.grastate import (
    CorruptGrastate,
    GraState,
    datadir_position,
    has_data,
    parse_grastate,
    restore_cluster_uuid,
    rewrite_grastate,
    set_safe_to_bootstrap,
)

UUID = "8f1e1d9a-7c2b-11ee-9b1f-0242ac120002"


def grastate(uuid: str = UUID, seqno: int | str = 42, safe: int | str | None = 0) -> str:
    lines = ["# GALERA saved state", "version: 2.1", f"uuid:    {uuid}", f"seqno:   {seqno}"]
    if safe is not None:
        lines.append(f"safe_to_bootstrap: {safe}")
    return "\n".join(lines) + "\n"


def datadir(tmp_path: Path, text: str | None = None, marker: str = "mysql") -> Path:
    data = tmp_path / "data"
    data.mkdir()
    if marker == "mysql":
        (data / "mysql").mkdir()
    elif marker == "ibdata1":
        (data / "ibdata1").write_bytes(b"\0" * 16)
    if text is not None:
        (data / "grastate.dat").write_text(text)
    return data


# ---- parse_grastate ---------------------------------------------------------------------------------------


def test_parse_typical_file() -> None:
    assert parse_grastate(grastate(seqno=1234, safe=1)) == GraState(UUID, 1234, True)
    assert parse_grastate(grastate(seqno=0, safe=0)) == GraState(UUID, 0, False)


def test_parse_seqno_minus_one() -> None:
    assert parse_grastate(grastate(seqno=-1)) == GraState(UUID, -1, False)


def test_parse_missing_safe_to_bootstrap_means_not_safe() -> None:
    assert parse_grastate(grastate(safe=None)) == GraState(UUID, 42, False)


def test_parse_ignores_comments_blank_lines_and_unknown_keys() -> None:
    text = f"# comment: uuid: nonsense\n\nversion: 2.1\nuuid:{UUID}\nseqno:7\nextra: field\nsafe_to_bootstrap:1\n"
    assert parse_grastate(text) == GraState(UUID, 7, True)


def test_parse_all_zero_uuid_is_syntactically_fine() -> None:
    assert parse_grastate(grastate(uuid=UNKNOWN_UUID, seqno=-1)).uuid == UNKNOWN_UUID


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "uuid"),
        ("garbage\n\x00\x01", "uuid"),
        (grastate(uuid="not-a-uuid"), "uuid"),
        (grastate(uuid=UUID[:-1]), "uuid"),
        (grastate(uuid=UUID + "0"), "uuid"),
        (grastate(seqno="forty-two"), "seqno"),
        (grastate(seqno=""), "seqno"),
        (grastate(seqno="1.5"), "seqno"),
        (grastate(seqno=-2), "below -1"),
        (grastate(safe=2), "safe_to_bootstrap"),
        (grastate(safe="yes"), "safe_to_bootstrap"),
        (f"version: 2.1\nuuid: {UUID}\n", "seqno"),
        ("version: 2.1\nseqno: 5\n", "uuid"),
        # truncated in the middle of the uuid, as after a crash during a write
        (f"# GALERA saved state\nversion: 2.1\nuuid:    {UUID[:13]}", "uuid"),
    ],
)
def test_parse_corrupt(text: str, complaint: str) -> None:
    with pytest.raises(CorruptGrastate, match=complaint):
        parse_grastate(text)


def test_corrupt_grastate_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_grastate("")


uuids = st.uuids().map(str)


@settings(max_examples=100, deadline=None)
@given(uuid=uuids, seqno=st.integers(-1, 2**63 - 1), safe=st.booleans(), spaces=st.text(" \t", max_size=3))
def test_parse_round_trip(uuid: str, seqno: int, safe: bool, spaces: str) -> None:
    text = f"# GALERA saved state\nversion: 2.1\nuuid:{spaces}{uuid}\nseqno:{spaces}{seqno}\n" \
           f"safe_to_bootstrap:{spaces}{int(safe)}\n"
    assert parse_grastate(text) == GraState(uuid, seqno, safe)


# ---- datadir_position -------------------------------------------------------------------------------------


def test_has_data(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert not has_data(empty)
    assert not has_data(tmp_path / "absent")
    (empty / "grastate.dat").write_text(grastate())  # a grastate alone is not data
    assert not has_data(empty)
    assert has_data(datadir(tmp_path, marker="mysql"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "ibdata1").write_bytes(b"x")
    assert has_data(other)


def test_empty_or_absent_datadir_has_no_position(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "grastate.dat").write_text(grastate())
    assert datadir_position(empty) is None
    assert datadir_position(tmp_path / "absent") is None


@pytest.mark.parametrize("marker", ["mysql", "ibdata1"])
def test_normal_position(tmp_path: Path, marker: str) -> None:
    position = datadir_position(datadir(tmp_path, grastate(seqno=42, safe=1), marker))
    assert position == Position(UUID, 42, True, "grastate", None)
    assert position.usable
    assert not position.needs_recovery


def test_seqno_minus_one_is_not_flagged_but_not_yet_usable(tmp_path: Path) -> None:
    position = datadir_position(datadir(tmp_path, grastate(seqno=-1)))
    assert position == Position(UUID, -1, False, "grastate", None)
    assert position.unusable is None  # a crash, not damage: --wsrep-recover can find the real seqno
    assert not position.usable
    assert position.needs_recovery


def test_sst_in_progress_is_unusable_even_with_a_good_grastate(tmp_path: Path) -> None:
    data = datadir(tmp_path, grastate(seqno=100, safe=1))
    (data / "sst_in_progress").write_text("")
    position = datadir_position(data)
    assert position is not None
    assert position.unusable is not None and "sst_in_progress" in position.unusable
    assert position.uuid == UNKNOWN_UUID and position.seqno == -1
    assert not position.usable
    assert not position.needs_recovery  # damaged, not merely crashed: recovery must not be attempted


# A damaged grastate.dat is not the end of a datadir (issue 18): the position is asked of InnoDB
# (--wsrep-recover, which observation.py runs for seqno -1), and the problem is kept to say why and to rewrite the file.
@pytest.mark.parametrize(("text", "complaint"), [
    (None, "grastate.dat is missing"),
    ("", "grastate.dat is empty"),
    ("  \n", "grastate.dat is empty"),
    ("garbage", "grastate.dat is corrupt: uuid '' is not a UUID"),
])
def test_a_damaged_grastate_asks_innodb(tmp_path: Path, text: str | None, complaint: str) -> None:
    position = datadir_position(datadir(tmp_path, text))
    assert position is not None and not position.usable
    assert position.needs_recovery and position.unusable is None
    assert position.grastate_problem == complaint
    assert position.uuid == UNKNOWN_UUID


def test_an_unreadable_grastate_asks_innodb(tmp_path: Path) -> None:
    data = datadir(tmp_path, None)
    (data / "grastate.dat").mkdir()  # reading a directory fails even for root
    position = datadir_position(data)
    assert position is not None and position.needs_recovery
    assert position.grastate_problem is not None and "cannot be read" in position.grastate_problem


def test_binary_garbage_in_grastate_asks_innodb(tmp_path: Path) -> None:
    data = datadir(tmp_path, None)
    (data / "grastate.dat").write_bytes(b"\xff\xfe\x00garbage")
    position = datadir_position(data)
    assert position is not None and position.needs_recovery and position.grastate_problem


def test_rewrite_keeps_the_damaged_file_and_names_the_recovered_uuid(tmp_path: Path) -> None:
    data = datadir(tmp_path, "garbage")
    kept = rewrite_grastate(data, UUID, "20261201-101010")
    assert kept == data / "grastate.dat.damaged-20261201-101010" and kept.read_text() == "garbage"
    state = parse_grastate((data / "grastate.dat").read_text())
    assert (state.uuid, state.seqno, state.safe_to_bootstrap) == (UUID, -1, False)
    position = datadir_position(data)
    assert position is not None and position.needs_recovery and position.grastate_problem is None


def test_rewrite_of_a_missing_file_keeps_nothing(tmp_path: Path) -> None:
    data = datadir(tmp_path, None)
    assert rewrite_grastate(data, UUID, "x") is None
    assert parse_grastate((data / "grastate.dat").read_text()).uuid == UUID


@pytest.mark.parametrize("uuid", [UNKNOWN_UUID, "garbage"])
def test_rewrite_refuses_what_is_not_a_cluster_uuid(tmp_path: Path, uuid: str) -> None:
    data = datadir(tmp_path, "garbage")
    with pytest.raises(ValueError):
        rewrite_grastate(data, uuid, "x")
    assert (data / "grastate.dat").read_text() == "garbage"


def test_all_zero_uuid_asks_innodb(tmp_path: Path) -> None:
    # Galera writes the zero UUID while a transaction is in flight: a server killed under load leaves it.
    position = datadir_position(datadir(tmp_path, grastate(uuid=UNKNOWN_UUID, seqno=-1)))
    assert position is not None and position.unusable is None
    assert position.needs_recovery and not position.usable


def test_all_zero_uuid_with_a_seqno_is_never_usable_as_is(tmp_path: Path) -> None:
    position = datadir_position(datadir(tmp_path, grastate(uuid=UNKNOWN_UUID, seqno=10, safe=1)))
    assert position is not None and not position.usable


# ---- set_safe_to_bootstrap --------------------------------------------------------------------------------


@pytest.mark.parametrize(("before", "value"), [(0, True), (1, False), (1, True), (0, False)])
def test_set_safe_to_bootstrap_keeps_other_lines(tmp_path: Path, before: int, value: bool) -> None:
    original = grastate(seqno=77, safe=before)
    data = datadir(tmp_path, original)
    set_safe_to_bootstrap(data, value)
    text = (data / "grastate.dat").read_text()
    assert parse_grastate(text) == GraState(UUID, 77, value)
    old_lines, new_lines = original.splitlines(), text.splitlines()
    assert len(old_lines) == len(new_lines)
    changed = [(o, n) for o, n in zip(old_lines, new_lines, strict=True) if o != n]
    if bool(before) == value:
        assert changed == []
    else:
        assert changed == [(f"safe_to_bootstrap: {before}", f"safe_to_bootstrap: {int(value)}")]
    assert text.endswith("\n")


def test_set_safe_to_bootstrap_does_not_touch_similar_lines(tmp_path: Path) -> None:
    original = f"# safe_to_bootstrap: 0 is explained here\nuuid: {UUID}\nseqno: 5\nsafe_to_bootstrap: 0\n"
    data = datadir(tmp_path, original)
    set_safe_to_bootstrap(data, True)
    text = (data / "grastate.dat").read_text()
    assert text == original.replace("\nsafe_to_bootstrap: 0\n", "\nsafe_to_bootstrap: 1\n")
    assert datadir_position(data) == Position(UUID, 5, True)


# ---- restore_cluster_uuid ---------------------------------------------------------------------------------


def test_restore_puts_the_recovered_uuid_back(tmp_path: Path) -> None:
    data = datadir(tmp_path, grastate(uuid=UNKNOWN_UUID, seqno=-1, safe=1))
    assert restore_cluster_uuid(data, UUID)
    assert parse_grastate((data / "grastate.dat").read_text()) == GraState(UUID, -1, True)


def test_restore_never_overwrites_a_real_uuid(tmp_path: Path) -> None:
    other = "00000000-1111-2222-3333-444444444444"
    original = grastate(uuid=other, seqno=-1)
    data = datadir(tmp_path, original)
    assert not restore_cluster_uuid(data, UUID)
    assert (data / "grastate.dat").read_text() == original


@pytest.mark.parametrize("recovered", [UNKNOWN_UUID, "not-a-uuid"])
def test_restore_refuses_what_is_not_a_cluster_uuid(tmp_path: Path, recovered: str) -> None:
    original = grastate(uuid=UNKNOWN_UUID, seqno=-1)
    data = datadir(tmp_path, original)
    assert not restore_cluster_uuid(data, recovered)
    assert (data / "grastate.dat").read_text() == original
