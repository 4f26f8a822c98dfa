"""What `list` shows: one row per member, from the DCS, or from the members themselves when it is down.

While the DCS answers, its snapshot is the truth (every live member's last report, the roster of those
that ever joined, the writer, the maintenance marks). While it does not, the members' REST APIs still
answer from the agents' own observation: each is asked at its last known address (the folder or the
configuration names some; every `/status` names the peers its agent last saw in the DCS), so one
reachable member is enough to find the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from galera_pilot.cluster import Cluster, Member
from galera_pilot.control.target import ClusterTarget, DCSUnreachable, KnownMember
from galera_pilot.errors import PilotError
from galera_pilot.lifecycle.upgrade import pending_upgrade
from galera_pilot.mariadb.disk import Usage, describe
from galera_pilot.mariadb.version import short
from galera_pilot.routing.freshness import skew_warning
from galera_pilot.routing.peers import fetch_status

LIST_KEYS = ("name", "address", "role", "state", "cluster_status", "cluster_size", "cluster_uuid", "seqno",
             "version", "disk", "cert", "activity")

Row = dict[str, object]
StatusFetch = Callable[[str], dict[str, Any] | None]


def rows_from_snapshot(target: ClusterTarget, snapshot: Cluster) -> list[Row]:
    names = sorted({*target.known, *snapshot.roster, *snapshot.members})
    if target.embedded is not None:  # the folder's own order (node1, node2, ..., node10)
        names = list(dict.fromkeys([*target.embedded.meta["nodes"], *names]))
    rows = []
    for name in names:
        member = snapshot.members.get(name)
        role = "writer" if snapshot.writer == name else ("maintenance" if name in snapshot.maintenance else "")
        if member is not None:
            rows.append(_member_row(member, role))
            continue
        roster = snapshot.roster.get(name)
        known = target.known.get(name)
        address = known.address if known and known.address else (roster.address if roster else "")
        if target.embedded is not None and name in target.embedded.meta["nodes"]:
            state = "stopped" if target.embedded.node(name).agent_pid() is None else "unreachable"
        else:
            state = "stopped" if roster and roster.stopped_gracefully else "unreachable"
        rows.append(_absent_row(name, address, role, state,
                                "agent not running" if state == "stopped" else "no heartbeat in the DCS"))
    return rows + arbitrator_rows(target, snapshot)


def arbitrator_rows(target: ClusterTarget, snapshot: Cluster) -> list[Row]:
    """garbd arbitrators: role `arbitrator`, garbd's own state, its component; no data, so no seqno."""
    names = list(snapshot.arbitrators)
    if target.embedded is not None:
        names = list(dict.fromkeys([*target.embedded.arbitrator_names, *names]))
    rows = []
    for name in names:
        report = snapshot.arbitrators.get(name)
        if report is None:
            address = target.embedded.node(name).config.address if target.embedded is not None else ""
            rows.append(_absent_row(name, address, "arbitrator", "stopped", "agent not running"))
            continue
        activity = f"TLS: {report.tls_warning}! {report.activity}" if report.tls_warning else report.activity
        rows.append({**_absent_row(name, report.address, "arbitrator", report.state, activity),
                     "cert": cert_column(report.tls_not_after), "tls_not_after": report.tls_not_after,
                     "cluster_status": "Primary" if report.primary else ("non-Primary" if report.running else ""),
                     "cluster_size": report.component_size, "weight": report.weight})
    return rows


def version_column(member: Member) -> str:
    """The running version, and `pending upgrade` when the installed binary is newer (lifecycle/upgrade.py)."""
    notes = [f"pending upgrade to {short(member.installed_version)}"] if pending_upgrade(
        member.version, member.installed_version) else []
    if member.pending_restart:
        notes.append("pending restart")
    return f"{short(member.version)} ({', '.join(notes)})" if notes else short(member.version)


def _member_row(member: Member, role: str) -> Row:
    seqno = member.seqno if member.running else (member.position.seqno if member.position else -1)
    return {"name": member.name, "address": member.address, "role": role, "state": member.state,
            "cluster_status": member.cluster_status, "cluster_size": member.cluster_size,
            "cluster_uuid": member.cluster_uuid, "seqno": seqno, "version": version_column(member),
            "server_version": member.version, "installed_version": member.installed_version,
            "paused": member.paused, "pending_restart": list(member.pending_restart),
            "disk": disk_column(member.disk),
            "cert": cert_column(member.tls_not_after), "activity": with_warnings(member),
            "tls_not_after": member.tls_not_after}


def _absent_row(name: str, address: str, role: str, state: str, activity: str) -> Row:
    return {"name": name, "address": address, "role": role, "state": state, "cluster_status": "",
            "cluster_size": 0, "cluster_uuid": "", "seqno": -1, "version": "", "disk": "", "cert": "",
            "activity": activity}


@dataclass
class ApiView:
    """What the members' REST APIs said: every member asked, where it is, and the answers of those that
    answered (by name)."""

    members: dict[str, KnownMember] = field(default_factory=dict)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)

    @property
    def answered(self) -> list[str]:
        return sorted(self.statuses)

    @property
    def silent(self) -> list[str]:
        return sorted(set(self.members) - set(self.statuses))


