"""Property tests of the bootstrap safety rules, with every member deciding over the same snapshot,
and of the bootstrap lock that guards stale or partial snapshots."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from decision_builders import ADDRESSES, CLUSTER_UUID, FOREIGN_UUID, HOST, NOW, local_of
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from galera_pilot.agent.decisions import Action, Decision, LocalState, RecoveryPolicy, decide
from galera_pilot.cluster import UNKNOWN_UUID, Cluster, InitializeRecord, Member, Position, RosterEntry, SeedRecord
from galera_pilot.dcs.sqlite import SQLiteDCS

NAMES = [f"n{i}" for i in range(1, 7)]

positions = st.builds(
    Position,
    uuid=st.sampled_from([CLUSTER_UUID, CLUSTER_UUID, FOREIGN_UUID, UNKNOWN_UUID]),
    seqno=st.integers(-1, 50),
    safe_to_bootstrap=st.booleans(),
    source=st.just("grastate"),
    unusable=st.sampled_from([None, None, None, "an SST was aborted here (sst_in_progress marker)"]),
)


@st.composite
def members(draw: st.DrawFn, name: str) -> Member:
    is_running = draw(st.integers(0, 3)) == 0  # mostly stopped: outages are where the danger is
    if is_running:
        status = draw(st.sampled_from(["Primary", "non-Primary", "Disconnected", ""]))
        state = draw(st.sampled_from(["Synced", "Donor/Desynced", "Joining", "Joined", "Initialized", "starting"]))
        return Member(name=name, address=ADDRESSES[name], host=HOST, running=True, state=state,
                      cluster_status=status, position=None)
    pos = draw(st.none() | positions)
    return Member(name=name, address=ADDRESSES[name], host=HOST, running=False, state="stopped", position=pos)


@st.composite
def clusters(draw: st.DrawFn) -> tuple[Cluster, RecoveryPolicy, dict[str, float | None]]:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True))
    member_map = {n: draw(members(n)) for n in names}
    # The roster: mostly the members, sometimes missing some of them or naming members that are gone.
    roster_names = draw(st.lists(st.sampled_from([*NAMES, "n7", "n8"]), max_size=8, unique=True))
    roster = {n: RosterEntry(n, ADDRESSES.get(n, "127.0.1.1")) for n in roster_names}
    initialize = draw(st.sampled_from([
        InitializeRecord("n1", CLUSTER_UUID, 1.0, 2.0, 1),
        InitializeRecord("n1", CLUSTER_UUID, 1.0, 2.0, 1),
        InitializeRecord("n1", CLUSTER_UUID, 1.0, 2.0, 1),
        InitializeRecord("n1", None, 1.0, None, 1),
        None,
    ]))
    seed = draw(st.none() | st.just(SeedRecord(HOST, "/srv/n1/seed", CLUSTER_UUID, 0)))
    lock = draw(st.none() | st.sampled_from([*NAMES, "n7"]))
    cluster = Cluster(initialize=initialize, members=member_map, roster=roster, seed=seed,
                      bootstrap_lock_holder=lock, read_at=NOW)
    policy = RecoveryPolicy(draw(st.sampled_from(["all", "majority"])), draw(st.sampled_from([0.0, 30.0])))
    since = {n: draw(st.none() | st.sampled_from([0.0, NOW - 10, NOW - 60, NOW])) for n in names}
    return cluster, policy, since


def local_for(member: Member, since: float | None) -> LocalState:
    return local_of(member, no_primary_since=since)


def decide_all(cluster: Cluster, policy: RecoveryPolicy, since: dict[str, float | None]) -> dict[str, Decision]:
    return {n: decide(local_for(m, since[n]), cluster, policy, NOW) for n, m in cluster.members.items()}


@st.composite
def outages(draw: st.DrawFn, clean: bool = False) -> tuple[Cluster, RecoveryPolicy, dict[str, float | None]]:
    """Full outages of an initialized cluster: every member stopped, mostly with positions of its UUID
    (`clean`: every member has a usable position of the cluster's UUID)."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=2, max_size=6, unique=True))
    outage_positions = st.builds(
        Position, uuid=st.sampled_from([CLUSTER_UUID] * (5 if clean else 4) + ([] if clean else [FOREIGN_UUID])),
        seqno=st.integers(0 if clean else -1, 8), safe_to_bootstrap=st.booleans(), source=st.just("grastate"),
        unusable=st.sampled_from([None] * 5 + ([] if clean else ["grastate.dat is corrupt: x"])),
    )
    maybe_position = outage_positions if clean else st.none() | outage_positions
    member_map = {n: Member(n, ADDRESSES[n], host=HOST, position=draw(maybe_position, label=n)) for n in names}
    roster_names = draw(st.lists(st.sampled_from([*names, "n7"]), max_size=7, unique=True))
    cluster = Cluster(initialize=InitializeRecord("n1", CLUSTER_UUID, 1.0, 2.0, 1), members=member_map,
                      roster={n: RosterEntry(n, ADDRESSES.get(n, "127.0.1.1")) for n in roster_names},
                      read_at=NOW)
    policy = RecoveryPolicy(draw(st.sampled_from(["all", "majority"])), 30.0)
    since = {n: draw(st.sampled_from([0.0, NOW - 10, None])) for n in names}
    return cluster, policy, since


def check_bootstrap_safety(cluster: Cluster, policy: RecoveryPolicy, since: dict[str, float | None]) -> None:
    decisions = decide_all(cluster, policy, since)
    bootstrappers = [n for n, d in decisions.items() if d.action == Action.BOOTSTRAP]

    # (a) at most one member bootstraps
    assert len(bootstrappers) <= 1, decisions
    # (c) nobody bootstraps next to a Primary Component
    if any(m.is_primary for m in cluster.members.values()):
        assert bootstrappers == []
    if not bootstrappers:
        return
    (winner,) = bootstrappers
    assert cluster.initialize is not None and cluster.initialize.done
    # The lock, if held, is the winner's.
    assert cluster.bootstrap_lock_holder in (None, winner)
    # (b) the winner has a usable position of the cluster's UUID, and no reported usable position of that
    # UUID is more advanced.
    mine = cluster.members[winner].position
    assert mine is not None and mine.usable and mine.uuid == CLUSTER_UUID
    for name, member in cluster.members.items():
        other = member.position
        if name == winner or member.running or other is None or not other.usable or other.uuid != CLUSTER_UUID:
            continue
        assert other.seqno <= mine.seqno
        if other.seqno == mine.seqno:  # ties: safe_to_bootstrap first, then the smallest name
            assert (not other.safe_to_bootstrap, name) > (not mine.safe_to_bootstrap, winner)
    roster = set(cluster.roster) | {winner}
    reported = {n for n, m in cluster.members.items() if m.position is not None and not m.running}
    if policy.mode == "all":
        # Every last-known member has reported a position.
        assert roster <= reported
    else:
        # A strict majority of the last-known members has reported, and the winner waited long enough
        # unless nobody was missing.
        assert len(roster & reported) > len(roster) / 2
        if not roster <= reported:
            waited = 0.0 if since[winner] is None else NOW - since[winner]
            assert waited >= policy.majority_timeout


@settings(max_examples=400, deadline=None)
@given(clusters())
def test_bootstrap_safety(drawn: tuple[Cluster, RecoveryPolicy, dict[str, float | None]]) -> None:
    check_bootstrap_safety(*drawn)


@settings(max_examples=400, deadline=None)
@given(outages())
def test_bootstrap_safety_in_full_outages(drawn: tuple[Cluster, RecoveryPolicy, dict[str, float | None]]) -> None:
    check_bootstrap_safety(*drawn)


@settings(max_examples=200, deadline=None)
@given(clusters())
def test_every_decision_is_well_formed(drawn: tuple[Cluster, RecoveryPolicy, dict[str, float | None]]) -> None:
    cluster, policy, since = drawn
    for name, decision in decide_all(cluster, policy, since).items():
        member = cluster.members[name]
        assert isinstance(decision.action, Action)
        assert decision.reason
        if member.running:
            assert decision.action == Action.NONE
        if decision.action == Action.JOIN:
            # Peers are exactly the other Primary members, sorted.
            expected = sorted(m.gcomm_address for m in cluster.members.values() if m.is_primary and m.name != name)
            assert list(decision.peers) == expected and expected
        else:
            assert decision.peers == ()
        initialized = cluster.initialize is not None and cluster.initialize.done
        if initialized and not member.running and any(m.is_primary for n, m in cluster.members.items() if n != name):
            # Next to a Primary Component: join it (or wait); never bootstrap or initialize. (The uninitialized
            # case is test_decisions.py::test_never_initialize_next_to_a_primary_component, a known bug.)
            assert decision.action in (Action.JOIN, Action.HALT, Action.WAIT)
        if decision.action == Action.INITIALIZE:
            assert cluster.initialize is None or cluster.initialize.by == name
        if decision.copy_seed:
            assert member.position is None and cluster.seed is not None


def test_property_generator_reaches_bootstrap() -> None:
    """Guard against a vacuous property: the generator must produce clusters where somebody bootstraps."""
    seen: list[str] = []

    @settings(max_examples=150, deadline=None, database=None)
    @given(st.one_of(clusters(), outages()))
    def probe(drawn: tuple[Cluster, RecoveryPolicy, dict[str, float | None]]) -> None:
        decisions = decide_all(*drawn)
        seen.extend(d.action.value for d in decisions.values())

    probe()
    for action in (Action.BOOTSTRAP, Action.JOIN, Action.WAIT, Action.NONE, Action.INITIALIZE):
        assert action.value in seen


# ---- the lock behind stale snapshots -----------------------------------------------------------------------

_cluster_ids = itertools.count()


@pytest.fixture(scope="module")
def lock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("locks") / "dcs.sqlite"


def fresh_dcs(path: Path) -> SQLiteDCS:
    # One file, a new cluster namespace per example: cheap, and isolated by the key prefix.
    return SQLiteDCS(path, f"prop{next(_cluster_ids)}")


@st.composite
def stale_views(draw: st.DrawFn) -> tuple[Cluster, RecoveryPolicy, dict[str, float | None], dict[str, Cluster]]:
    """A full outage plus, per member, an older or partial view that misses some other members entirely
    (their member keys expired, and the view predates their roster entries), so several may decide BOOTSTRAP."""
    cluster, policy, since = draw(st.one_of(outages(clean=True), outages()))
    views = {}
    for name in cluster.members:
        hidden = draw(st.sets(st.sampled_from(sorted(cluster.members))), label=f"hidden from {name}")
        hidden.discard(name)
        views[name] = Cluster(cluster.initialize, {n: m for n, m in cluster.members.items() if n not in hidden},
                              {n: r for n, r in cluster.roster.items() if n not in hidden}, cluster.seed, None,
                              read_at=NOW)
    return cluster, policy, since, views


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(drawn=stale_views(), order_seed=st.randoms(use_true_random=False))
def test_bootstrap_lock_admits_one_of_the_racing_bootstrappers(lock_file: Path, drawn, order_seed) -> None:
    cluster, policy, since, views = drawn
    deciders = [n for n in cluster.members
                if decide(local_for(cluster.members[n], since[n]), views[n], policy, NOW).action == Action.BOOTSTRAP]
    assume(deciders)
    event(f"{min(len(deciders), 3)}{'+' if len(deciders) >= 3 else ''} bootstrap deciders")
    dcs = fresh_dcs(lock_file)
    try:
        order = deciders * 2  # everyone tries twice (a retry, or a renewal by the holder)
        order_seed.shuffle(order)
        acquired = {n for n in order if dcs.acquire_bootstrap_lock(n, 600.0, "race")}
        assert len(acquired) == 1
        (holder,) = acquired
        assert dcs.snapshot().bootstrap_lock_holder == holder
        # Re-deciding under the lock on a snapshot that shows the holder: every other decider stands down.
        locked = dcs.snapshot()
        view = Cluster(cluster.initialize, cluster.members, cluster.roster, cluster.seed,
                       locked.bootstrap_lock_holder, read_at=NOW)
        for name in deciders:
            again = decide(local_for(cluster.members[name], since[name]), view, policy, NOW)
            if name != holder:
                assert again.action != Action.BOOTSTRAP
                if not cluster.has_primary:
                    assert again.action == Action.WAIT
    finally:
        dcs.close()


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["acquire", "release"]), st.sampled_from(["a", "b", "c"])),
                    max_size=30))
def test_bootstrap_lock_model(lock_file: Path, ops: list[tuple[str, str]]) -> None:
    """Any interleaving of acquire/renew/release by three nodes behaves like a single-holder mutex."""
    dcs = fresh_dcs(lock_file)
    holder: str | None = None
    try:
        for op, name in ops:
            if op == "acquire":
                expected = holder in (None, name)
                assert dcs.acquire_bootstrap_lock(name, 600.0, op) is expected
                if expected:
                    holder = name
            else:
                dcs.release_bootstrap_lock(name)
                if holder == name:
                    holder = None
            assert dcs.snapshot().bootstrap_lock_holder == holder
    finally:
        dcs.close()
