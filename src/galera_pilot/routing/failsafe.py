"""Keep the writer while the DCS is down, when every peer in our Primary Component agrees (pure).

Without it, a DCS outage takes writes down: the writer cannot renew its lease, so after `ttl - margin`
it stops answering `/writer` 200 and the writer endpoint has no server, although Galera itself needs
no DCS and keeps replicating. Patroni's `failsafe_mode` answers the same problem for PostgreSQL: the
leader keeps its role while it can reach every member over the REST API. Galera lets us name "every
member" precisely: the nodes of our own Primary Component.

The rule, and why it never gives two writers:

- Only a member that is Primary and Synced may take the writer lease (`writer.py`), and Galera allows
  one Primary Component at a time. So every member that could take the role is in our component.
- When renewals stall, the holder asks each other member of its component (`POST /failsafe`). A
  member grants the request only if it is not claiming the role itself and the requester is the writer
  it last saw; granting, it promises not to claim the role for `ttl` from the moment it received the
  request, whatever the DCS says meanwhile.
- Only when *every* other member of the component granted does the holder claim the role, until
  `sent + ttl - margin`: before any promise runs out, as a renewed lease would end before it expires.
- A member that does not answer (its agent hung, a partition) refuses by silence: the claim then runs
  out as it would have without failsafe. A component we cannot name completely (an address with no
  member record) refuses too. Once its claim has run out, the holder stops asking (until it renews
  through the DCS again), so the promises it collected run out too and a failover can follow, one
  lease later than without failsafe.

The promise and a claim exclude each other under one lock on the granting side (`WriterKeeper`), so a
grant cannot slip in between a member's lease acquisition and its claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from galera_pilot.cluster import Member
from galera_pilot.routing.health import Verdict

# Renewals normally succeed every WRITER_TICK (0.2 s); when none succeeded for this long, the holder
# starts asking its peers, well before its claim (ttl - margin after the last renewal) runs out.
FAILSAFE_AFTER = 0.5
# Each peer has this long to answer; a round must fit several times into the claim's remaining time.
ASK_TIMEOUT = 0.5
MAX_PROMISE = 60.0  # the largest writer lease a configuration allows


@dataclass(frozen=True)
class Peer:
    name: str
    api_url: str


@dataclass(frozen=True)
class Promise:
    """A grant to `writer`: this member claims no writer role until `until` (its monotonic clock)."""

    writer: str
    until: float

    def active(self, now: float) -> bool:
        return now < self.until


def component_peers(me: str, status: Mapping[str, str], members: Mapping[str, Member]) -> tuple[list[Peer], str]:
    """The other members of our Galera component, by their DCS records; or ([], why) if they cannot all
    be named. `status` is our mariadbd's wsrep status, `members` the DCS members from our last view.

    Galera lists each member's client address in `wsrep_incoming_addresses`; a member record carries the
    same address (the advertised one when they differ). Every listed address must name a member, and
    the list must be as long as the component, or someone could take the role without being asked.
    An empty entry is an arbitrator's (garbd has no client port).
    """
    try:
        size = int(status.get("wsrep_cluster_size", "0"))
    except ValueError:
        size = 0
    if size < 1 or status.get("wsrep_cluster_status") != "Primary":
        return [], "not in a Primary Component"
    # An arbitrator (garbd) is a member without a client address: an empty entry. It can never claim the
    # writer role, so it need not be asked; only the count of entries must match the component.
    entries = [a.strip() for a in status.get("wsrep_incoming_addresses", "").split(",")]
    listed = [a for a in entries if a]
    if len(entries) != size or not listed:
        return [], f"wsrep_incoming_addresses names {len(listed)} of the component's {size} members"
    by_address = {f"{m.address}:{m.client_port}": m for m in members.values()}
    peers: list[Peer] = []
    seen_me = False
    for address in listed:
        member = by_address.get(address)
        if member is None:
            return [], f"no member record has the address {address} of a node in our component"
        if member.name == me:
            seen_me = True
        elif not member.api_url:
            return [], f"member {member.name} publishes no REST API address"
        else:
            peers.append(Peer(member.name, member.api_url))
    if not seen_me:
        return [], "our own address is not among the component's wsrep_incoming_addresses"
    return sorted(peers, key=lambda p: p.name), ""


def grant(me: str, requester: str, claiming: bool, last_writer: str | None) -> Verdict:
    """Whether to promise `requester` not to claim the writer role (see the module docstring)."""
    if requester == me:
        return Verdict(False, "a member does not grant itself")
    if claiming:
        return Verdict(False, f"{me} holds the writer role itself")
    if last_writer != requester:
        return Verdict(False, f"the writer {me} last saw is {last_writer or 'nobody'}, not {requester}")
    return Verdict(True, f"promised {requester} not to take the writer role")


def promise_length(requested_ttl: object, own_ttl: float) -> float | None:
    """How long to promise: the longer of the requester's lease and ours (the requester's claim is
    bounded by its own lease); None for a value that is not a sane lease length."""
    if isinstance(requested_ttl, bool) or not isinstance(requested_ttl, int | float):
        return None
    if not 0 < requested_ttl <= MAX_PROMISE:
        return None
    return max(float(requested_ttl), own_ttl)


def should_ask(holder_last_seen: str | None, me: str, healthy: bool, maintenance: bool, claiming: bool,
               since_renewal: float) -> bool:
    """Ask the peers when we were the writer at our last look, may keep the role, still claim it, and
    renewals stalled. Once the claim has run out we stop: every request renews the promises of the
    peers that grant it, so asking on (with one peer silent) would keep them from ever taking over."""
    return (holder_last_seen == me and healthy and not maintenance and claiming
            and since_renewal >= FAILSAFE_AFTER)