def _status(api_url: str) -> dict[str, Any] | None:
    return fetch_status(api_url)[0]


def _where(name: str, data: dict[str, Any], api_url: str) -> KnownMember:
    """A member's location from a /status document (its own, or a peer entry in another's)."""
    return KnownMember(name, api_url, str(data.get("address") or ""), int(data.get("client_port") or 3306))


def ask_members(known: dict[str, KnownMember], fetch: StatusFetch = _status) -> ApiView:
    """Ask every known member's /status (in parallel), then the peers their answers name that were not
    known yet (one more round: every agent names all the others it saw)."""
    view = ApiView(members=dict(known))
    pending = dict(known)
    while pending:
        with ThreadPoolExecutor(max_workers=min(8, len(pending))) as pool:
            answers = dict(zip(pending, pool.map(lambda m: fetch(m.api_url), pending.values()), strict=True))
        learned: dict[str, KnownMember] = {}
        for name, document in answers.items():
            if document is None:
                continue
            view.statuses[name] = document
            view.members[name] = _where(name, document, pending[name].api_url)  # its own word wins
            for peer, where in (document.get("peers") or {}).items():
                if (peer not in view.members and peer not in learned and isinstance(where, dict)
                        and where.get("api_url")):
                    learned[peer] = _where(peer, where, str(where["api_url"]))
        view.members |= learned
        pending = learned
    for name in sorted(view.members):
        document = view.statuses.get(name)
        if document is not None:
            routing = document.get("routing") or {}
            role = "writer" if routing.get("writer") else ("maintenance" if routing.get("maintenance") else "")
            view.rows.append(_member_row(Member.from_dict({**document, "name": name}), role))
        else:
            where = view.members[name]
            view.rows.append(_absent_row(name, where.address, "", "unreachable",
                                         f"its REST API did not answer ({where.api_url})"))
    return view


def outage_heading(target: ClusterTarget, why: str, view: ApiView) -> str:
    """The first line of `list` while the DCS is down: that it is, and what is shown instead."""
    if not view.rows:
        return (f"{why}; no member address is known here to ask instead (give -c with a node configuration or "
                "members:, or --dir)")
    answered = ", ".join(view.answered) or "none"
    return (f"{why}; showing what the members' REST APIs say at their last known addresses (answered: "
            f"{answered}); the writer role shown is each agent's own view")


def member_address(target: ClusterTarget, name: str) -> tuple[str, int]:
    """Where to connect to member `name`: from this host's own knowledge first (it needs no DCS), then
    the DCS's record, then, while the DCS is unreachable, whatever the members' /status say."""
    known = target.known.get(name)
    if known is not None and known.address:
        return known.address, known.client_port
    try:
        snapshot: Cluster | None = target.snapshot()
    except DCSUnreachable:
        snapshot = None
    if snapshot is not None and name in snapshot.members:
        member = snapshot.members[name]
        return member.address, member.client_port
    if snapshot is None:
        found = ask_members(target.known).members.get(name)
        if found is not None and found.address:
            return found.address, found.client_port
    names = sorted({*target.known, *(snapshot.members if snapshot else ())})
    raise PilotError(f"no member named {name!r} is known for {target.source} (known: {', '.join(names) or 'none'})")


def disk_column(disk: dict[str, dict[str, object]]) -> str:
    """`list`'s disk column: the datadir's filesystem, 'LOW' first when under a warning threshold, and
    the other locations (log, base, disk.locations) only when they are low."""
    parts = []
    for location in sorted(disk, key=lambda name: name != "data"):
        entry = disk.get(location)
        if not entry:
            continue
        usage = Usage.from_dict(entry)
        low = bool(entry.get("warning"))
        if location == "data" or low:
            text = f"{describe(usage)} ({usage.free_percent:.0f}%)"
            parts.append(("LOW " if low else "") + (text if location == "data" else f"{location}: {text}"))
    return "; ".join(parts)


def cert_column(not_after: str) -> str:
    """Days until the node's certificate expires ("" without TLS)."""
    if not not_after:
        return ""
    try:
        left = datetime.fromisoformat(not_after) - datetime.now(UTC)
    except ValueError:
        return "?"
    return "expired" if left.total_seconds() <= 0 else f"{left.days} d"


def with_warnings(member: Member) -> str:
    """The activity, prefixed with what needs a person: a skewed clock, a certificate near expiry or a new
    bundle that was refused."""
    activity = with_skew(member.activity, member.clock_skew)
    if member.settings_error:
        activity = f"settings: {member.settings_error}! {activity}"
    return f"TLS: {member.tls_warning}! {activity}" if member.tls_warning else activity


def with_skew(activity: str, skew: float | None) -> str:
    """The activity, prefixed with a warning when the member's host reports its clock skewed."""
    if skew is None or not skew_warning(skew):
        return activity
    return f"clock {abs(skew):.1f} s {'ahead' if skew > 0 else 'behind'}! {activity}"
