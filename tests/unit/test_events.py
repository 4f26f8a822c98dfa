"""Events (events/): which callbacks a change calls for, Galera's notification script and its queue, and
the callback runner (real processes: sh, sleep, a script that fails)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.config import parse_config
from galera_pilot.errors import ConfigError
from galera_pilot.events import notify
from galera_pilot.events.callbacks import ENV_VARIABLE, Call, CallbackRunner
from galera_pilot.events.settings import CallbackSettings
from galera_pilot.events.transitions import Observed, transitions
from tests.waiting import wait_for

UUID = "6b6f3f5e-2c1a-11ef-9a55-1b2c3d4e5f60"


# ---- transitions (pure) -------------------------------------------------------------------------------
def actions(before: Observed | None, after: Observed, restarting: bool = False) -> list[str]:
    return [event.action for event in transitions(before, after, restarting)]


RUNNING = Observed(True, 100, "Synced", "reader", ("Primary", 3))


def test_first_look_at_a_running_server_is_a_start() -> None:
    assert actions(None, RUNNING) == ["on_start"]
    assert actions(None, Observed(False)) == []


def test_start_stop_and_a_restart_between_two_looks() -> None:
    stopped = Observed(False)
    assert actions(stopped, RUNNING) == ["on_start"]
    assert actions(RUNNING, stopped) == ["on_stop"]
    replaced = Observed(True, 200, "Synced", "reader", ("Primary", 3))
    assert actions(RUNNING, replaced) == ["on_stop", "on_start"]


def test_a_rolling_restart_is_one_on_restart_once_running_again() -> None:
    stopped = Observed(False)
    assert actions(RUNNING, stopped, restarting=True) == []
    assert actions(stopped, RUNNING, restarting=True) == ["on_restart"]
    assert actions(RUNNING, Observed(True, 200, "Synced", "reader", ("Primary", 3)), restarting=True) == ["on_restart"]


def test_state_view_and_role_changes() -> None:
    donor = Observed(True, 100, "Donor/Desynced", "reader", ("Primary", 3))
    assert [(e.action, e.details) for e in transitions(RUNNING, donor, False)] == [
        ("on_state_change", {"from": "Synced", "to": "Donor/Desynced"})]
    smaller = Observed(True, 100, "Synced", "reader", ("Primary", 2))
    assert actions(RUNNING, smaller) == ["on_view_change"]
    writer = Observed(True, 100, "Synced", "writer", ("Primary", 3))
    assert [(e.action, e.details) for e in transitions(RUNNING, writer, False)] == [
        ("on_role_change", {"from": "reader", "to": "writer"})]


observations = st.builds(Observed, st.booleans(), st.sampled_from([None, 1, 2]),
                         st.sampled_from(["Synced", "Donor/Desynced", "Joined", "stopped"]),
                         st.sampled_from(["reader", "writer"]), st.sampled_from([("Primary", 3), ("Primary", 2),
                                                                                  ("non-Primary", 1)]))


@given(st.one_of(st.none(), observations), observations, st.booleans())
def test_every_event_is_explained_by_the_change(before: Observed | None, after: Observed, restarting: bool) -> None:
    events = actions(before, after, restarting)
    assert len(events) == len(set(events)), "each callback at most once per change"
    if before is None:
        assert events == (["on_start"] if after.running else [])
        return
    if before == after:
        assert events == []
    if "on_role_change" in events:
        assert before.role != after.role
    if "on_start" in events or "on_restart" in events:
        assert after.running and ("on_start" in events) != ("on_restart" in events)
        assert ("on_restart" in events) == restarting
    if "on_stop" in events:
        assert before.running and not restarting
    if not after.running:
        assert not {"on_state_change", "on_view_change", "on_start", "on_restart"} & set(events)


# ---- the notification script and its queue -------------------------------------------------------------
def test_the_script_queues_hostile_arguments_as_data(tmp_path: Path) -> None:
    """A member name with a shell command in it: queued verbatim, never run; the script exits 0."""
    script = notify.install(tmp_path, tmp_path, None)
    marker = tmp_path / "pwned"
    hostile = f"n1; touch {marker} $(touch {marker}) `touch {marker}`"
    members = f"{UUID}/node1/127.0.0.1:3306,{UUID}/{hostile}/10.0.0.2:3306"
    result = subprocess.run([str(script), "--status", "synced", "--uuid", UUID, "--primary", "yes",
                             "--members", members, "--index", "0"], capture_output=True, timeout=10)
    assert result.returncode == 0 and result.stdout == b"" and not marker.exists()
    [parsed] = notify.drain(tmp_path / notify.EVENTS)
    assert isinstance(parsed, notify.Notification)
    assert parsed.status == "synced" and parsed.primary is True and parsed.index == 0
    assert parsed.members is not None and [m.name for m in parsed.members] == ["node1", hostile]
    assert "primary view of 2 (node1, n1; touch" in parsed.sentence()
    assert notify.drain(tmp_path / notify.EVENTS) == [], "drained: the files are gone"


def test_the_script_never_fails_galera(tmp_path: Path) -> None:
    """The queue folder gone: the script still exits 0 (a failing notify command would stall mariadbd's
    state change), and the agent finds nothing."""
    script = notify.install(tmp_path, tmp_path, None)
    (tmp_path / notify.EVENTS).rmdir()
    assert subprocess.run([str(script), "--status", "joined"], capture_output=True, timeout=10).returncode == 0
    assert notify.drain(tmp_path / notify.EVENTS) == []


def test_queued_notifications_come_out_in_order(tmp_path: Path) -> None:
    script = notify.install(tmp_path, tmp_path, None)
    for status in ("joiner", "joined", "synced"):
        subprocess.run([str(script), "--status", status], check=True, timeout=10)
    assert [n.status for n in notify.drain(tmp_path / notify.EVENTS) if isinstance(n, notify.Notification)] == [
        "joiner", "joined", "synced"]


@pytest.mark.parametrize("args", [
    ["--status"], ["--status", "Hacked"], ["--uuid", "not-a-uuid"], ["--primary", "maybe"], ["--index", "x1"],
    ["--members", "x", "--members", "y"], ["--evil", "1"],
])
def test_malformed_notifications_are_refused(args: list[str]) -> None:
    with pytest.raises(notify.BadNotification):
        notify.parse(args)


def test_a_view_notification_without_status() -> None:
    parsed = notify.parse(["--uuid", UUID, "--primary", "no", "--members", f"{UUID}/a/x:1", "--index", "0"])
    assert parsed.status is None and parsed.primary is False
    assert parsed.sentence() == "Galera says: non-primary view of 1 (a)"


# ---- callbacks ---------------------------------------------------------------------------------------------
def runner_with(tmp_path: Path, timeout: float = 30.0, **commands: str) -> CallbackRunner:
    settings = CallbackSettings.model_validate({"timeout": timeout, **commands})
    return CallbackRunner(lambda: settings)


def recorder(tmp_path: Path, name: str = "calls") -> str:
    """A callback that appends its arguments and the event variable to a file."""
    script = tmp_path / f"{name}.py"
    script.write_text("import json, os, sys\n"
                      f"with open({str(tmp_path / name)!r}, 'a') as out:\n"
                      f"    out.write(json.dumps([sys.argv[1:], os.environ.get({ENV_VARIABLE!r}), sorted(os.environ)])"
                      " + '\\n')\n")
    return f"{sys.executable} {script}"


def test_a_callback_gets_action_role_cluster_and_the_event_and_no_secrets(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GALERA_PILOT_DCS", "etcd://user:secret@h:2379")
    runner = runner_with(tmp_path, on_role_change=recorder(tmp_path))
    runner.submit(Call("on_role_change", "writer", "prod", {"member": "node1", "from": "reader", "to": "writer"}))
    runner.submit(Call("on_start", "writer", "prod", {}))  # no command for it: nothing runs
    runner.stop(10)
    [line] = (tmp_path / "calls").read_text().splitlines()
    argv, event, environment = json.loads(line)
    assert argv == ["on_role_change", "writer", "prod"]
    assert json.loads(event) == {"member": "node1", "from": "reader", "to": "writer"}
    assert "GALERA_PILOT_DCS" not in environment and set(environment) <= {"PATH", "LANG", "LC_ALL", "TZ",
                                                                          ENV_VARIABLE, "LC_CTYPE"}
    assert runner.outcomes() == {("on_role_change", "ok"): 1}


def test_a_slow_callback_is_killed_and_never_blocks_submit(tmp_path: Path) -> None:
    """The callback's shell forks its `sleep 60` (dash does): the whole process group is killed, the
    child too. Its own pid is checked, not any `sleep 60` on the machine."""
    pid_file = tmp_path / "sleep.pid"
    runner = runner_with(tmp_path, timeout=1.0, on_stop=f"sh -c 'sleep 60 & echo $! > {pid_file}; wait'",
                         on_start=recorder(tmp_path))
    started = time.monotonic()
    runner.submit(Call("on_stop", "reader", "c", {}))
    runner.submit(Call("on_start", "reader", "c", {}))
    assert time.monotonic() - started < 0.5, "submit only queues"
    wait_for(lambda: (tmp_path / "calls").exists(), 30, "the next callback to run after the slow one is killed")
    assert runner.outcomes()[("on_stop", "timeout")] == 1
    child = int(pid_file.read_text())
    # SIGKILL is delivered asynchronously; an orphan killed is at most a zombie until init reaps it.
    def dead() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(dead, 5, "the callback's child to die with its group")
    runner.stop(5)


def test_a_failing_or_missing_command_is_counted_and_the_next_runs(tmp_path: Path) -> None:
    runner = runner_with(tmp_path, on_stop="sh -c 'echo broken >&2; exit 1'", on_reload="/nonexistent/cmd",
                         on_start=recorder(tmp_path))
    for action in ("on_stop", "on_reload", "on_start"):
        runner.submit(Call(action, "reader", "c", {}))
    runner.stop(10)
    assert runner.outcomes() == {("on_stop", "failed"): 1, ("on_reload", "failed"): 1, ("on_start", "ok"): 1}


def test_callbacks_run_one_at_a_time_in_order(tmp_path: Path) -> None:
    runner = runner_with(tmp_path, on_state_change=recorder(tmp_path))
    for index in range(5):
        runner.submit(Call("on_state_change", "reader", f"c{index}", {}))
    runner.stop(20)
    clusters = [json.loads(line)[0][2] for line in (tmp_path / "calls").read_text().splitlines()]
    assert clusters == [f"c{i}" for i in range(5)]


def test_callback_configuration(tmp_path: Path) -> None:
    base = {"name": "n1", "dcs": f"sqlite://{tmp_path}/d.sqlite", "base_dir": str(tmp_path), "address": "127.0.0.9",
            "credentials_file": str(tmp_path / "credentials.yaml")}
    config = parse_config(base | {"callbacks": {"on_start": "/usr/local/bin/hook --flag 'a b'",
                                                "on_stop": ["/bin/echo", "x"]}})
    assert config.callbacks.on_start == ["/usr/local/bin/hook", "--flag", "a b"]
    assert config.callbacks.on_stop == ["/bin/echo", "x"] and config.callbacks.on_reload is None
    for bad, field in (({"on_start": ""}, "on_start"), ({"on_typo": "x"}, "on_typo"), ({"timeout": 0}, "timeout"),
                       ({"on_stop": "'unclosed"}, "on_stop")):
        with pytest.raises(ConfigError, match=field):
            parse_config(base | {"callbacks": bad})
    assert os.access(notify.install(tmp_path, tmp_path, None), os.X_OK)


def test_the_queue_never_follows_what_mariadbds_user_put_there(tmp_path: Path) -> None:
    """mariadbd's user owns run/events: a link or a FIFO in it is removed unread, and the folder swapped
    for a link to another folder is not read at all (nothing there is removed)."""
    run = tmp_path / "run"
    run.mkdir()
    notify.install(tmp_path, run, None)
    events = run / notify.EVENTS
    precious = tmp_path / "precious"
    precious.write_text("--status\0synced\0")
    (events / "1").symlink_to(precious)
    os.mkfifo(events / "2")
    assert notify.drain(events) == [] and precious.exists() and not list(events.iterdir())
    other = tmp_path / "other"
    other.mkdir()
    (other / "1").write_text("--status\0synced\0")
    events.rmdir()
    events.symlink_to(other)
    assert notify.drain(events) == [] and (other / "1").exists()
    with pytest.raises(Exception, match="not a folder"):
        notify.install(tmp_path, run, None)


def test_no_notify_command_without_strict_tls() -> None:
    """mariadbd runs the command through sh -c with other nodes' names in it: only where every node holds
    a certificate of the node CA."""
    from unit_helpers import make_config

    from galera_pilot.mariadb.mycnf import notifications_on

    assert notifications_on(make_config())
    plain = make_config(tls={"enabled": False})
    assert not notifications_on(plain)
    moving = make_config(tls={"enabled": True, "migrating": "galera"})
    assert not notifications_on(moving)
