"""The soak's fault schedule, pure and seeded: the same seed gives the same faults, in the same order,
against the same roles, whatever the machine.

Faults come one after another: the next is injected once the cluster has recovered from the last (or
its recovery bound ran out), after a random pause, so every fault meets a whole cluster and the time to
heal of each is its own. Overlap is drawn where it makes sense: an agent killed while another node is
already down (the agent must come back into a cluster that is itself recovering).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# kind -> how long it lasts (s) before it is healed (0: a kill, healed by the agents themselves)
DURATIONS = {
    "kill-node": 0.0,  # kill -9 of a non-writer's mariadbd
    "kill-writer": 0.0,  # kill -9 of the writer's mariadbd
    "stop-node": 8.0,  # SIGSTOP of a mariadbd, longer than Galera's suspect timeout (5 s), then SIGCONT
    "kill-agent": 3.0,  # SIGKILL of an agent; `up` starts it again after this long
    "partition-node": 10.0,  # a non-writer cut off from its peers (iptables), then healed
    "partition-writer": 10.0,  # the writer cut off
    "full-outage": 2.0,  # every agent and mariadbd killed; `up` after this long
    "fill-disk": 15.0,  # the small filesystem of one node's datadir filled to the last byte, then freed
    "pause-dcs": 10.0,  # etcd SIGSTOPped, then SIGCONT (etcd only)
    "kill-dcs": 5.0,  # etcd killed, then started again on its data (etcd only)
}
EMBEDDED = ("kill-node", "kill-writer", "stop-node", "kill-agent", "partition-node", "partition-writer",
            "full-outage", "fill-disk")
ETCD_ONLY = ("pause-dcs", "kill-dcs")
# How often each kind is drawn (a full outage is the slowest to heal: rarer).
WEIGHTS = {"kill-node": 3, "kill-writer": 3, "stop-node": 2, "kill-agent": 2, "partition-node": 2,
           "partition-writer": 2, "full-outage": 1, "fill-disk": 1, "pause-dcs": 1, "kill-dcs": 1}
OVERLAP_SHARE = 0.2  # of node faults, those that get an agent kill of another node on top


@dataclass(frozen=True)
class PlannedFault:
    kind: str
    pause_before: float  # seconds to wait after the cluster recovered from the previous fault
    duration: float
    pick: int  # chooses among the candidates of its role (a non-writer, an agent), modulo their number
    overlap_agent: bool = False  # also kill another node's agent, 1 s in


def plan(seed: int, count: int, kinds: tuple[str, ...] = EMBEDDED) -> list[PlannedFault]:
    """`count` faults, the same for the same seed: every kind of `kinds` once in a seeded order, then
    weighted draws."""
    unknown = set(kinds) - set(DURATIONS)
    if unknown:
        raise ValueError(f"unknown fault kinds: {', '.join(sorted(unknown))}")
    chooser = random.Random(seed)
    weights = [WEIGHTS[k] for k in kinds]
    first_round = chooser.sample(kinds, len(kinds))  # every kind once, first: a short soak meets them all
    faults = []
    for index in range(count):
        kind = first_round[index] if index < len(first_round) else chooser.choices(kinds, weights)[0]
        overlap = kind in ("kill-node", "stop-node", "partition-node") and chooser.random() < OVERLAP_SHARE
        faults.append(PlannedFault(kind, round(chooser.uniform(1.0, 4.0), 2), DURATIONS[kind],
                                   chooser.randrange(1 << 16), overlap))
    return faults
