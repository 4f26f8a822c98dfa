"""The pure parts of taking a backup: which node, the set's id, an incremental's parent, the commands."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.backup import tools
from galera_pilot.backup.chains import incremental_parent, new_backup_id
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.request import DONE, REQUESTED, BackupRequest
from galera_pilot.backup.settings import BackupSettings, BackupTools
from galera_pilot.cluster import Cluster, Member, Removal
from galera_pilot.errors import PilotError
from galera_pilot.membership.backup_node import choose_backup_node

NOW = 1_800_000_000.0


def member(name: str, state: str = "Synced", primary: bool = True) -> Member:
    return Member(name, "127.0.0.1", running=state != "stopped", state=state,
                  cluster_status="Primary" if primary else "non-Primary")


def cluster(*members: Member, writer: str | None = "node1", maintenance: frozenset[str] = frozenset(),
            removed: tuple[str, ...] = ()) -> Cluster:
    return Cluster(members={m.name: m for m in members}, writer=writer, maintenance=maintenance,
                   removed={n: Removal(n, "test") for n in removed})


def test_a_synced_non_writer_is_chosen_before_the_writer() -> None:
    view = cluster(member("node1"), member("node2", "Donor/Desynced"), member("node3"))
    assert choose_backup_node(view).node == "node3"
    only_writer = cluster(member("node1"), member("node2", "Joiner"))
    placed = choose_backup_node(only_writer)
    assert placed.node == "node1" and "no other member is Synced" in placed.reason


def test_maintenance_is_avoided_but_used_before_the_writer_and_removed_members_never() -> None:
    view = cluster(member("node1"), member("node2"), member("node3"), maintenance=frozenset({"node2"}))
    assert choose_backup_node(view).node == "node3"
    view = cluster(member("node1"), member("node2"), maintenance=frozenset({"node2"}))
    assert choose_backup_node(view).node == "node2"
    view = cluster(member("node1"), member("node2"), removed=("node2",))
    assert choose_backup_node(view).node == "node1"


def test_a_named_node_must_be_live_and_synced() -> None:
    view = cluster(member("node1"), member("node2", "Joiner"), member("node3", primary=False))
    assert choose_backup_node(view, "node1").node == "node1"  # the writer, as asked, with a warning
    assert "clients see its pause" in choose_backup_node(view, "node1").reason
    for name, why in (("node2", "Joiner"), ("node3", "not Synced"), ("node9", "not a live member")):
        placed = choose_backup_node(view, name)
        assert placed.node is None and why in placed.reason
    assert choose_backup_node(cluster()).node is None


@given(st.lists(st.sampled_from(["full", "incremental", "logical"]), max_size=30))
def test_ids_are_unique_and_say_their_kind(kinds: list[str]) -> None:
    taken: set[str] = set()
    for kind in kinds:
        new = new_backup_id(kind, NOW, taken)  # type: ignore[arg-type]
        assert new not in taken and new.startswith("20270115-080000") and {"full": "F", "incremental": "I",
                                                                          "logical": "L"}[kind] in new[15:]
        taken.add(new)


def set_(set_id: str, kind: str, finished: float, parent: str | None = None, status: str = "complete",
         to_lsn: int | None = 100) -> Manifest:
    return Manifest(set_id, kind, "galera", "uuid", finished - 10, status=status,  # type: ignore[arg-type]
                    finished_at=finished, parent=parent, to_lsn=to_lsn)


def test_an_incremental_extends_the_newest_full_chain() -> None:
    sets = [set_("f1", "full", 10), set_("i1", "incremental", 20, "f1"), set_("f2", "full", 30),
            set_("i2", "incremental", 40, "f2"), set_("i3", "incremental", 50, "i2", status="failed"),
            set_("i4", "incremental", 60, "f1"), set_("l1", "logical", 70)]
    # i4 is newer but extends the older full f1; the failed i3 is never a parent: i2 of f2's chain is.
    assert incremental_parent(sets).id == "i2"
    assert incremental_parent(sets[:2]).id == "i1"
    with pytest.raises(PilotError, match="needs a complete full backup"):
        incremental_parent([set_("l1", "logical", 70), set_("f0", "full", 5, status="failed")])
    with pytest.raises(PilotError, match="records no LSN"):
        incremental_parent([set_("f1", "full", 10, to_lsn=None)])


def test_commands_carry_no_password_and_the_defaults_file_quotes() -> None:
    tools_ = BackupTools()
    defaults = tools.client_defaults("admin", 'pa"ss\\word', Path("/run/s.sock"), Path("/d"))
    assert 'password="pa\\"ss\\\\word"' in defaults and "[mariabackup]" in defaults and 'datadir="/d"' in defaults
    physical = tools.physical_backup(tools_, Path("/x/client.cnf"), Path("/w"), Path("/l"), 4242, no_lock=True)
    assert physical[1] == "--defaults-file=/x/client.cnf" and "--incremental-lsn=4242" in physical
    assert "--no-lock" in physical and not any("pa" in a and "ss" in a for a in physical)
    assert tools.logical_backup(tools_, Path("/x/client.cnf"))[1] == "--defaults-file=/x/client.cnf"
    assert tools.checksum_statement([("a`b", "t"), ("s", "u")]) == "CHECKSUM TABLE `a``b`.`t`, `s`.`u`"
    assert tools.lsn_range("backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 44404\n") == (0, 44404)
    assert tools.lsn_range("garbage") == (None, None)


def test_settings_and_requests() -> None:
    settings = BackupSettings.model_validate({"repository": "/srv/backups", "full_every_hours": 24,
                                              "incremental_every_hours": 6})
    assert settings.schedule.full_every == 86400 and settings.schedule.incremental_every == 21600
    with pytest.raises(ValueError, match="absolute"):
        BackupSettings.model_validate({"repository": "backups"})
    request = BackupRequest("b1", "full", "node2", "test")
    assert request.phase == REQUESTED and not request.finished
    done = request.moved(DONE, detail="ok")
    assert done.finished and BackupRequest.from_dict({**done.to_dict(), "unknown": 1}) == done


def test_backup_create_refuses_repo_because_the_agent_writes_where_its_section_says(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from galera_pilot.cli.main import main

    result = CliRunner().invoke(main, ["backup", "create", "--dir", str(tmp_path), "--repo", str(tmp_path)])
    assert result.exit_code == 1 and "--repo only names where list, show, verify and delete look" in result.output
    key = tmp_path / "k"
    made = CliRunner().invoke(main, ["backup", "key", str(key)])
    assert made.exit_code == 0 and key.stat().st_mode & 0o777 == 0o600, made.output
    again = CliRunner().invoke(main, ["backup", "key", str(key)])
    assert again.exit_code == 1 and "already exists: not overwritten" in again.output
