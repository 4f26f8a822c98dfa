"""Pure decisions: given this node's local state and a DCS snapshot, what should the agent do?

Nothing here touches a process, a socket, a file or the clock (time comes in as an argument), so the
whole ladder is unit- and property-tested. The safety rules live here:

* a node joins whenever a live Primary Component exists; it never bootstraps next to one;
* a brand-new cluster is bootstrapped only by the winner of the atomic `initialize` create;
* after a full outage only the most advanced usable datadir of the recorded cluster UUID may bootstrap
  (highest seqno, then safe_to_bootstrap, then name), and only once every roster member has reported
  its position — or, under the `majority` policy, a majority after a timeout;
* never below the high-water mark (the highest seqno the cluster ever committed, high_water.py): that
  would discard committed transactions, which only a person may decide (`bootstrap --force`);
* the seed (a copy of the brand-new cluster's first datadir) stands for the cluster only while nothing
  was committed beyond it: afterwards an empty datadir waits for a Primary Component to join;
* the caller must still hold the DCS bootstrap lock before acting on BOOTSTRAP (`bootstrap.py` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from galera_pilot.agent.high_water import DATA_GONE, data_gone, held_most, never_served, shortfall
from galera_pilot.backup.restore_order import STOPPING
from galera_pilot.cluster import Cluster, Member, Position


class Action(StrEnum):
    NONE = "none"  # healthy, or in a state that needs no action
    WAIT = "wait"  # something else must happen first
    INITIALIZE = "initialize"  # try to win the initialize race and create a brand-new cluster
    BOOTSTRAP = "bootstrap"  # start mariadbd with --wsrep-new-cluster (after taking the bootstrap lock)
    JOIN = "join"  # start mariadbd joining the given peers
    COPY_SEED = "copy_seed"  # copy the seed datadir now, so that joining later is only an IST
    HALT = "halt"  # stop trying (crash loop); a person must look
    RESTART = "restart"  # stop a mariadbd that left the group for good, so that it rejoins
    PC_RECOVER = "pc_recover"  # start mariadbd towards the other members and let pc.recovery re-form the PC
    FORM = "form"  # a new cluster's nodes start together from the seed and form the first PC via pc.recovery
    ROLL_RESTART = "roll_restart"  # stop mariadbd cleanly for a rolling restart (the ladder then rejoins it)
    LEAVE = "leave"  # this member was removed (`galera-pilot remove`): stop mariadbd cleanly, for good
    RESTORE_STOP = "restore_stop"  # `galera-pilot restore` stops every member first: stop mariadbd cleanly


@dataclass(frozen=True)
class RecoveryPolicy:
    """`all`: wait for every roster member's position. `majority`: after `majority_timeout` seconds
    without a Primary, a strict majority of the roster is enough (its best node wins)."""

    mode: Literal["all", "majority"] = "all"
    majority_timeout: float = 30.0


@dataclass(frozen=True)
class LocalState:
    name: str
    host: str
    running: bool = False
    cluster_status: str = ""
    state: str = "stopped"
    has_data: bool = False
    position: Position | None = None
    use_seed: bool = True
    crash_loop: str | None = None
    backoff_remaining: float = 0.0
    no_primary_since: float | None = None
    disconnected_for: float = 0.0  # how long a running mariadbd has reported wsrep_cluster_status Disconnected
    not_primary_for: float = 0.0  # how long a running, answering mariadbd has reported any status but Primary
    pc_recovery_allowed: bool = True  # False once a pc.recovery attempt failed in this outage
    pc_recovering_for: float = 0.0  # how long a mariadbd started for pc.recovery has been waiting, not Primary
    # Why mariadbd must not be started now for lack of disk space (mariadb/disk.start_refusal), or None.
    disk_full: str | None = None
    # A rolling restart asks this node to restart the mariadbd running now (lifecycle/restart.restart_due).
    restart_due: bool = False
    # `galera-pilot remove` took this member out (its DCS record or its folder's mark says by whom), or None.
    removed: str | None = None


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    peers: tuple[str, ...] = ()
    copy_seed: bool = False
    # Set when the datadir must not be joined as it is (aborted SST, corrupt grastate, another cluster's
    # UUID): it is moved aside, never deleted, and the node takes a full SST.
    quarantine: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BootstrapChoice:
    """Outcome of choosing a bootstrap source after a full outage."""

    chosen: str | None
    reason: str
    positions: dict[str, dict[str, Any]]


def rank(position: Position, name: str) -> tuple[int, int, str]:
    """Sort key, best first: highest seqno, then safe_to_bootstrap, then the smallest name (stable)."""
    return (-position.seqno, -int(position.safe_to_bootstrap), name)


def reported_positions(cluster: Cluster, local: LocalState) -> dict[str, Position]:
    """Positions of members outside any Primary Component, this node's own fresh one taking precedence
    over its DCS copy. A running member publishes one only while it waits for pc.recovery: its data has
    not moved since, and the others still need it to make the same pc.recovery decision."""
    positions = {
        name: m.position for name, m in cluster.members.items()
        if m.position is not None and not m.is_primary and name != local.name
    }
    if local.position is not None and local.cluster_status != "Primary":
        positions[local.name] = local.position
    return positions


def choose_bootstrap_node(cluster: Cluster, local: LocalState, policy: RecoveryPolicy,
                          now: float) -> BootstrapChoice:
    """Which node may bootstrap after a full outage, or why nobody may yet."""
    assert cluster.initialize is not None and cluster.initialize.cluster_uuid is not None
    cluster_uuid = cluster.initialize.cluster_uuid
    positions = reported_positions(cluster, local)
    described = {n: {"uuid": p.uuid, "seqno": p.seqno, "safe_to_bootstrap": p.safe_to_bootstrap,
                     "unusable": p.unusable} for n, p in positions.items()}
    roster = set(cluster.roster) | {local.name}
    # A crashed member whose position is not recovered yet (seqno -1) may be the most advanced: not reported.
    known = {n for n, p in positions.items() if not p.needs_recovery}
    missing = sorted(roster - known)
    if missing:
        # A live arbitrator is a vote, not a position: it holds no data, but a majority of votes that
        # includes it says the missing members are fewer than half (the high-water mark still guards
        # against a bootstrap behind what the cluster had committed).
        arbitrators = sum(1 for a in cluster.arbitrators.values() if a.weight > 0)
        votes = len(roster) + arbitrators
        majority = votes // 2 + 1
        waited = 0.0 if local.no_primary_since is None else now - local.no_primary_since
        reported = len(roster & known) + arbitrators
        if policy.mode == "all":
            return BootstrapChoice(None, f"waiting for the positions of {', '.join(missing)} "
                                   f"(policy 'all': every last-known member must report)", described)
        if reported < majority:
            counted = f" (with {arbitrators} arbitrator{'s' if arbitrators != 1 else ''})" if arbitrators else ""
            return BootstrapChoice(None, f"only {reported} of {votes} last-known members reported{counted}; "
                                   f"a minority never bootstraps (missing: {', '.join(missing)})", described)
        if waited < policy.majority_timeout:
            return BootstrapChoice(None, f"waiting for {', '.join(missing)}: a majority has reported, "
                                   f"proceeding after {policy.majority_timeout - waited:.0f} s more", described)
    candidates = {
        n: p for n, p in positions.items() if p.usable and p.uuid == cluster_uuid
    }
    if not candidates:
        gone = data_gone(cluster, positions)
        if gone:
            return BootstrapChoice(None, gone, described)
        excuses = "; ".join(
            f"{n}: {p.unusable or ('foreign cluster UUID ' + p.uuid if p.uuid != cluster_uuid else 'no position')}"
            for n, p in sorted(positions.items())
        )
        return BootstrapChoice(None, f"no usable datadir of cluster {cluster_uuid} ({excuses})", described)
    best = min(candidates, key=lambda n: rank(candidates[n], n))
    p = candidates[best]
    lost = shortfall(cluster, p)
    if lost:
        gone = data_gone(cluster, positions)
        if gone:
            return BootstrapChoice(None, gone, described)
        return BootstrapChoice(None, f"{best} holds the most advanced datadir left (seqno {p.seqno}), but the "
                               f"cluster had reached {held_most(cluster)}: bootstrapping it would discard {lost} "
                               "committed transactions; waiting for a member that holds them (a person may accept "
                               f"the loss: galera-pilot bootstrap --member {best} --force)", described)
    others = ", ".join(f"{n}={q.seqno}" for n, q in sorted(candidates.items()) if n != best) or "none"
    reason = (f"{best} is the most advanced of {len(candidates)} usable datadirs of cluster {cluster_uuid} "
              f"(seqno {p.seqno}, safe_to_bootstrap={int(p.safe_to_bootstrap)}; others: {others})")
    return BootstrapChoice(best, reason, described)


# A pc.recovery start waits this long for the saved component to re-form (it did in 3.3 s measured)
# before the node is stopped and the outage is recovered by a bootstrap instead.
PC_RECOVERY_TIMEOUT = 20.0


def pc_recovery_peers(cluster: Cluster, local: LocalState) -> tuple[str, ...] | None:
    """The others' gcomm addresses when Galera can re-form the last Primary Component by itself, else None.

    That is when every roster member has reported a usable position of this cluster and all of them saved
    the same view (gvwstate.dat) whose members are exactly their own instances, and those of arbitrators
    whose agents report the same saved instance (garbd keeps its gvwstate.dat too): all of the last
    component, and nobody else, is back. Galera restores a saved view only when all its members meet, so
    even a wrong "yes" here cannot form a second component; it only costs PC_RECOVERY_TIMEOUT.
    """
    own = local.position.saved_view if local.position else None
    init = cluster.initialize
    if not local.pc_recovery_allowed or own is None or init is None:
        return None
    roster = set(cluster.roster) | {local.name}
    positions = reported_positions(cluster, local)
    if len(roster) < 2 or not roster <= set(positions):
        return None  # one node alone would start with an empty gcomm:// address: a new cluster
    for name in roster:
        p = positions[name]
        if not p.usable or p.uuid != init.cluster_uuid or p.saved_view is None:
            return None
        if p.saved_view.view_id != own.view_id or p.saved_view.members != own.members:
            return None
    arbitrators = {a.gcomm_uuid: a for a in cluster.arbitrators.values() if a.gcomm_uuid in own.members}
    data_instances = [positions[n].saved_view.my_uuid for n in roster]  # type: ignore[union-attr]
    if sorted([*data_instances, *arbitrators]) != list(own.members):
        return None
    if shortfall(cluster, max((positions[n] for n in roster), key=lambda p: p.seqno)):
        return None  # all of the last component is back, yet behind what the cluster had committed
    return tuple(sorted([*(cluster.members[n].gcomm_address for n in roster if n != local.name),
                         *(a.gcomm_address for a in arbitrators.values())]))


def formation_peers(cluster: Cluster, local: LocalState) -> tuple[str, ...] | None:
    """The other formation members' gcomm addresses when this node may form a new cluster's first
    component together with them: it is named in the seed's formation, its datadir is still exactly the
    seed (same UUID and seqno: nothing ran on it since), no formation attempt of its own failed, and the
    cluster never committed anything beyond the seed."""
    seed = cluster.seed
    position = local.position
    if seed is None or not never_served(cluster):
        return None  # the seed stands for the cluster only before anything was committed beyond it
    if (local.name not in seed.formation or not seed.view_id or not local.pc_recovery_allowed
            or position is None or position.unusable or position.uuid != seed.uuid or position.seqno != seed.seqno):
        return None
    peers = tuple(sorted(address for name, address in seed.addresses.items() if name != local.name))
    return peers or None


def join_peers(cluster: Cluster, me: str) -> tuple[str, ...]:
    """The cartridge's 'find the hosts that are online': live Primary members, never a static list."""
    return tuple(sorted(m.gcomm_address for m in cluster.primary_members if m.name != me))


