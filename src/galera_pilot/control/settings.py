"""`show-config`, `edit-config` and `reload`: the cluster-wide settings, checked before they are stored.

An edit is checked twice before anything is written: by the rules that need no server (settings/edits.py)
and by a running member against its own server (`POST /settings/check`: is it a variable, of what type,
may it change at runtime). Every error is listed at once; nothing is stored unless all pass. After the
write, the agents follow at their next cycle (agent/settings_keeper.py), and the verb waits for their word.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from galera_pilot.cluster import Cluster, ClusterSettings, Member
from galera_pilot.dcs.base import DCS
from galera_pilot.dcs.settings import read_settings, store_settings
from galera_pilot.errors import ConfigError, PilotError
from galera_pilot.settings.edits import changes, problems, server_checked, touched
from galera_pilot.tls import http

CHECK_TIMEOUT = 10.0


@dataclass(frozen=True)
class Proposal:
    old: ClusterSettings | None
    new: ClusterSettings
    version: int | None  # the DCS version `old` was read at (compare-and-set)
    lines: tuple[str, ...]  # what changes, for the person to confirm
    at_once: tuple[str, ...] = ()  # variables SET GLOBAL applies on running servers
    restart: tuple[str, ...] = ()  # what waits for `restart --pending`
    checked_on: str = ""  # the member whose server judged the variables


@dataclass
class Followed:
    """How the members took a revision, once each has said (member name -> its report)."""

    revision: int
    members: dict[str, Member] = field(default_factory=dict)
    silent: tuple[str, ...] = ()  # running members that did not report the revision in time


def propose(dcs: DCS, build: Callable[[ClusterSettings | None], ClusterSettings],
            check: Callable[[Member, dict[str, str], dict[str, str]], dict] | None = None) -> Proposal:
    """The edit `build` makes of the stored record, checked; a ConfigError lists every problem."""
    old, version = read_settings(dcs)
    new = build(old)
    found = problems(new)
    if found:
        raise ConfigError("nothing was stored:\n  " + "\n  ".join(found))
    # The server judges what this edit sets or changes (the rest was judged when it was stored), so an edit
    # that touches no variable, e.g. updates.policy=never, needs no running server.
    edited_names = touched(old, new)
    variables, options = server_checked(new)
    variables = {k: v for k, v in variables.items() if k in edited_names}
    options = {k: v for k, v in options.items() if k in edited_names}
    at_once: tuple[str, ...] = ()
    restart: tuple[str, ...] = ()
    checked_on = ""
    if variables or options:
        judged, checked_on = _judged(dcs.snapshot(), variables, options, check or ask_member)
        if judged["errors"]:
            raise ConfigError("nothing was stored:\n  " + "\n  ".join(judged["errors"]))
        at_once, restart = tuple(judged["at_once"]), tuple(judged["restart"])
    # The mariadb section's own fields that render provider options (gcache_size …) take a restart too.
    restart += tuple(sorted(edited_names & set(new.mariadb) - set(variables)))
    return Proposal(old, new, version, tuple(changes(old, new)), at_once, restart, checked_on)


def _judged(snapshot: Cluster, variables: dict[str, str], options: dict[str, str],
            check: Callable[[Member, dict[str, str], dict[str, str]], dict]) -> tuple[dict, str]:
    """Ask the Synced members in turn (the writer first): the first that answers judges."""
    synced = sorted((m for m in snapshot.members.values() if m.is_synced and m.api_url),
                    key=lambda m: (m.name != snapshot.writer, m.name))
    reasons = []
    for member in synced:
        try:
            return check(member, variables, options), member.name
        except PilotError as error:
            reasons.append(f"{member.name}: {error}")
    why = "; ".join(reasons) if reasons else "no member is Synced"
    raise PilotError(f"no running server could check the settings ({why}); nothing was stored")


def ask_member(member: Member, variables: dict[str, str], options: dict[str, str]) -> dict:
    body = json.dumps({"mariadb": variables, "galera": options}).encode()
    status, answer = http.api().request("POST", f"{member.api_url}/settings/check", body, timeout=CHECK_TIMEOUT,
                                        authorized=True)
    try:
        document = json.loads(answer)
    except ValueError:
        document = {}
    if status != 200:
        raise PilotError(document.get("error") or f"HTTP {status}")
    return document


def store(dcs: DCS, proposal: Proposal) -> None:
    if proposal.new == proposal.old:
        return
    if not store_settings(dcs, proposal.new, proposal.version):
        latest, _ = read_settings(dcs)
        who = f"revision {latest.revision} by {latest.by}" if latest else "it was removed"
        raise PilotError(f"the settings changed while this edit was prepared ({who}); nothing was stored, run "
                         "edit-config again")


def wait_followed(dcs: DCS, revision: int, timeout: float, poll: float = 0.2) -> Followed:
    """Wait until every running member reports `revision` (settings_revision), or `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        members = dcs.routing_view().members
        running = {name: m for name, m in members.items() if m.running}
        behind = tuple(sorted(name for name, m in running.items() if m.settings_revision < revision))
        if not behind or time.monotonic() >= deadline:
            return Followed(revision, {n: m for n, m in running.items() if n not in behind}, behind)
        time.sleep(poll)


def pending_members(snapshot: Cluster) -> tuple[str, ...]:
    """`restart --pending`: the members whose running server lacks settings only a restart applies."""
    return tuple(sorted(name for name, m in snapshot.members.items() if m.pending_restart))


def reload_members(snapshot: Cluster, names: tuple[str, ...]) -> list[tuple[str, bool, str]]:
    """`POST /reload` to each named member (all when none): (name, reloaded, what it said)."""
    unknown = sorted(set(names) - set(snapshot.members))
    if unknown:
        raise PilotError(f"no running member named {unknown[0]!r} (members: {', '.join(sorted(snapshot.members))})")
    results = []
    for name in names or tuple(sorted(snapshot.members)):
        member = snapshot.members[name]
        try:
            status, answer = http.api().request("POST", f"{member.api_url}/reload", b"{}", timeout=5.0,
                                                authorized=True)
            document = json.loads(answer or b"{}")
        except (PilotError, ValueError) as error:
            results.append((name, False, str(error)))
            continue
        if status == 200:
            changed = document.get("changed") or []
            results.append((name, True, f"reloaded ({', '.join(changed)} changed)" if changed
                            else "reloaded (nothing changed)"))
        else:
            results.append((name, False, document.get("error") or f"HTTP {status}"))
    return results
