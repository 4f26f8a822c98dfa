"""The agents' backup schedule: whose turn it is (backup/scheduler.py, pure), and the adapter that asks
(agent/backup_schedule.py) against a real SQLite DCS and a directory repository: two agents due at
the same moment ask once, a missed run is caught up once, a failure backs off, retention follows."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.agent.backup_schedule import BackupSchedule
from galera_pilot.agent.backups import BackupKeeper
from galera_pilot.backup.catalog import BackupSet
from galera_pilot.backup.lineage import LINEAGE_FILE
from galera_pilot.backup.manifest import Manifest
from galera_pilot.backup.repository import LocalRepository
from galera_pilot.backup.request import DONE, FAILED, REQUESTED, RUNNING, BackupRequest
from galera_pilot.backup.schedule import HOUR, Schedule
from galera_pilot.backup.scheduler import STALE_REQUEST, Look, scheduled_turn
from galera_pilot.cluster import Cluster, Member
from galera_pilot.config import NodeConfig
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.backup import ask_backup, current_request, hold_backup_lock, update_request
from galera_pilot.dcs.sqlite import SQLiteDCS
from tests.waiting import wait_for

NOW = 1_800_000_000.0
DAILY = Schedule(full_every=24 * HOUR, incremental_every=4 * HOUR)


def full(set_id: str, finished: float, status: str = "complete") -> BackupSet:
    return BackupSet(set_id, "full", finished - 60, finished, status)  # type: ignore[arg-type]


def look(sets: tuple[BackupSet, ...] = (), request: BackupRequest | None = None, holder: str | None = None,
         chosen: str | None = "node2", me: str = "node2", paused: bool = False, now: float = NOW) -> Look:
    return Look(me, sets, request, holder, chosen, f"{chosen}: Synced and not the writer", paused, now, 30.0)


def test_the_chosen_member_asks_for_the_first_full_backup_and_the_others_do_not() -> None:
    turn = scheduled_turn(DAILY, look())
    assert turn.due is not None and turn.due.kind == "full" and "this node takes it" in turn.reason
    other = scheduled_turn(DAILY, look(me="node3"))
    assert other.due is None and "node2 takes it" in other.reason


def test_nothing_is_asked_without_a_schedule_while_paused_or_before_it_is_due() -> None:
    assert scheduled_turn(Schedule(full_every=0), look()).due is None
    assert "paused" in scheduled_turn(DAILY, look(paused=True)).reason
    recent = (full("f1", NOW - HOUR),)
    turn = scheduled_turn(DAILY, look(recent))
    assert turn.due is None and "incremental backup is due in 180 min" in turn.reason
    assert scheduled_turn(DAILY, look(recent, now=NOW + 3 * HOUR)).due is not None


def test_a_missed_run_is_caught_up_once() -> None:
    old = (full("f1", NOW - 72 * HOUR),)  # three days without a backup (the cluster was down)
    turn = scheduled_turn(DAILY, look(old))
    assert turn.due is not None and turn.due.kind == "full"
    taken = (*old, full("f2", NOW + 600))
    assert scheduled_turn(DAILY, look(taken, now=NOW + 700)).due is None  # one backup, not three


def test_a_request_in_flight_or_a_held_lock_waits() -> None:
    asked = BackupRequest("x", "full", "node3", "galera-pilot backup create", at=NOW - 5)
    assert "is requested on node3" in scheduled_turn(DAILY, look(request=asked)).reason
    running = asked.moved(RUNNING)
    assert scheduled_turn(DAILY, look(request=running, holder="node3")).due is None
    assert "lock is held by node3" in scheduled_turn(DAILY, look(holder="node3")).reason


def test_a_request_never_taken_or_a_running_one_without_its_lock_does_not_block_for_ever() -> None:
    never_taken = BackupRequest("x", "full", "node3", "schedule (node3)", at=NOW - STALE_REQUEST - 1)
    assert scheduled_turn(DAILY, look(request=never_taken)).due is not None
    lost = never_taken.moved(RUNNING)  # its node died: the lock lapsed
    assert scheduled_turn(DAILY, look(request=lost)).due is not None


def test_a_set_left_running_by_a_dead_agent_is_named_stale_and_counts_as_a_failure() -> None:
    dead = BackupSet("d1", "full", NOW - 120, None, "running")  # its lock expired 90 s ago
    turn = scheduled_turn(DAILY, look((dead,)))
    assert turn.stale == ("d1",)
    assert turn.due is None and "due in 13 min" in turn.reason  # backed off from its start, as a failure
    later = scheduled_turn(DAILY, look((dead,), now=NOW + 15 * 60))
    assert later.due is not None and later.stale == ("d1",)
    assert scheduled_turn(DAILY, look((dead,), me="node3")).stale == ()  # only the chosen member marks it
    young = BackupSet("y1", "full", NOW - 20, None, "running")  # its lock may just have moved: not stale
    assert scheduled_turn(DAILY, look((young,))).stale == ()
    assert scheduled_turn(DAILY, look((young,))).due is None


def test_a_failed_scheduled_backup_is_retried_after_the_back_off_not_every_cycle() -> None:
    refused = BackupRequest("x", "full", "node2", "schedule (node2)", at=NOW - 10, phase=FAILED,
                            detail="node2 is not Synced now", updated_at=NOW - 10)
    turn = scheduled_turn(DAILY, look(request=refused))
    assert turn.due is None and "not Synced now" in turn.reason and "tried again in 15 min" in turn.reason
    assert scheduled_turn(DAILY, look(request=refused, now=NOW + 15 * 60)).due is not None
    by_hand = replace(refused, by="galera-pilot backup create (root)")
    assert scheduled_turn(DAILY, look(request=by_hand)).due is not None  # a person's failure holds nothing


def test_no_member_to_take_it_is_said() -> None:
    turn = scheduled_turn(DAILY, look(chosen=None))
    assert turn.due is None and "no member can take it" in turn.reason


@given(st.lists(st.sampled_from(["node1", "node2", "node3"]), min_size=1, max_size=3, unique=True),
       st.sampled_from(["node1", "node2", "node3", None]), st.floats(0, 100 * HOUR))
def test_at_most_one_member_asks_for_one_shared_view(members: list[str], chosen: str | None, age: float) -> None:
    sets = (full("f1", NOW - age),)
    askers = [m for m in members if scheduled_turn(DAILY, look(sets, chosen=chosen, me=m)).due is not None]
    assert askers in ([], [chosen])


# ---- the adapter, on a real SQLite DCS and a directory repository -------------------------------------

def node(tmp_path: Path, name: str, full_every_hours: float = 24.0) -> NodeConfig:
    return NodeConfig.model_validate({
        "name": name, "address": "127.0.0.251", "dcs": f"sqlite://{tmp_path}/dcs.sqlite",
        "base_dir": str(tmp_path / name), "credentials_file": str(tmp_path / "credentials.yaml"),
        "backup": {"repository": str(tmp_path / "repo"), "full_every_hours": full_every_hours,
                   "keep_full": 1, "window_days": 0}})


def synced(*names: str, writer: str = "node1") -> Cluster:
    members = {n: Member(n, "127.0.0.1", running=True, state="Synced", cluster_status="Primary") for n in names}
    return Cluster(members=members, writer=writer)


def test_two_agents_due_at_once_with_views_that_disagree_ask_once(tmp_path: Path) -> None:
    store = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    history: list[str] = []
    agents = {n: BackupSchedule(node(tmp_path, n), store, lambda kind, *_: history.append(kind), 30.0)
              for n in ("node2", "node3")}
    views = {"node2": synced("node1", "node2"),  # node2 has not seen node3 Synced yet: it picks itself
             "node3": synced("node1", "node3")}  # and node3 has not seen node2: so does it
    start = threading.Barrier(2)
    asked: dict[str, object] = {}

    def run(name: str) -> None:
        start.wait()
        asked[name] = agents[name].look_now(views[name])

    threads = [threading.Thread(target=run, args=(n,)) for n in agents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [n for n, result in asked.items() if result is not None]
    assert len(winners) == 1, asked
    request = current_request(store)
    assert request is not None and request.node == winners[0] and request.phase == REQUESTED
    assert request.by == f"schedule ({winners[0]})" and request.kind == "full"
    loser = next(n for n in agents if n not in winners)
    assert agents[loser].note == "another agent asked for a backup at the same moment"
    assert history == ["backup-scheduled"]


def test_the_adapter_looks_in_a_thread_at_most_every_ten_seconds_and_marks_a_dead_agents_set(
        tmp_path: Path) -> None:
    store = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    repository = LocalRepository(tmp_path / "repo", "galera")
    repository.begin(Manifest("20200101-000000F", "full", "galera", "", started_at=1.0, node="node3"))
    woken = threading.Event()
    schedule = BackupSchedule(node(tmp_path, "node2"), store, lambda *_: None, 30.0, woken.set)
    schedule.look(synced("node1", "node2"))  # returns at once: the listing runs in the schedule's thread
    assert woken.wait(30), schedule.note  # the request was asked: the agent's cycle is woken to take it
    asked = current_request(store)
    assert asked is not None and asked.kind == "full" and asked.node == "node2"
    assert repository.manifest("20200101-000000F").status == "failed"  # failed long ago: no back-off left
    woken.clear()
    schedule.look(synced("node1", "node2"))  # within ten seconds: no second look
    assert not woken.wait(0.5) and schedule._worker is not None and not schedule._worker.is_alive()
    view = replace(synced("node1", "node2"), backup_request=asked)
    assert schedule.look_now(view) is None and "is requested on node2" in schedule.note


def test_a_listing_older_than_the_request_never_asks_a_second_backup(tmp_path: Path) -> None:
    """The snapshot the look started from showed no request; another agent's backup was asked (and may
    have finished) before the look asks: the DCS's request is not the one the look saw, so it asks nothing."""
    store = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    schedule = BackupSchedule(node(tmp_path, "node2"), store, lambda *_: None, 30.0)
    before = synced("node1", "node2")  # no request yet
    other = BackupRequest("20261203-000000F", "full", "node3", "schedule (node3)", at=time.time())
    assert ask_backup(store, other)
    assert update_request(store, other.moved(DONE))
    assert schedule.look_now(before) is None
    assert schedule.note == "another agent asked for a backup at the same moment"
    request = current_request(store)
    assert request is not None and request.id == other.id