def seed_usable(cluster: Cluster, local: LocalState) -> bool:
    seed = cluster.seed
    return (
        local.use_seed and seed is not None and not local.has_data and seed.host == local.host
        and cluster.initialize is not None and seed.uuid == cluster.initialize.cluster_uuid
    )


def datadir_problem(cluster: Cluster, local: LocalState) -> str | None:
    """Why this node's data must not be used as it is when joining, or None."""
    position = local.position
    if not local.has_data or position is None:
        return None
    if position.unusable:
        return position.unusable
    expected = cluster.initialize.cluster_uuid if cluster.initialize else None
    if expected and position.uuid != expected:
        return f"the datadir belongs to another cluster ({position.uuid}, not {expected})"
    return None


# A running mariadbd whose group channel is closed ("Disconnected", e.g. after "Receiving IST failed, node
# restart required") never rejoins by itself; a partitioned one is "non-Primary" and does.
DISCONNECTED_RESTART_AFTER = 10.0
# A survivor whose peers all died is non-Primary (it lost its quorum) and publishes no position, so the
# full-outage recovery, which waits for every member's position, would wait for it forever.
ALONE_RESTART_AFTER = 10.0


def alone_without_primary(local: LocalState, cluster: Cluster) -> bool:
    """No Primary Component anywhere, and every other roster member's agent reports its mariadbd stopped
    with a known position: nothing can form around this running non-Primary server. (A member whose
    agent does not report might run a Primary out of sight: then this is not known, and it is False.)"""
    others = set(cluster.roster) - {local.name}
    if not others or cluster.has_primary:
        return False
    for name in others:
        member = cluster.members.get(name)
        if member is None or member.running or member.position is None or member.position.needs_recovery:
            return False
    return True


