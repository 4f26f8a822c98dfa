"""Automatic updates (lifecycle/updates.py, issue 13): when the writer's agent rolls an installed minor
update by itself, and every reason it does not."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time
from pathlib import Path

import pytest
from decision_builders import running, snapshot
from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.cluster import REQUESTED, Cluster, ClusterSettings, HistoryEvent, Pause, RestartRequest, Roll
from galera_pilot.dcs.lifecycle import create_roll, hold_driver, request_restart
from galera_pilot.dcs.sqlite import SQLiteDCS
from galera_pilot.lifecycle.driver import RollDriver
from galera_pilot.lifecycle.roll import describe
from galera_pilot.lifecycle.updates import UpdatePolicy, in_window, update_verdict
from galera_pilot.settings.edits import problems

OLD, NEW = "10.11.19-MariaDB-0+deb12u1", "10.11.20-MariaDB-0+deb12u1"
NOON = datetime(2026, 12, 1, 12, 0)


def cluster(policy: dict | None = None, installed: str = NEW, versions: tuple[str, ...] = (OLD, OLD, OLD),
            **changes: object) -> Cluster:
    members = [replace(running(f"n{i}"), version=v, installed_version=installed) for i, v in enumerate(versions, 1)]
    base = replace(snapshot(*members), writer="n1",
                   settings=ClusterSettings(updates=policy if policy is not None else {"policy": "minor"}))
    return replace(base, **changes)  # type: ignore[arg-type]


def test_a_minor_update_installed_everywhere_is_rolled_by_the_writers_agent() -> None:
    verdict = update_verdict(cluster(), "n1", NOON)
    assert verdict.start and verdict.target == NEW and "10.11.20 is installed on every host" in verdict.reason
    assert not update_verdict(cluster(), "n2", NOON).start  # only the writer's agent decides


@pytest.mark.parametrize("world, says", [
    (cluster({}), "automatic updates are off"),
    (cluster({"policy": "never"}), "automatic updates are off"),
    (cluster(writer=None), "the writer's agent decides"),
    (cluster(pause=Pause("ops", 1.0)), "paused"),
    (cluster(backup_holder="node2"), "a backup is running (node2); automatic updates wait"),
    (cluster(installed=OLD), "no newer release is installed"),
    (cluster(installed="11.4.5-MariaDB"), "11.4.5 is a major upgrade: that is galera-pilot upgrade"),
    (cluster(installed="10.11.18-MariaDB", versions=(OLD, OLD, "10.11.17-MariaDB")), "a downgrade is refused"),
    (cluster(roll=Roll("r1", ("n1", "n2", "n3")), roll_driver="ops:1"), "rolling restart r1 is recorded"),
    (cluster(roll=Roll("r2", ("n1",), kind="upgrade", automatic=True, halted="n2 did not come back")),
     "(halted)"),
    (cluster({"policy": "scheduled", "window": "03:00-05:00"}), "waiting for the window 03:00-05:00"),
])
def test_reasons_not_to_roll(world: Cluster, says: str) -> None:
    verdict = update_verdict(world, "n1", NOON)
    assert not verdict.start and not verdict.resume
    assert says in verdict.reason, verdict.reason


def test_every_member_must_be_synced_and_present() -> None:
    world = cluster()
    joining = replace(world, members={**world.members, "n3": replace(world.members["n3"], state="Joined")})
    assert "waits until every member is Synced (n3 not)" in update_verdict(joining, "n1", NOON).reason
    gone = replace(world, members={k: v for k, v in world.members.items() if k != "n2"})
    assert "(n2 not)" in update_verdict(gone, "n1", NOON).reason
    one_host = replace(world, members={**world.members, "n2": replace(world.members["n2"], installed_version=OLD)})
    assert "install the same packages on every host first" in update_verdict(one_host, "n1", NOON).reason


def test_an_aborted_update_is_not_started_again_for_that_version() -> None:
    aborted = HistoryEvent(1.0, "galera-pilot", "roll", "aborted",
                           {"aborted": True, "automatic": True, "kind": "upgrade", "target": NEW})
    verdict = update_verdict(cluster(history=(aborted,)), "n1", NOON)
    assert not verdict.start and "was aborted by a person" in verdict.reason
    newer = replace(cluster(installed="10.11.21-MariaDB", history=(aborted,)))
    assert update_verdict(newer, "n1", NOON).start  # a later release is another update
    by_hand = HistoryEvent(1.0, "galera-pilot", "roll", "aborted", {"aborted": True, "automatic": False,
                                                                     "kind": "upgrade", "target": NEW})
    assert not update_verdict(cluster(history=(by_hand,)), "n1", NOON).start  # a person decided against it
    restart = HistoryEvent(1.0, "galera-pilot", "roll", "aborted", {"aborted": True, "kind": "restart", "target": ""})
    assert update_verdict(cluster(history=(restart,)), "n1", NOON).start


def test_a_snapshot_without_the_history_never_starts_an_update() -> None:
    """The agent's cycle reads the DCS without the history; the one question that needs it says so
    instead of answering, whatever the history holds."""
    aborted = HistoryEvent(1.0, "galera-pilot", "roll", "aborted",
                           {"aborted": True, "automatic": True, "kind": "upgrade", "target": NEW})
    for history in ((), (aborted,)):
        blind = replace(cluster(history=history), history=(), history_read=False)
        verdict = update_verdict(blind, "n1", NOON)
        assert verdict.needs_history and not verdict.start and not verdict.resume
    outside = replace(cluster({"policy": "scheduled", "window": "03:00-05:00"}), history_read=False)
    assert not update_verdict(outside, "n1", NOON).needs_history  # waiting for the window needs no history


def test_an_automatic_roll_whose_driver_died_is_resumed_not_restarted() -> None:
    roll = Roll("r3", ("n1", "n2", "n3"), kind="upgrade", target=NEW, automatic=True, done=("n2",))
    verdict = update_verdict(cluster(roll=roll), "n1", NOON)
    assert verdict.resume and not verdict.start and "driver is gone" in verdict.reason
    assert not update_verdict(cluster(roll=roll, roll_driver="n1's agent"), "n1", NOON).resume
    by_hand = replace(roll, automatic=False)
    assert not update_verdict(cluster(roll=by_hand), "n1", NOON).resume  # a person's roll: a person resumes
    assert "the writer's agent resumes it" in describe(roll, driven=False)
    assert describe(roll, driven=True).startswith(f"automatic update to {NEW} r3")


def test_scheduled_updates_start_inside_the_window_only() -> None:
    world = cluster({"policy": "scheduled", "window": "11:30-12:30"})
    assert update_verdict(world, "n1", NOON).start
    assert not update_verdict(world, "n1", datetime(2026, 12, 1, 12, 30)).start


@pytest.mark.parametrize("window, inside, outside", [
    ("03:00-05:00", [time(3, 0), time(4, 59)], [time(2, 59), time(5, 0), time(12, 0)]),
    ("23:00-01:00", [time(23, 0), time(0, 30)], [time(1, 0), time(22, 59)]),
])
def test_windows(window: str, inside: list[time], outside: list[time]) -> None:
    assert all(in_window(window, t) for t in inside)
    assert not any(in_window(window, t) for t in outside)


@given(st.times(), st.integers(0, 23), st.integers(0, 23))
def test_a_window_and_its_complement_cover_the_day_once(now: time, start: int, end: int) -> None:
    if start == end:
        return
    window, rest = f"{start:02d}:00-{end:02d}:00", f"{end:02d}:00-{start:02d}:00"
    assert in_window(window, now) != in_window(rest, now)


def test_the_policy_is_checked_before_it_is_stored() -> None:
    def said(updates: dict) -> list[str]:
        return problems(ClusterSettings(updates=updates))

    assert said({"policy": "minor"}) == [] and said({"policy": "scheduled", "window": "03:00-05:00"}) == []
    assert any("updates.policy" in p for p in said({"policy": "always"}))
    assert any("needs a window" in p for p in said({"policy": "scheduled"}))
    assert any("updates.window" in p for p in said({"policy": "scheduled", "window": "3-5"}))
    assert any("updates.when" in p for p in said({"when": "now"}))
    assert UpdatePolicy.of({"policy": "bogus"}).policy == "never"  # a bad stored record rolls nothing


def test_an_automatic_roll_is_aborted_at_once_and_its_abort_recorded_first(tmp_path: Path) -> None:
    """Its driver is a thread in an agent (nobody can Ctrl-C it): abort does not wait for its lease, and the
    history says `aborted` before the roll disappears, so no agent starts that release again."""
    dcs = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    roll = Roll("r9", ("n1", "n2"), kind="upgrade", target=NEW, automatic=True, started_at=1.0)
    assert create_roll(dcs, roll) and hold_driver(dcs, "n1's agent", 10.0)
    assert request_restart(dcs, RestartRequest("n1", "r9", 1.0, REQUESTED))
    said = RollDriver(dcs, lambda line: None).abort()
    assert "aborted" in said
    after = dcs.snapshot()
    assert after.roll is None and not after.restarts
    event = next(e for e in after.history if e.action == "roll")
    assert event.inputs["aborted"] and event.inputs["automatic"] and event.inputs["target"] == NEW
    assert "was aborted by a person" in update_verdict(
        replace(cluster(), history=after.history), "n1", NOON).reason


def test_a_request_left_by_an_aborted_roll_restarts_nothing() -> None:
    from unit_helpers import make_config

    from galera_pilot.agent.restarts import RollingRestarts
    agent = RollingRestarts.__new__(RollingRestarts)
    agent.config = make_config(name="n1")
    request = RestartRequest("n1", "r9", 1.0, REQUESTED)
    live = Cluster(roll=Roll("r9", ("n1",)), restarts={"n1": request})
    assert agent.due(live, pid=123)
    assert not agent.due(replace(live, roll=None), pid=123)  # aborted: the request is a leftover
    assert not agent.due(replace(live, roll=Roll("r10", ("n1",))), pid=123)  # another roll's
