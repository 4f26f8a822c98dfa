"""What an arbitrator's agent does this cycle: pure, over the snapshot and what garbd said.

garbd holds no data, so it can never bootstrap: it starts only when a Primary Component exists to join,
through that component's members. Everything else is Galera's: once running, garbd follows the group
by itself (a partition, a healed link, a new view), and the agent only restarts it when it exits.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from galera_pilot.arbitrator.garbd_log import GarbdView
from galera_pilot.cluster import Cluster


class ArbitratorAction(Enum):
    NONE = "none"
    START = "start"  # start garbd, joining `peers`
    LEAVE = "leave"  # `galera-pilot remove`: stop garbd for good and exit


@dataclass(frozen=True)
class ArbitratorDecision:
    action: ArbitratorAction
    reason: str
    peers: tuple[str, ...] = ()


def primary_peers(cluster: Cluster) -> tuple[str, ...]:
    """The gcomm addresses of the data members in a Primary Component: what garbd may join."""
    return tuple(sorted(m.gcomm_address for m in cluster.primary_members))


def recovering_peers(cluster: Cluster, saved_instance: str) -> tuple[str, ...]:
    """The data members running towards pc.recovery of a saved view that names this arbitrator's saved
    instance (agent/decisions.pc_recovery_peers): the component re-forms only once garbd meets them too."""
    if not saved_instance:
        return ()
    return tuple(sorted(m.gcomm_address for m in cluster.members.values()
                        if m.running and not m.is_primary and m.position is not None
                        and m.position.saved_view is not None and saved_instance in m.position.saved_view.members))


def decide_arbitrator(me: str, running: bool, view: GarbdView, cluster: Cluster,
                      backoff_remaining: float, saved_instance: str = "") -> ArbitratorDecision:
    """`saved_instance`: the gcomm UUID garbd's gvwstate.dat keeps ("" without one)."""
    if me in cluster.removed:
        return ArbitratorDecision(ArbitratorAction.LEAVE, f"galera-pilot remove takes the arbitrator {me} out of the "
                                  "cluster: stopping garbd (a graceful leave) and exiting")
    if cluster.pause is not None:
        return ArbitratorDecision(ArbitratorAction.NONE, "the cluster is paused: garbd is left as it is "
                                  f"({'running' if running else 'not running'})")
    if running:
        if view.primary:
            return ArbitratorDecision(ArbitratorAction.NONE, f"garbd is running, in the Primary Component of "
                                      f"{view.size} members ({view.state or 'state not logged yet'})")
        return ArbitratorDecision(ArbitratorAction.NONE, f"garbd is running but not in a Primary Component "
                                  f"({view.state or 'connecting'}); Galera re-forms the component by itself")
    peers = primary_peers(cluster)
    recovering = () if peers else recovering_peers(cluster, saved_instance)
    if not peers and not recovering:
        return ArbitratorDecision(ArbitratorAction.NONE, "waiting for a Primary Component to join: an arbitrator "
                                  "holds no data and never bootstraps a cluster")
    if backoff_remaining > 0:
        return ArbitratorDecision(ArbitratorAction.NONE, f"garbd exited; starting it again in "
                                  f"{backoff_remaining:.0f} s")
    if recovering:
        return ArbitratorDecision(ArbitratorAction.START, f"starting garbd with its saved view ({saved_instance}): "
                                  "the data members wait for pc.recovery of the last Primary Component, which "
                                  "names it", recovering)
    names = ", ".join(sorted(m.name for m in cluster.primary_members))
    return ArbitratorDecision(ArbitratorAction.START, f"starting garbd: it joins the Primary Component through "
                              f"{names}", peers)