def decide_running(local: LocalState, cluster: Cluster) -> Decision:
    if local.cluster_status != "Primary" and local.pc_recovering_for >= PC_RECOVERY_TIMEOUT:
        return Decision(Action.RESTART, f"pc.recovery did not re-form the Primary Component within "
                                        f"{PC_RECOVERY_TIMEOUT:.0f} s; stopping mariadbd to recover by a bootstrap")
    if (local.cluster_status == "Disconnected" and local.state == "Inconsistent"
            and join_peers(cluster, local.name)):
        # Galera closed the group channel for good when the node lost a consistency vote: no grace to wait.
        return Decision(Action.RESTART, "mariadbd lost a consistency vote (a write the others applied failed "
                                        "here) and left the group, which it never rejoins by itself; restarting "
                                        "it to rejoin while a Primary Component exists")
    if (local.cluster_status == "Disconnected" and local.disconnected_for >= DISCONNECTED_RESTART_AFTER
            and join_peers(cluster, local.name)):
        return Decision(Action.RESTART, f"mariadbd has been Disconnected from the group for "
                                        f"{local.disconnected_for:.0f} s while a Primary Component exists; "
                                        "restarting it to rejoin")
    if (local.cluster_status in ("non-Primary", "Disconnected") and local.pc_recovering_for == 0
            and local.not_primary_for >= ALONE_RESTART_AFTER and alone_without_primary(local, cluster)):
        return Decision(Action.RESTART, f"mariadbd has been {local.cluster_status} for {local.not_primary_for:.0f} s "
                                        "and every other member is stopped: no component can form around it; "
                                        "stopping it cleanly so that the full-outage recovery counts its position")
    if local.cluster_status == "Primary" and local.restart_due:
        request = cluster.restarts.get(local.name)
        if request is not None and request.rebuild_from:
            return Decision(Action.ROLL_RESTART, "galera-pilot reinit asks for this node: stopping mariadbd cleanly, "
                                                 f"then it rejoins by a full SST from {request.rebuild_from}")
        return Decision(Action.ROLL_RESTART, "a rolling restart asks for this node: stopping mariadbd cleanly, "
                                             "then it rejoins (IST)")
    if local.cluster_status == "Primary":
        return Decision(Action.NONE, f"mariadbd is running, Primary and {local.state}")
    if local.state == "starting":
        return Decision(Action.NONE, "mariadbd is starting; waiting for it to reach the cluster")
    if local.state.startswith(("Joining", "Joined")):
        return Decision(Action.NONE, f"mariadbd is joining the cluster ({local.state})")
    if local.cluster_status == "Disconnected":
        return Decision(Action.NONE, f"mariadbd is running but Disconnected ({local.state}); it is restarted "
                                     f"if it stays so for {DISCONNECTED_RESTART_AFTER:.0f} s while a Primary "
                                     "Component exists")
    return Decision(Action.NONE, f"mariadbd is running but {local.cluster_status or 'not connected'} "
                                 f"({local.state}); Galera re-forms the component by itself")


