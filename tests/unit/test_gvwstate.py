"""Parsing gvwstate.dat, the view pc.recovery restores."""

from __future__ import annotations

from pathlib import Path

from galera_pilot.cluster import Position, SavedView
from galera_pilot.mariadb.gvwstate import parse_gvwstate, read_saved_view

A = "6c821ecc-acdb-11e6-85be-0ba9b3dd3a7b"
B = "6d80ec1b-acdb-11e6-8e8b-3acd2dd46eb0"
C = "9acf4d34-acdb-11e6-bcc3-d3e36276629f"

SAMPLE = f"""my_uuid: {C}
#vwbeg
view_id: 3 {A} 3
bootstrap: 0
member: {B} 0
member: {A} 0
member: {C} 0
#vwend
"""


def test_parses_own_uuid_view_and_sorted_members() -> None:
    assert parse_gvwstate(SAMPLE) == SavedView(C, f"3 {A} 3", (A, B, C))


def test_torn_file_is_no_view() -> None:
    assert parse_gvwstate(SAMPLE.replace("#vwend\n", "")) is None
    assert parse_gvwstate(SAMPLE[:40]) is None
    assert parse_gvwstate("") is None
    assert parse_gvwstate("garbage\n\x00\x01") is None


def test_own_uuid_must_be_a_member() -> None:
    assert parse_gvwstate(SAMPLE.replace(f"member: {C} 0\n", "")) is None


def test_read_missing_file(tmp_path: Path) -> None:
    assert read_saved_view(tmp_path) is None
    (tmp_path / "gvwstate.dat").write_text(SAMPLE)
    assert read_saved_view(tmp_path) == SavedView(C, f"3 {A} 3", (A, B, C))


def test_position_round_trips_its_saved_view() -> None:
    position = Position("u", 5, saved_view=SavedView(C, "3 x 3", (A, C)))
    assert Position.from_dict(position.to_dict()) == position
    assert Position.from_dict(Position("u", 5).to_dict()) == Position("u", 5)
