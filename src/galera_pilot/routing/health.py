"""May this node serve clients? Pure judgement behind `/health`, `/read` and `/writer`.

HAProxy asks every agent several times a second and routes by the answer, so the answer must be fast
and must never come from a live query (a hung mariadbd would hang the check). It comes from the
observer's last look at mariadbd (`LiveStatus`), taken every OBSERVE_INTERVAL with a short timeout.
A look older than STALE_AFTER means the observer could not get an answer (a SIGSTOPped or overloaded
server): the node is then judged unhealthy, which takes it out of both endpoints within about a second.
Nothing here touches a socket, a process or a clock: `now` is passed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# The observer looks this often, and gives a query this long before it counts as no answer. An answer
# older than STALE_AFTER is no answer: a hung server is out of the endpoints within about a second.
OBSERVE_INTERVAL = 0.25
QUERY_TIMEOUT = 0.5
STALE_AFTER = 1.0


@dataclass(frozen=True)
class LiveStatus:
    """The observer's last look at the local mariadbd: when (monotonic), and its wsrep_% status
    (empty when it did not answer: stopped, starting, or hung)."""

    at: float = 0.0
    status: Mapping[str, str] = field(default_factory=dict)

    @property
    def observed(self) -> bool:
        """False until the observer's first look (a failed look counts: it is a judgement too)."""
        return self.at > 0

    @property
    def answered(self) -> bool:
        return bool(self.status)

    @property
    def state(self) -> str:
        return self.status.get("wsrep_local_state_comment", "")

    @property
    def cluster_status(self) -> str:
        return self.status.get("wsrep_cluster_status", "")

    def number(self, key: str, default: float = 0.0) -> float:
        try:
            return float(self.status.get(key, default))
        except ValueError:
            return default

    def age(self, now: float) -> float:
        return now - self.at


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


def health(live: LiveStatus, now: float) -> Verdict:
    """`/health`: mariadbd answers, is in the Primary Component and Synced, and the look is recent."""
    if not live.observed:
        return Verdict(False, "mariadbd not observed yet")
    if live.age(now) > STALE_AFTER:
        return Verdict(False, f"no answer from mariadbd for {live.age(now):.1f} s")
    if not live.answered:
        return Verdict(False, "mariadbd does not answer (stopped or starting)")
    if live.cluster_status != "Primary":
        return Verdict(False, f"not in the Primary Component ({live.cluster_status or 'unknown'})")
    if live.state != "Synced":
        return Verdict(False, f"not Synced ({live.state or 'unknown'})")
    return Verdict(True, "Primary and Synced")


def may_read(live: LiveStatus, now: float, maintenance: bool, donor_reads: bool = False,
             max_queue: int | None = None) -> Verdict:
    """`/read`: Primary and Synced (or Donor/Desynced where `donor_reads` allows), not drained, and
    with at most `max_queue` write-sets waiting to be applied (a lagging node serves stale reads)."""
    if maintenance:
        return Verdict(False, "in maintenance")
    verdict = health(live, now)
    if not verdict:
        donor = live.state.startswith("Donor")
        if not (donor_reads and donor and live.cluster_status == "Primary" and live.age(now) <= STALE_AFTER):
            return verdict
    queue = int(live.number("wsrep_local_recv_queue"))
    if max_queue is not None and queue > max_queue:
        return Verdict(False, f"receive queue {queue} > max_queue {max_queue}")
    return Verdict(True, "may serve reads")


def may_keep_writer(live: LiveStatus, now: float) -> Verdict:
    """A writer keeps its role while Primary and Synced *or Donor*, and while it catches up right after
    donating (Joined, still ready for queries): every join of a node makes some member a donor for a
    moment (even an IST runs through the SST script here), and moving the writer each time would cut
    every client's session for nothing. Writes on a donor are safe; it is still Primary. A holder is
    Joined only after donating (it was Synced when it took the role; leaving the component first makes
    it non-Primary, which ends its role). Becoming the writer needs Synced (`health`)."""
    verdict = health(live, now)
    if verdict or live.age(now) > STALE_AFTER or live.cluster_status != "Primary":
        return verdict
    if live.state.startswith("Donor"):
        return Verdict(True, "Primary, serving a state transfer")
    if live.state == "Joined" and live.status.get("wsrep_ready") == "ON":
        return Verdict(True, "Primary, catching up after serving a state transfer")
    return verdict


def is_writer(live: LiveStatus, now: float, maintenance: bool, lease_claim_until: float) -> Verdict:
    """`/writer`: this agent holds the writer lease (its own clock says the claim has not run out) and
    may keep it. `lease_claim_until` ends before the lease can expire in the DCS (see writer.py)."""
    if now >= lease_claim_until:
        return Verdict(False, "does not hold the writer lease")
    if maintenance:
        return Verdict(False, "in maintenance")
    verdict = may_keep_writer(live, now)
    if not verdict:
        return verdict
    return Verdict(True, "holds the writer lease")


def parse_max_queue(query: str) -> int | None:
    """`max_queue=N` from a query string; None when absent or not a non-negative integer."""
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "max_queue" and value.isdigit():
            return int(value)
    return None