def decide(local: LocalState, cluster: Cluster, policy: RecoveryPolicy, now: float) -> Decision:
    """One step of the ladder. Returns exactly one action and the sentence the agent logs."""
    if cluster.pause is not None:
        # A person works by hand: start, stop, bootstrap and join nothing, whatever the node's state.
        running = (f"running, {local.cluster_status or 'not connected'} and {local.state}" if local.running
                   else "stopped")
        return Decision(Action.NONE, f"the cluster is paused (by {cluster.pause.by}): mariadbd is {running}; "
                                     "taking no action until galera-pilot resume")
    if local.removed:
        # Before everything else: a removed member never starts, joins or bootstraps again by itself.
        how = "stopping mariadbd cleanly (a graceful leave)" if local.running else "mariadbd stays stopped"
        return Decision(Action.LEAVE, f"this member was removed from the cluster ({local.removed}): {how}, "
                                      "and the agent exits")
    order = cluster.restore
    if order is not None and order.phase == STOPPING:
        # Before the new cluster starts from the backup, no member may serve the old one.
        what = f"galera-pilot restore of backup {order.backup} onto {order.member}"
        if local.running:
            return Decision(Action.RESTORE_STOP, f"{what}: stopping mariadbd cleanly; it stays stopped until the "
                                                 "restore starts")
        return Decision(Action.WAIT, f"{what} is being prepared: mariadbd stays stopped")
    if local.running:
        return decide_running(local, cluster)
    if local.crash_loop:
        return Decision(Action.HALT, f"not restarting mariadbd: {local.crash_loop}")
    if local.disk_full:
        # Not a crash and not a corrupt datadir: restarting into a full disk fails again, and a quarantine or
        # an SST would only make things worse. Wait; the agent measures again every cycle.
        return Decision(Action.WAIT, local.disk_full)
    if local.backoff_remaining > 0:
        return Decision(Action.WAIT, f"mariadbd exited unexpectedly; restarting in {local.backoff_remaining:.1f} s")

    # A live Primary Component always wins: join it, whatever else the DCS says (even with no
    # initialize record, e.g. a recreated DCS file, a second cluster must never be started beside it).
    peers = join_peers(cluster, local.name)
    if peers:
        if seed_usable(cluster, local):
            return Decision(Action.JOIN, f"joining the Primary Component at {', '.join(peers)} from the local "
                                         "seed datadir (IST, no full SST)", peers, copy_seed=True)
        quarantine = datadir_problem(cluster, local)
        if quarantine:
            return Decision(Action.JOIN, f"joining the Primary Component at {', '.join(peers)} with a full SST: "
                                         f"{quarantine}; the datadir is moved aside", peers, quarantine=quarantine)
        how = "with a full SST" if not local.has_data else "(IST if the donor's gcache allows, else SST)"
        return Decision(Action.JOIN, f"joining the Primary Component at {', '.join(peers)} {how}", peers)

    init = cluster.initialize
    if init is None:
        if order is not None:  # the restoring agent's lease lapsed: never a new empty cluster instead
            return Decision(Action.WAIT, f"galera-pilot restore of backup {order.backup} onto {order.member} has "
                                         "lost its initialize record (did that agent stop?): run `galera-pilot "
                                         "restore` again to resume it, or `--abort`")
        if local.has_data:
            return Decision(Action.WAIT, "this datadir holds data but the DCS knows no cluster; refusing to "
                                         "initialize a new cluster over it")
        return Decision(Action.INITIALIZE, "the DCS knows no cluster yet; trying to initialize it")
    if not init.done:
        if init.by == local.name and init.ordered_empty and init.restore_from:
            return Decision(Action.INITIALIZE, f"galera-pilot restore: a new cluster starts on this node from "
                                               f"backup {init.restore_from}; restoring it")
        if init.by == local.name and init.ordered_empty:
            return Decision(Action.INITIALIZE, "a person ordered this node to start a new cluster from nothing "
                            "(galera-pilot bootstrap --force --empty); initializing it")
        if init.by == local.name:
            return Decision(Action.INITIALIZE, "this node's own initialization was interrupted; resuming it")
        return Decision(Action.WAIT, f"{init.by} is initializing the cluster")

    # No Primary anywhere: a full outage (or the very first start after initialization).
    if not local.has_data:
        if seed_usable(cluster, local) and never_served(cluster):
            return Decision(Action.COPY_SEED, "copying the seed datadir while the Primary Component forms",
                            copy_seed=True)
        choice = choose_bootstrap_node(cluster, local, policy, now)
        inputs = {"positions": choice.positions, "high_water": held_most(cluster)}
        if choice.reason.startswith(DATA_GONE):
            return Decision(Action.WAIT, choice.reason, inputs=inputs | {"data_gone": True})
        outlook = f"waiting for {choice.chosen} to bootstrap" if choice.chosen else choice.reason
        return Decision(Action.WAIT, "the datadir is empty and there is no Primary Component to join (an empty "
                        f"datadir never starts a cluster): {outlook}", inputs=inputs)
    form_peers = formation_peers(cluster, local)
    if form_peers:
        return Decision(Action.FORM, f"forming the new cluster's first Primary Component together with "
                        f"{', '.join(form_peers)} from the seed (pc.recovery of a shared view, no state transfer)",
                        form_peers)
    if local.position is not None and local.position.needs_recovery:
        return Decision(Action.WAIT, "position unknown (seqno -1); recovering it with --wsrep-recover")
    holder = cluster.bootstrap_lock_holder
    if holder is not None and holder != local.name:
        return Decision(Action.WAIT, f"{holder} holds the bootstrap lock; waiting for its Primary Component")
    if cluster.forced_bootstrap is not None:
        if cluster.forced_bootstrap != local.name:
            return Decision(Action.WAIT, f"a person ordered {cluster.forced_bootstrap} to bootstrap; waiting for it")
        if local.position is None or local.position.unusable:
            why = local.position.unusable if local.position else "no position"
            return Decision(Action.WAIT, f"a person ordered this node to bootstrap, but its datadir is unusable "
                                         f"({why}); refusing")
        described = {n: {"uuid": p.uuid, "seqno": p.seqno, "unusable": p.unusable}
                     for n, p in reported_positions(cluster, local).items()}
        lost = shortfall(cluster, local.position)
        discards = (f"; it discards {lost} committed transactions (the cluster had reached {held_most(cluster)})"
                    if lost else "; transactions only other nodes had are discarded")
        return Decision(Action.BOOTSTRAP, "bootstrapping the cluster because a person ordered it "
                        f"(galera-pilot bootstrap --force){discards}",
                        inputs={"positions": described, "policy": "forced", "discards": lost})
    pc_peers = pc_recovery_peers(cluster, local)
    if pc_peers:
        assert local.position is not None and local.position.saved_view is not None
        view = local.position.saved_view
        described = {n: {"uuid": p.uuid, "seqno": p.seqno, "view_id": p.saved_view.view_id if p.saved_view else None}
                     for n, p in reported_positions(cluster, local).items()}
        return Decision(Action.PC_RECOVER, f"all {len(view.members)} members of the last Primary Component "
                        f"(view {view.view_id}) are back; letting Galera's pc.recovery re-form it, no bootstrap",
                        pc_peers, inputs={"positions": described, "view": view.view_id})
    choice = choose_bootstrap_node(cluster, local, policy, now)
    inputs = {"positions": choice.positions, "policy": policy.mode}
    if choice.chosen is None:
        return Decision(Action.WAIT, f"no Primary Component: {choice.reason}", inputs=inputs)
    if choice.chosen == local.name:
        return Decision(Action.BOOTSTRAP, f"bootstrapping the cluster: {choice.reason}", inputs=inputs)
    return Decision(Action.WAIT, f"waiting for {choice.chosen} to bootstrap: {choice.reason}", inputs=inputs)


def member_for_list(member: Member | None) -> str:
    """The state column of `list`, for a member that may be gone."""
    if member is None:
        return "unreachable"
    return member.state