def test_retention_runs_after_a_backup_only_with_a_schedule(tmp_path: Path) -> None:
    store = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    repository = LocalRepository(tmp_path / "repo", "galera")
    now = time.time()
    for n, at in enumerate((now - 3 * 86400, now - 2 * 86400, now - 86400)):
        manifest = repository.begin(Manifest(f"2026010{n}-000000F", "full", "galera", "", started_at=at))
        repository.finish(manifest, "complete", at + 60)
    BackupSchedule(node(tmp_path, "node2", full_every_hours=0), store, lambda *_: None, 30.0).expire(repository)
    assert len(repository.manifests()) == 3  # no schedule: a person's backups are never deleted
    BackupSchedule(node(tmp_path, "node2"), store, lambda *_: None, 30.0).expire(repository)
    assert [m.id for m in repository.manifests()] == ["20260102-000000F"]  # keep_full 1, no window


def test_ask_backup_replaces_a_request_never_taken_only_when_told(tmp_path: Path) -> None:
    store = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    old = BackupRequest("a", "full", "node9", "galera-pilot backup create", at=NOW)
    assert ask_backup(store, old)
    new = BackupRequest("b", "full", "node2", "schedule (node2)", at=NOW + STALE_REQUEST + 1)
    assert not ask_backup(store, new)  # a person's request in flight is never replaced by default
    assert not ask_backup(store, replace(new, at=NOW + 10), stale_after=STALE_REQUEST)
    assert ask_backup(store, new, stale_after=STALE_REQUEST)
    assert hold_backup_lock(store, "node2", "b", 30.0)
    store_request = current_request(store)
    assert store_request is not None and store_request.id == "b"
    running = store_request.moved(RUNNING)
    assert update_request(store, running)
    assert not ask_backup(store, replace(new, id="c", at=NOW + 10 * STALE_REQUEST), stale_after=STALE_REQUEST)
    assert update_request(store, running.moved(DONE))
    assert ask_backup(store, replace(new, id="c"))


