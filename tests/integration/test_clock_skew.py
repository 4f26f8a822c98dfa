"""Hosts whose clocks disagree (issue 19): one agent's wall clock 30 s ahead or behind, on etcd.

An agent is restarted under libfaketime (`LD_PRELOAD` + `FAKETIME=+30s`, what Debian's `faketime -f
"+30s"` sets up) and adopts its running mariadbd. FAKETIME_DONT_FAKE_MONOTONIC=1 models a broken NTP:
NTP steps the wall clock, never the monotonic one. The child processes of that agent (mariadbd when it
restarts it, its SST scripts) inherit the skew on purpose: a host whose clock is off has it off for
every process, and Galera's own timers run on the monotonic clock. Without DONT_FAKE_MONOTONIC,
libfaketime also moves the monotonic clock and Python's timed waits then sleep 30 s too long: the agent
stalls, which is what the issue's reporter saw; one test keeps that case (a stalled target).

This module runs on etcd (its own single-member etcd, like test_dcs_failure.py), whatever DCS the rest
of the suite uses, and shares one cluster between its tests; each test leaves every agent running
without skew. The last test runs a second cluster on the SQLite store.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from galera_pilot.cluster import Switchover
from galera_pilot.config import NodeConfig
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.tls.http import api
from tests.unit.dcs_backends import EtcdProcess, etcd_process
from tests.waiting import wait_for

from .conftest import cli, destroy, http_json, mariadbd_pid, members, new_cluster_path
from .routing_helpers import WriterPoller

BASE = "127.0.0.30"
SQLITE_BASE = "127.0.0.34"
NODES = ("node1", "node2", "node3")
LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
# libfaketime 0.9.10 with FAKETIME_DONT_FAKE_MONOTONIC fails every clock_nanosleep(CLOCK_MONOTONIC,
# TIMER_ABSTIME), i.e. every time.sleep() of Python 3.11, with EINVAL (subprocess.run's wait among them:
# the agent's --wsrep-recover then "failed"); timed waits on locks and events work. A harness bug, not the
# agent's: the skewed agent's time.sleep waits on an Event instead, on the same (real) monotonic clock.
SLEEP_SHIM = ("import runpy, sys, threading, time\n"
              "time.sleep = lambda seconds: threading.Event().wait(seconds) and None\n"
              "sys.argv[0] = 'galera_pilot'\n"
              "runpy.run_module('galera_pilot', run_name='__main__', alter_sys=True)\n")
SKEWS = [(role, offset) for role in ("writer", "target", "bystander") for offset in ("+30s", "-30s")]
# s: a switchover takes well under a second here (its timeout is 30 s), but a writer that asked its peers
# for failsafe promises in the last 3.6 s (a restarted agent whose first renewals were slow) hands over
# only once they have run out: seen 3.45 s on a loaded machine.
SWITCHOVER_BOUND = 8.0
FAILOVER_BOUND = 7.5  # s: lease (3 s, etcd: up to 3.5 s) + a stale record (3 s) + ticks; 10 s+ before the fix


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdProcess]:
    with etcd_process(os.environ.get("GP_TEST_ETCD_HOST", "127.0.0.1")) as process:
        yield process


@pytest.fixture(scope="module")
def cluster(etcd: EtcdProcess) -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        cli("up", "--dir", str(directory), "--base-address", BASE, "--dcs", etcd.server.url,
            "--cluster-name", f"skew{os.getpid()}")
        yield directory
    finally:
        destroy(directory)


@pytest.fixture
def clean(cluster: Path) -> Iterator[Path]:
    """Every test starts with three Synced members, node1 the writer, no agent skewed; and ends so."""
    settle(cluster)
    yield cluster
    for node in NODES:
        if skewed(cluster, node) or agent_pid(cluster, node) is None:
            restart_agent(cluster, node, None)
    settle(cluster)


# ---- helpers ------------------------------------------------------------------------------------------------


def config(directory: Path, node: str) -> NodeConfig:
    return EmbeddedCluster(directory).node(node).config


def agent_pid(directory: Path, node: str) -> int | None:
    return EmbeddedCluster(directory).node(node).agent_pid()


def skewed(directory: Path, node: str) -> bool:
    pid = agent_pid(directory, node)
    if pid is None:
        return False
    with contextlib.suppress(psutil.Error):
        return "FAKETIME" in psutil.Process(pid).environ()
    return False


def restart_agent(directory: Path, node: str, offset: str | None, fake_monotonic: bool = False,
                  wait: bool = True) -> None:
    """SIGKILL the node's agent (mariadbd keeps running) and start it again, under libfaketime with
    `offset` (e.g. "+30s") when given; the new agent adopts the running mariadbd."""
    pid = agent_pid(directory, node)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                 10, f"{node}'s agent to die")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME") and k != "LD_PRELOAD"}
    if offset is not None:
        env |= {"LD_PRELOAD": LIBFAKETIME, "FAKETIME": offset}
        if not fake_monotonic:
            env["FAKETIME_DONT_FAKE_MONOTONIC"] = "1"
    node_config = EmbeddedCluster(directory).node(node)
    command = [sys.executable, "-m", "galera_pilot", "agent", str(node_config.config_path)]
    if offset is not None and not fake_monotonic:
        command[1:3] = ["-c", SLEEP_SHIM]
    with open(node_config.config.agent_log, "ab") as out:
        proc = subprocess.Popen(command,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True, env=env)
    node_config.agent_pid_file.write_text(f"{proc.pid}\n")
    if not wait:
        return
    # Healthy: adopted its running mariadbd, or (after a crash) started it and rejoined.
    wait_for(lambda: status(directory, node)["routing"]["healthy"] or fake_monotonic, 180,
             f"{node}'s restarted agent to answer and find mariadbd healthy")


def status(directory: Path, node: str) -> dict:
    return http_json(config(directory, node).api_url + "/status")


def metrics(directory: Path, node: str) -> str:
    code, body = api().request("GET", config(directory, node).api_url + "/metrics", timeout=2.0)
    assert code == 200
    return body.decode()


def writer(directory: Path) -> str | None:
    return EmbeddedCluster(directory).snapshot().writer


def settle(directory: Path) -> None:
    """All three Synced in one component, node1 the writer (switched back when it is not)."""
    wait_for(lambda: all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in members(directory).values()),
             180, "three Synced members")
    wait_for(lambda: writer(directory) is not None, 30, "a writer")
    if writer(directory) != "node1":
        wait_for(lambda: cli("switchover", "--dir", str(directory), "--to", "node1", check=False).returncode == 0,
                 60, "a switchover back to node1")


def no_writer_stretch(poller: WriterPoller) -> float:
    """Longest stretch during which no agent answered `/writer` 200."""
    longest, since = 0.0, None
    for at, writers in poller.samples:
        if not writers:
            since = at if since is None else since
            longest = max(longest, at - since)
        else:
            since = None
    return longest


def poller(directory: Path, nodes: tuple[str, ...] = NODES) -> WriterPoller:
    return WriterPoller([config(directory, n).address for n in nodes]).start()


# ---- tests --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("role", "offset"), SKEWS)
def test_a_skewed_agent_reports_its_skew_and_switchover_and_failover_behave(clean: Path, role: str,
                                                                          offset: str) -> None:
    """One agent 30 s off (the writer's, the switchover target's or a bystander's): it reports the skew
    (/status, /metrics, list, its log); a switchover there and back completes in about a second each; and
    when the writer's host crashes (agent and mariadbd killed), another member takes over within the
    usual bound (lease + stale record), then the crashed node rejoins."""
    cluster = clean
    node = {"writer": "node1", "target": "node3", "bystander": "node2"}[role]
    restart_agent(cluster, node, offset)
    sign = 1 if offset.startswith("+") else -1

    def reported() -> bool:
        clock = status(cluster, node)["clock"]
        return clock["skew"] is not None and abs(clock["skew"] - sign * 30) < 2 and bool(clock["warning"])

    wait_for(reported, 30, f"{node} to report its clock {offset} off")
    assert "galera_pilot_clock_skew_seconds" in metrics(cluster, node)
    listed = re.compile(rf"^clock (29|30|31)\.\d s {'ahead' if sign > 0 else 'behind'}! ")
    wait_for(lambda: listed.match(members(cluster)[node]["activity"]), 30, f"list to show {node}'s skew")
    logged = re.compile(r"WARNING .*this host's clock is (29|30|31)\.\d s")
    assert logged.search((cluster / node / "log" / "agent.log").read_text(errors="replace"))
    for other in NODES:
        if other != node:
            skew = status(cluster, other)["clock"]["skew"]
            assert skew is not None and abs(skew) < 2, f"{other} thinks its own clock is {skew} s off"

    watch = poller(cluster)
    try:
        for source, target in (("node1", "node3"), ("node3", "node1")):  # there and back
            started = time.monotonic()
            result = cli("switchover", "--dir", str(cluster), "--to", target, check=False, timeout=60)
            took = time.monotonic() - started
            print(f"\n[{role} {offset}] switchover {source} -> {target}: {took:.2f} s, {result.stdout.strip()} "
                  f"{result.stderr.strip()}")
            assert result.returncode == 0, result.stderr
            assert took < SWITCHOVER_BOUND
            assert writer(cluster) == target

        # The writer's host crashes: its agent and its mariadbd die at once (no release, no "stopped" record).
        # node1 is everybody's first choice by name, so a record of its that looks alive (stamped 30 s ahead,
        # before the fix) kept the others waiting for it until the record's TTL (10 s) ran out.
        victim_mariadbd, victim_agent = mariadbd_pid(cluster, "node1"), agent_pid(cluster, "node1")
        assert victim_mariadbd is not None and victim_agent is not None
        crashed = time.monotonic()
        os.kill(victim_agent, signal.SIGKILL)
        os.kill(victim_mariadbd, signal.SIGKILL)
        wait_for(lambda: writer(cluster) not in (None, "node1"), 30, "another member to take the writer role")
        failover = time.monotonic() - crashed
        print(f"[{role} {offset}] failover after the writer host's crash: {failover:.2f} s (no /writer for "
              f"{no_writer_stretch(watch):.2f} s), double writers {watch.longest_double_writer():.2f} s")
        assert failover < FAILOVER_BOUND
        assert watch.longest_double_writer() < 3.0
    finally:
        watch.stop()
    # node1's host comes back (with its skew if it was the skewed one): it rejoins.
    restart_agent(cluster, "node1", offset if node == "node1" else None)


def test_a_switchover_to_a_stalled_agent_is_refused_at_once_and_the_writer_keeps_the_role(clean: Path) -> None:
    """The issue's experiment: node3's agent under `faketime -f +30s` (the monotonic clock faked too), whose
    timed waits then oversleep by 30 s. Before the fix node1 gave the role up at once and nobody was the
    writer for 30 s; now the switchover is refused at once with the reason, and node1 never stops."""
    cluster = clean
    restart_agent(cluster, "node3", "+30s", fake_monotonic=True)
    wait_for(lambda: not status(cluster, "node3")["routing"]["healthy"], 30, "node3's agent to stall")
    watch = poller(cluster, ("node1", "node2"))
    try:
        started = time.monotonic()
        result = cli("switchover", "--dir", str(cluster), "--to", "node3", check=False, timeout=60)
        took = time.monotonic() - started
        time.sleep(1.5)  # what an eager release would have shown by now
        print(f"\nswitchover to a stalled agent: exit {result.returncode} in {took:.2f} s: {result.stderr.strip()}")
        assert result.returncode == 1
        assert "node3" in result.stderr and "refused" in result.stderr, result.stderr
        assert took < SWITCHOVER_BOUND
        assert writer(cluster) == "node1"
        assert no_writer_stretch(watch) < 0.5, f"no writer for {no_writer_stretch(watch):.2f} s"
    finally:
        watch.stop()


@pytest.mark.parametrize("skews", [{"node1": "+30s", "node2": "-30s"}, {}], ids=["skewed", "synchronized"])
def test_full_outage_recovery_with_skewed_agents(clean: Path, skews: dict[str, str]) -> None:
    """Every agent and mariadbd killed (a power cut); the hosts come back with node1's clock 30 s ahead and
    node2's 30 s behind (their agents start mariadbd under the same skew): the cluster recovers by itself
    as with synchronized clocks (the baseline case), and a writer is elected."""
    cluster = clean
    servers = {n: mariadbd_pid(cluster, n) for n in NODES}
    for node in NODES:
        pid = agent_pid(cluster, node)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
    for node, pid in servers.items():
        assert pid is not None, node
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not any(psutil.pid_exists(p) for p in servers.values() if p), 30, "every mariadbd to die")
    started = time.monotonic()
    for node in NODES:
        restart_agent(cluster, node, skews.get(node), wait=False)

    def recovered() -> bool:  # new servers (the dead ones' records say Synced until their TTL runs out)
        fresh = all(mariadbd_pid(cluster, n) not in (None, servers[n]) for n in NODES)
        return fresh and all(r["state"] == "Synced" and r["cluster_size"] == 3 for r in members(cluster).values())

    wait_for(recovered, 240, "the cluster to recover from the full outage")
    recovered = time.monotonic() - started
    wait_for(lambda: writer(cluster) is not None, 30, "a writer after the recovery")
    print(f"\nfull outage, clocks {skews or 'synchronized'}: all Synced after {recovered:.1f} s, "
          f"writer {writer(cluster)} after {time.monotonic() - started:.1f} s")
    for node in skews:
        assert skewed(cluster, node)
        wait_for(lambda node=node: abs(status(cluster, node)["clock"]["skew"] or 0) > 25, 30, f"{node}'s skew")
    for node in NODES:  # the servers the skewed agents started run under the same skew, as on a real host
        server = psutil.Process(mariadbd_pid(cluster, node))
        assert ("FAKETIME" in server.environ()) == (node in skews), node


def test_the_failsafe_keeps_a_skewed_writer_through_a_dcs_outage(clean: Path, etcd: EtcdProcess) -> None:
    """etcd hangs (SIGSTOP) for 8 s while the writer's clock is 30 s ahead and a bystander's 30 s behind:
    the writer keeps its role through its peers' promises (failsafe.py), as with synchronized clocks."""
    cluster = clean
    restart_agent(cluster, "node1", "+30s")
    restart_agent(cluster, "node2", "-30s")
    wait_for(lambda: writer(cluster) == "node1", 30, "node1 to be the writer")
    watch = poller(cluster)
    try:
        address = config(cluster, "node1").address
        wait_for(lambda: watch.samples and watch.samples[-1][1] == {address}, 30, "node1 alone on /writer")
        etcd.pause()
        try:
            time.sleep(8)
        finally:
            etcd.resume()
        during = [w for _, w in watch.samples[-140:]]
        print(f"\nDCS paused 8 s: longest stretch without a writer {no_writer_stretch(watch):.2f} s, "
              f"with two {watch.longest_double_writer():.2f} s; failsafe: "
              f"{status(cluster, 'node1')['routing']['writer_failsafe']!r}")
        assert no_writer_stretch(watch) < 0.5
        assert watch.longest_double_writer() == 0.0
        assert all(w == frozenset({address}) for w in during[-100:]), "node1 lost /writer during the outage"
    finally:
        watch.stop()
    wait_for(lambda: writer(cluster) == "node1", 30, "node1 to renew its lease once etcd answers")


def test_a_switchover_the_target_never_carries_out_returns_the_role_within_about_a_second(clean: Path) -> None:
    """A request reaches the writer, but the target's agent is frozen (SIGSTOP) just before: the writer
    either refuses it (the target's record already looks stale to it) or gives the role up and, nobody
    having taken it within 1 s, takes it back; either way the request is marked failed with the reason.
    Before the fix nobody was the writer until the request expired (its 30 s TTL)."""
    cluster = clean
    frozen = agent_pid(cluster, "node3")
    assert frozen is not None
    watch = poller(cluster, ("node1", "node2"))  # a frozen agent's API would hold each sample for 2 s
    dcs = EmbeddedCluster(cluster).dcs()
    try:
        os.kill(frozen, signal.SIGSTOP)
        try:
            assert dcs.request_switchover("node1", "node3", ttl=30.0)
            started = time.monotonic()
            failed = wait_for(lambda: (dcs.routing_view().switchover or Switchover("")).failed, 10,
                              "the request to be marked failed")
            took = time.monotonic() - started
            wait_for(lambda: writer(cluster) == "node1", 10, "node1 to be the writer")
            time.sleep(0.5)
        finally:
            os.kill(frozen, signal.SIGCONT)
        print(f"\nswitchover to a frozen agent: failed after {took:.2f} s ({failed}); "
              f"no /writer for {no_writer_stretch(watch):.2f} s")
        assert took < SWITCHOVER_BOUND
        assert no_writer_stretch(watch) < 2.0
    finally:
        watch.stop()
        dcs.clear_switchover()
        dcs.close()


@pytest.fixture(scope="module")
def sqlite_cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        cli("up", "--dir", str(directory), "--base-address", SQLITE_BASE, "--dcs",
            f"sqlite://{directory / 'dcs.sqlite'}")
        yield directory
    finally:
        destroy(directory)


@pytest.mark.parametrize("offset", ["+30s", "-30s"])
def test_on_sqlite_a_skewed_agent_neither_steals_nor_misses_the_writer_lease(sqlite_cluster: Path,
                                                                             offset: str) -> None:
    """The SQLite store is one machine, but an agent process may still run with its own wall clock
    (faketime here, a container's clock, a person's `date -s`). Its TTLs were wall-clock expiry times:
    30 s ahead, it saw node1's writer lease as expired and took it too (two writers); now expiry follows
    the host's monotonic clock. And a switchover to it completes as usual."""
    cluster = sqlite_cluster
    settle(cluster)
    try:
        watch = poller(cluster)
        try:
            restart_agent(cluster, "node3", offset)
            time.sleep(4)  # more than one writer lease: a skewed agent would have taken the key by now
            print(f"\n[sqlite {offset}] writer {writer(cluster)}; two writers for "
                  f"{watch.longest_double_writer():.2f} s, none for {no_writer_stretch(watch):.2f} s")
            assert writer(cluster) == "node1"
            assert watch.longest_double_writer() == 0.0
            assert no_writer_stretch(watch) < 0.5
            started = time.monotonic()
            result = cli("switchover", "--dir", str(cluster), "--to", "node3", check=False, timeout=60)
            took = time.monotonic() - started
            print(f"[sqlite {offset}] switchover: {took:.2f} s: {result.stdout.strip()} {result.stderr.strip()}")
            assert result.returncode == 0 and took < SWITCHOVER_BOUND
            assert writer(cluster) == "node3"
        finally:
            watch.stop()
    finally:
        restart_agent(cluster, "node3", None)
