"""The agent's position gathering (observation.py): a crashed datadir (grastate seqno -1) must be recovered
with --wsrep-recover.

mariadbd itself is replaced by a stub returning what `--wsrep-recover` would print; everything else is real.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from unit_helpers import make_config

from galera_pilot.agent.ha import Ha
from galera_pilot.cluster import UNKNOWN_UUID, Position
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.sqlite import SQLiteDCS

UUID = "8f1e1d9a-7c2b-11ee-9b1f-0242ac120002"


@pytest.fixture
def ha(tmp_path: Path, dcs: SQLiteDCS) -> Ha:
    config = make_config(base_dir=str(tmp_path / "node1"), mariadbd_user="nobody")
    agent = Ha(config, dcs, Credentials.generate())
    config.data_dir.mkdir(parents=True)
    (config.data_dir / "mysql").mkdir()
    agent.recover_calls = []  # type: ignore[attr-defined]

    def fake_recover() -> Position:
        agent.recover_calls.append(1)  # type: ignore[attr-defined]
        return Position(UUID, 42, False, "wsrep-recover")

    agent.process.wsrep_recover = fake_recover  # type: ignore[method-assign]
    return agent


def write_grastate(ha: Ha, seqno: int, safe: int = 0, uuid: str = UUID) -> None:
    (ha.config.data_dir / "grastate.dat").write_text(
        f"# GALERA saved state\nversion: 2.1\nuuid:    {uuid}\nseqno:   {seqno}\nsafe_to_bootstrap: {safe}\n")


def test_clean_position_needs_no_recovery(ha: Ha) -> None:
    write_grastate(ha, 17, safe=1)
    assert ha.positions.read() == Position(UUID, 17, True, "grastate")
    assert ha.recover_calls == []  # type: ignore[attr-defined]


def test_damaged_datadir_is_not_recovered(ha: Ha) -> None:
    write_grastate(ha, 17)
    (ha.config.data_dir / "sst_in_progress").write_text("")
    position = ha.positions.read()
    assert position is not None and not position.usable
    assert ha.recover_calls == []  # type: ignore[attr-defined]


def test_crashed_datadir_is_recovered(ha: Ha) -> None:
    # Regression: _position used to return early on `not position.usable`, always true for seqno -1.
    write_grastate(ha, -1)
    position = ha.positions.read()
    assert ha.recover_calls == [1]  # type: ignore[attr-defined]
    assert position == Position(UUID, 42, False, "wsrep-recover")
    assert ha.positions.read() == position  # cached while grastate.dat and the redo log are unchanged
    assert ha.recover_calls == [1]  # type: ignore[attr-defined]


def test_crashed_datadir_keeps_safe_to_bootstrap(ha: Ha) -> None:
    write_grastate(ha, -1, safe=1)
    assert ha.positions.read() == Position(UUID, 42, True, "wsrep-recover")


def test_zero_uuid_of_a_kill_under_load_is_recovered(ha: Ha) -> None:
    # Regression: Galera writes the zero UUID while a transaction is in flight; the agent took such a datadir
    # for "never joined", moved it aside and paid a full SST (and a full outage could lose its most advanced node).
    write_grastate(ha, -1, uuid=UNKNOWN_UUID)
    assert ha.positions.read() == Position(UUID, 42, False, "wsrep-recover")
    assert ha.recover_calls == [1]  # type: ignore[attr-defined]


def lost_vote_in_the_last_run(ha: Ha, seqno: int) -> None:
    ha.config.log_dir.mkdir(parents=True, exist_ok=True)
    ha.config.error_log.write_text(
        "2026-12-04 18:52:37 0 [Note] Starting MariaDB 10.11.19-MariaDB as process 4242\n"
        "2026-12-04 18:52:52 7 [ERROR] InnoDB: preallocating 393216 bytes for file ./soak/transfers.ibd failed "
        "with error 28\n2026-12-04 18:52:52 7 [ERROR] WSREP: Inconsistency detected: Inconsistent by consensus "
        f"on {UUID}:{seqno}\n2026-12-04 18:53:04 0 [Note] InnoDB: Shutdown completed\n")


def test_a_lost_vote_behind_innodbs_position_makes_the_datadir_unusable(ha: Ha) -> None:
    # Regression (found by the soak's fill-disk fault): Galera blanks the UUID of a node that lost a
    # consistency vote too; the agent put the UUID back from InnoDB (at 42, past the failed 40) and asked
    # for an IST that would have left seqno 40 out. Only a donor gcache too short made it an SST that time.
    write_grastate(ha, -1, uuid=UNKNOWN_UUID)
    lost_vote_in_the_last_run(ha, 40)
    position = ha.positions.read()
    assert position is not None and not position.usable and not position.needs_recovery
    assert f"{UUID}:42" in (position.unusable or "") and "IST" in (position.unusable or "")
    assert ha.positions.read() == position  # cached like any recovery
    assert ha.recover_calls == [1]  # type: ignore[attr-defined]

    # mariadbd ran again on a new datadir (the full SST): a new run, no verdict.
    with ha.config.error_log.open("a") as log:
        log.write("2026-12-04 19:00:00 0 [Note] Starting MariaDB 10.11.19-MariaDB as process 4343\n")
    ha.positions.forget()  # what the agent does when it replaces the datadir
    assert ha.positions.read() == Position(UUID, 42, False, "wsrep-recover")


def test_a_write_failed_for_space_after_innodbs_position_is_applied_again_by_ist(ha: Ha) -> None:
    write_grastate(ha, -1, uuid=UNKNOWN_UUID)
    lost_vote_in_the_last_run(ha, 43)  # InnoDB at 42: the IST starts with the failed write
    assert ha.positions.read() == Position(UUID, 42, False, "wsrep-recover")


def test_zero_uuid_and_no_innodb_position_is_never_joined(ha: Ha) -> None:
    write_grastate(ha, -1, uuid=UNKNOWN_UUID)
    ha.process.wsrep_recover = lambda: Position(UNKNOWN_UUID, -1, False, "wsrep-recover")  # type: ignore[method-assign]
    position = ha.positions.read()
    assert position is not None and not position.usable and "never joined" in position.unusable


def test_recovery_of_another_cluster_is_unusable(ha: Ha) -> None:
    write_grastate(ha, -1)
    other = "00000000-1111-2222-3333-444444444444"
    ha.process.wsrep_recover = lambda: Position(other, 99, False, "wsrep-recover")  # type: ignore[method-assign]
    position = ha.positions.read()
    assert position is not None and not position.usable
    assert position.uuid == other and other in position.unusable and UUID in position.unusable


def test_failed_recovery_is_unusable(ha: Ha) -> None:
    from galera_pilot.errors import PilotError

    def broken() -> Position:
        raise PilotError("mariadbd --wsrep-recover found no position: boom")

    write_grastate(ha, -1)
    ha.process.wsrep_recover = broken  # type: ignore[method-assign]
    position = ha.positions.read()
    assert position is not None and not position.usable and not position.needs_recovery
    assert "boom" in position.unusable


def test_a_seed_copy_keeps_what_an_interrupted_join_left_in_the_datadir(ha: Ha, dcs: SQLiteDCS, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """CI once found a joiner stopped mid-SST: its datadir was not empty, rmdir failed every cycle, and the
    node never joined. Now the leftovers go aside (kept, like any replaced datadir) and the seed is copied."""
    import galera_pilot.agent.datadir
    from galera_pilot.cluster import SeedRecord

    monkeypatch.setattr(galera_pilot.agent.datadir, "chown_tree", lambda *args: None)  # no mysql user needed here
    seed = tmp_path / "seed"
    (seed / "mysql").mkdir(parents=True)
    (seed / "grastate.dat").write_text("seed\n")
    dcs.publish_seed(SeedRecord(ha.host, str(seed), UUID, 5))
    (ha.config.data_dir / "ib_logfile0").write_text("left by the interrupted join\n")
    ha.datadir.copy_seed()
    assert (ha.config.data_dir / "grastate.dat").read_text() == "seed\n"
    kept = list(ha.config.base_dir.glob("data.refused-*"))
    assert len(kept) == 1 and (kept[0] / "ib_logfile0").exists()
    events = [e for e in dcs.snapshot().history if e.action == "quarantine"]
    assert events and "interrupted join" in events[-1].reason


@pytest.mark.parametrize(("text", "problem"), [
    (None, "grastate.dat is missing"),
    ("", "grastate.dat is empty"),
    ("garbage\n", "grastate.dat is corrupt"),
])
def test_a_damaged_grastate_is_recovered_from_innodb(ha: Ha, text: str | None, problem: str) -> None:
    """Issue 18: node1 held the most when its grastate.dat was overwritten; it was quarantined and its
    acknowledged rows lost to a bootstrap from behind. InnoDB still knew the position."""
    if text is not None:
        (ha.config.data_dir / "grastate.dat").write_text(text)
    position = ha.positions.read()
    assert ha.recover_calls == [1]  # type: ignore[attr-defined]
    assert position is not None and position.usable
    assert (position.uuid, position.seqno, position.source) == (UUID, 42, "wsrep-recover")
    assert position.grastate_problem is not None and position.grastate_problem.startswith(problem)


def test_a_damaged_grastate_without_an_innodb_position_is_unusable_and_says_both(ha: Ha) -> None:
    (ha.config.data_dir / "grastate.dat").write_text("garbage\n")
    ha.process.wsrep_recover = lambda: Position(UNKNOWN_UUID, -1, False, "wsrep-recover")  # type: ignore[method-assign]
    position = ha.positions.read()
    assert position is not None and not position.usable
    assert position.unusable == ("grastate.dat is corrupt: uuid '' is not a UUID, and InnoDB holds no cluster "
                                 "position either")


def test_an_empty_datadir_is_reported_as_empty(ha: Ha) -> None:
    import shutil

    from galera_pilot.cluster import EMPTY_POSITION

    shutil.rmtree(ha.config.data_dir / "mysql")
    local = ha.observe(1000.0)
    assert local.position == EMPTY_POSITION and not local.has_data
    assert ha.member().position == EMPTY_POSITION