def test_the_metrics_report_the_newest_complete_set_per_kind_and_inf_for_none(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from galera_pilot.agent.backup_schedule import newest_of
    from galera_pilot.agent.binlog_archiver import ArchiveState
    from galera_pilot.agent.metrics import backup_metrics

    repository = LocalRepository(tmp_path / "repo", "galera")
    for set_id, kind, at, status in (("a", "full", 100.0, "complete"), ("b", "full", 200.0, "failed"),
                                     ("c", "incremental", 300.0, "complete")):
        manifest = repository.begin(Manifest(set_id, kind, "galera", "", started_at=at))  # type: ignore[arg-type]
        manifest = repository.store(manifest, "data", iter([b"x" * int(at)]))
        repository.finish(manifest, status, at + 10)
    newest = newest_of(repository.manifests())
    assert newest.finished_at == {"full": 110.0, "incremental": 310.0}  # the failed one is not a success
    assert newest.size_bytes == {"full": 100, "incremental": 300}
    schedule = BackupSchedule(node(tmp_path, "node2", full_every_hours=24), SQLiteDCS(tmp_path / "dcs", "g"),
                              lambda *_: None, 30.0)
    schedule.newest = newest
    ha = SimpleNamespace(config=SimpleNamespace(name="node2"),
                         backups=SimpleNamespace(running=False, schedule=schedule,
                                                 archiver=SimpleNamespace(state=ArchiveState())))

    class One:
        def collect(self):  # type: ignore[no-untyped-def]
            return backup_metrics(ha)  # type: ignore[arg-type]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(One())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    assert 'galera_pilot_backup_last_success_age_seconds{kind="logical",member="node2"} +Inf' in text
    assert 'galera_pilot_backup_last_success_bytes{kind="incremental",member="node2"} 300.0' in text
    assert 'galera_pilot_backup_schedule_interval_seconds{member="node2"} 86400.0' in text
    assert 'galera_pilot_backup_repository_error{member="node2"} 0.0' in text
    assert 'galera_pilot_backup_running{member="node2"} 0.0' in text


def test_an_incremental_continues_on_its_chain_node_or_a_new_chain_starts_where_backups_go_now() -> None:
    chain = (replace(full("f1", NOW - HOUR), node="node2"),)
    later = NOW + 3 * HOUR  # the incremental is due
    same = scheduled_turn(DAILY, look(chain, now=later))
    assert same.due is not None and same.due.kind == "incremental" and same.due.parent == "f1"
    moved = scheduled_turn(DAILY, look(chain, chosen="node3", me="node3", now=later))  # node2 became the writer
    assert moved.due is not None and moved.due.kind == "full" and moved.due.parent is None
    assert "its chain was taken on node2 and node3 takes backups now" in moved.reason
    assert scheduled_turn(DAILY, look(chain, chosen="node3", me="node2", now=later)).due is None


def schedule_with_chain(tmp_path: Path, lineage: str, node_name: str = "node2") -> BackupSchedule:
    """node2's adapter, its repository holding one complete full backup taken on `node_name`."""
    store = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    config = node(tmp_path, "node2")
    config = config.model_copy(update={"backup": config.backup.model_copy(update={"incremental_every_hours": 1.0})})
    repository = LocalRepository(tmp_path / "repo", "galera")
    begun = repository.begin(Manifest("20200101-000000F", "full", "galera", "", started_at=time.time() - 7200,
                                      node=node_name, to_lsn=5000, lineage=lineage))
    repository.finish(begun, "complete", time.time() - 7100)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return BackupSchedule(config, store, lambda *_: None, 30.0)


def test_the_adapter_takes_the_incremental_only_on_the_datadir_its_parent_came_from(tmp_path: Path) -> None:
    schedule = schedule_with_chain(tmp_path, "node2:aaaa")
    (schedule.config.data_dir / LINEAGE_FILE).write_text("node2:aaaa\n")
    asked = schedule.look_now(synced("node1", "node2"))
    assert asked is not None and asked[0].kind == "incremental" and asked[0].parent == "20200101-000000F"
    assert asked[0].from_lsn == 5000


def test_a_replaced_datadir_or_an_unrecorded_lineage_starts_a_new_chain(tmp_path: Path) -> None:
    for case, (lineage, on_disk, taken_on) in {
            "the SST dropped the file": ("node2:aaaa", None, "node2"),
            "a copy of another node's datadir": ("node2:aaaa", "node1:aaaa", "node2"),
            "a restore gave it another lineage": ("node2:aaaa", "node2:bbbb", "node2"),
            "an older set": ("", "node2:aaaa", "node2"),
            "taken on another node": ("node1:aaaa", "node1:aaaa", "node1")}.items():
        where = tmp_path / case.replace(" ", "-").replace("'", "")
        where.mkdir()
        schedule = schedule_with_chain(where, lineage, taken_on)
        if on_disk is not None:
            (schedule.config.data_dir / LINEAGE_FILE).write_text(on_disk + "\n")
        asked = schedule.look_now(synced("node1", "node2"))
        assert asked is not None, (case, schedule.note)
        request, why = asked
        assert request.kind == "full" and request.parent is None and request.from_lsn is None, case
        assert "new chain" in why and "node2" in why, (case, why)


def left_running(tmp_path: Path, status: str) -> tuple[BackupKeeper, SQLiteDCS, LocalRepository]:
    """A request marked running for node2, whose agent restarted: its set `status` in the repository."""
    store = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    repository = LocalRepository(tmp_path / "repo", "galera")
    begun = repository.begin(Manifest("20200101-000000F", "full", "galera", "", started_at=time.time(), node="node2"))
    if status == "complete":
        repository.finish(begun, "complete", time.time())
    request = BackupRequest("20200101-000000F", "full", "node2", "schedule (node2)", at=time.time())
    assert ask_backup(store, request) and update_request(store, request.moved(RUNNING))
    keeper = BackupKeeper(node(tmp_path, "node2", full_every_hours=0), store, Credentials.generate(),
                          lambda *_: None)
    return keeper, store, repository


def test_a_request_left_running_is_done_when_its_set_completed_and_failed_when_not(tmp_path: Path) -> None:
    """An agent stopped between the repository and the DCS: the finished backup is not reported failed
    (a failed scheduled request holds the schedule back for retry_after)."""
    for status, phase in (("complete", DONE), ("running", FAILED)):
        where = tmp_path / status
        where.mkdir()
        keeper, store, repository = left_running(where, status)
        said = keeper.cycle(store.snapshot(with_history=False), synced=True)
        assert said is not None and "runs here no more" in said
        assert keeper.cycle(store.snapshot(with_history=False), synced=True) is None  # settled once, not per cycle
        settled = wait_for(lambda dcs=store: (found := current_request(dcs)) and found.phase != RUNNING and found,
                           10, "the request to be settled")
        assert settled.phase == phase, settled
        assert repository.manifest("20200101-000000F").status == ("complete" if status == "complete" else "failed")
