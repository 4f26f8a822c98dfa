"""The coordination store (DCS) contract.

A backend implements a handful of atomic key/value primitives (create-if-absent, compare-and-set on a
version, put, delete, list by prefix, all with optional TTLs). Everything galera-pilot needs — the
`initialize` key, member heartbeats, the bootstrap lock, the decision history — is built from those
primitives here, once, so SQLite and etcd cannot drift apart in meaning.

Keys live under `/galera-pilot/<cluster_name>/`:
  initialize          who initialized the cluster and its Galera cluster UUID (no TTL once done)
  members/<name>      a live member's last report (TTL: the member's heartbeat)
  roster/<name>       every member that ever joined (no TTL): whom a full recovery waits for
  bootstrap           the bootstrap lock (TTL lease): only its holder may bootstrap
  join                the join lease: nodes enter the group one at a time (simultaneous gcomm joins
                      were measured to take ~7 s to merge, one after the other ~2 s each)
  force_bootstrap     a person's order that one member bootstrap without waiting (TTL lease)
  seed                where the initializer's clean seed datadir is, for joiners on the same host
  writer              the writer lease (short TTL): the one member whose /writer answers 200
  switchover          a person's request that the writer move (TTL lease)
  maintenance/<name>  a member drained by a person: its /read and /writer answer 503 (no TTL)
  high_water          the highest committed seqno any member ever reported for the cluster's UUID
                      (no TTL; only raised, except by a person's forced bootstrap)
  history/<id>        every bootstrap / recovery decision with its inputs and reason
  pause, roll, roll_driver, restart/<name>
                      the lifecycle's records (cluster.py, written by dcs/lifecycle.py)
  config              the cluster-wide settings (`galera-pilot edit-config`; dcs/settings.py)
  removed/<name>      a member taken out for good (`galera-pilot remove`; dcs/membership.py; no TTL)
  backup              the backup lock: one backup at a time (dcs/backup.py), with a TTL
  backup_request      the last backup asked of an agent, with its progress (backup/request.py; no TTL)
  restore             a person's restore of the cluster from a backup (backup/restore_order.py; no TTL)
  arbitrators/<name>  a garbd arbitrator's report (cluster.py: ArbitratorReport), with a TTL

Watches: `watch()` reports which keys changed, so an agent runs its cycle (or its writer election) at once
instead of at its next poll. A watch only shortens waits: every caller still polls, so a change reported
late, twice or never costs at most one poll interval, never a wrong decision.
"""

from __future__ import annotations

import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from galera_pilot.backup.request import BACKUP_REQUEST, BackupRequest
from galera_pilot.backup.restore_order import RESTORE, RestoreOrder
from galera_pilot.cluster import (
    ARBITRATORS,
    ArbitratorReport,
    Cluster,
    ClusterSettings,
    HighWater,
    HistoryEvent,
    InitializeRecord,
    Member,
    Pause,
    Removal,
    RestartRequest,
    Roll,
    RosterEntry,
    SeedRecord,
    Switchover,
)
from galera_pilot.dcs import history as history_rules
from galera_pilot.errors import PilotError

WATCH_POLL = 0.1  # the polling watch's interval (SQLite: one small local query)
HIGH_WATER_ATTEMPTS = 32  # more than the members that may raise the mark at the same moment
ROOT = "/galera-pilot/"  # every cluster's keys live under ROOT + its name + "/"
HISTORY_PREFIX = "history/"
RESYNC = ""  # the key of a Change that means "anything may have changed" (a watch lost track)


@dataclass(frozen=True)
class KV:
    key: str
    value: str
    version: int


@dataclass(frozen=True)
class Change:
    """One key (relative to the cluster prefix) written (`value`) or deleted or expired (`value` None)."""

    key: str
    value: str | None


ChangeCallback = Callable[[list[Change]], None]
Listing = list[KV]


class DCS(ABC):
    """Atomic key/value primitives over relative keys; subclasses add the namespace themselves."""

    def __init__(self, cluster_name: str) -> None:
        self.cluster_name = cluster_name
        self.prefix = f"{ROOT}{cluster_name}/"

    # ---- primitives a backend implements -------------------------------------------------------------
    @abstractmethod
    def get(self, key: str) -> KV | None:
        """The live (not expired) value of key."""

    def list_outside(self, skip: str) -> list[KV]:
        """Every live key of the cluster except those starting with `skip`, sorted by key, read at one
        moment: the snapshot without the history (which grows with the cluster's age). Backends answer
        it without reading the skipped keys at all."""
        return [kv for kv in self.list("") if not kv.key.startswith(skip)]

    @abstractmethod
    def list(self, prefix: str = "") -> list[KV]:
        """Every live key starting with prefix, sorted by key."""

    @abstractmethod
    def cluster_names(self) -> tuple[str, ...]:
        """The names of every cluster this store holds keys for (any cluster, not only ours): what an
        operator who mistyped a cluster name is shown."""

    @abstractmethod
    def create(self, key: str, value: str, ttl: float | None = None) -> bool:
        """Atomically create key if it is absent or expired; False if it exists."""

    @abstractmethod
    def compare_and_set(self, key: str, value: str, version: int, ttl: float | None = None) -> bool:
        """Atomically replace key if its live version is still `version`; False otherwise."""

    @abstractmethod
    def put(self, key: str, value: str, ttl: float | None = None) -> None:
        """Unconditionally write key."""

    @abstractmethod
    def delete(self, key: str, version: int | None = None) -> bool:
        """Delete key (only at `version` when given); False if absent or the version moved."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def watch(self, on_change: ChangeCallback, stop: threading.Event) -> None:
        """Call `on_change` with every batch of changes under the cluster prefix (history excluded) until
        `stop` is set (never after). Blocks: run it in a thread of its own; it may linger a few seconds
        after the stop, waiting on the store. While the store is unreachable nothing is
        reported; what changed meanwhile is reported once it answers again.

        This default compares listings every WATCH_POLL s: right for the embedded SQLite file, where a
        listing is one local query. Backends with a native watch (etcd) override it."""
        self._watch_listings(on_change, stop, lambda: self.list(""), lambda: True)

    def _watch_listings(self, on_change: ChangeCallback, stop: threading.Event, listing: Callable[[], Listing],
                        may_have_changed: Callable[[], bool]) -> None:
        """Compare successive listings every WATCH_POLL s, listing only when `may_have_changed()` says so."""
        seen: dict[str, KV] | None = None
        while not stop.is_set():
            try:
                current = ({kv.key: kv for kv in listing() if not kv.key.startswith("history/")}
                           if seen is None or may_have_changed() else seen)
            except PilotError:
                current = None
            if current is not None:
                if seen is not None and current is not seen:
                    changes = [Change(key, kv.value) for key, kv in current.items()
                               if key not in seen or seen[key].version != kv.version]
                    changes += [Change(key, None) for key in sorted(seen.keys() - current.keys())]
                    if changes and not stop.is_set():
                        on_change(changes)
                seen = current
            stop.wait(WATCH_POLL)

    # ---- galera-pilot's records, built on the primitives ----------------------------------------------
    def snapshot(self, with_history: bool = True) -> Cluster:
        """Everything the decision functions look at, read in one listing; `with_history=False` leaves the
        history out (`history_read` False): the agent's cycle reads a snapshot every second, and the
        history only grows."""
        members: dict[str, Member] = {}
        roster: dict[str, RosterEntry] = {}
        history: list[HistoryEvent] = []
        initialize = seed = None
        bootstrap_holder: str | None = None
        forced: str | None = None
        writer: str | None = None
        switchover: Switchover | None = None
        maintenance: set[str] = set()
        high_water: HighWater | None = None
        versions: dict[str, int] = {}
        pause: Pause | None = None
        roll: Roll | None = None
        roll_driver: str | None = None
        restarts: dict[str, RestartRequest] = {}
        settings: ClusterSettings | None = None
        removed: dict[str, Removal] = {}
        arbitrators: dict[str, ArbitratorReport] = {}
        backup_holder: str | None = None
        backup_request: BackupRequest | None = None
        restore: RestoreOrder | None = None
        for kv in self.list("") if with_history else self.list_outside(HISTORY_PREFIX):
            data = json.loads(kv.value)
            if kv.key == "initialize":
                initialize = InitializeRecord.from_dict(data, kv.version)
            elif kv.key == "seed":
                seed = SeedRecord.from_dict(data)
            elif kv.key == "bootstrap":
                bootstrap_holder = data.get("holder")
            elif kv.key == "force_bootstrap":
                forced = data.get("member")
            elif kv.key == "writer":
                writer = data.get("holder")
            elif kv.key == "switchover":
                switchover = Switchover.from_dict(data)
            elif kv.key == "high_water":
                high_water = HighWater.from_dict(data, kv.version)
            elif kv.key.startswith("maintenance/"):
                maintenance.add(kv.key[12:])
            elif kv.key.startswith("members/"):
                members[kv.key[8:]] = Member.from_dict(data)
                versions[kv.key[8:]] = kv.version
            elif kv.key.startswith("roster/"):
                roster[kv.key[7:]] = RosterEntry.from_dict(data)
            elif kv.key.startswith("history/"):
                history.append(HistoryEvent.from_dict(data))
            elif kv.key == "pause":
                pause = Pause.from_dict(data)
            elif kv.key == "roll":
                roll = Roll.from_dict(data)
            elif kv.key == "roll_driver":
                roll_driver = data.get("holder")
            elif kv.key == "backup":
                backup_holder = data.get("holder")
            elif kv.key == BACKUP_REQUEST:
                backup_request = BackupRequest.from_dict(data)
            elif kv.key == RESTORE:
                restore = RestoreOrder.from_dict(data)
            elif kv.key.startswith("restart/"):
                restarts[kv.key[8:]] = RestartRequest.from_dict(data)
            elif kv.key == "config":
                settings = ClusterSettings.from_dict(data)
            elif kv.key.startswith("removed/"):
                removed[kv.key[8:]] = Removal.from_dict(data)
            elif kv.key.startswith(ARBITRATORS):
                arbitrators[kv.key[len(ARBITRATORS):]] = ArbitratorReport.from_dict(data)
        return Cluster(initialize=initialize, members=members, roster=roster, seed=seed,
                       bootstrap_lock_holder=bootstrap_holder, forced_bootstrap=forced, history=tuple(history),
                       read_at=time.time(), writer=writer, maintenance=frozenset(maintenance),
                       switchover=switchover, high_water=high_water, member_versions=versions,
                       pause=pause, roll=roll, roll_driver=roll_driver, restarts=restarts, settings=settings,
                       history_read=with_history, removed=removed, arbitrators=arbitrators,
                       backup_holder=backup_holder, backup_request=backup_request, restore=restore)

    def routing_view(self) -> Cluster:
        """The part of a snapshot the writer election needs (members, writer, maintenance, switchover),
        without the history: read several times a second by every agent, so it must stay small."""
        members: dict[str, Member] = {}
        versions: dict[str, int] = {}
        for kv in self.list("members/"):
            members[kv.key[8:]] = Member.from_dict(json.loads(kv.value))
            versions[kv.key[8:]] = kv.version
        maintenance = frozenset(kv.key[12:] for kv in self.list("maintenance/"))
        writer = self.get("writer")
        switchover = self.get("switchover")
        return Cluster(members=members, read_at=time.time(), maintenance=maintenance, member_versions=versions,
                       writer=json.loads(writer.value).get("holder") if writer else None,
                       switchover=Switchover.from_dict(json.loads(switchover.value)) if switchover else None)

    def try_initialize(self, name: str, ttl: float) -> bool:
        """Patroni's /initialize: the one agent whose create succeeds initializes a brand-new cluster.

        The key first carries a lease, so an initializer that dies half-way frees it; `finish_initialize`
        makes it permanent with the cluster UUID.
        """
        record = {"by": name, "cluster_uuid": None, "started_at": time.time()}
        return self.create("initialize", json.dumps(record), ttl)

    def finish_initialize(self, name: str, cluster_uuid: str) -> bool:
        current = self.get("initialize")
        if current is None or json.loads(current.value).get("by") != name:
            return False
        record = json.loads(current.value) | {"cluster_uuid": cluster_uuid, "finished_at": time.time()}
        return self.compare_and_set("initialize", json.dumps(record), current.version, None)

    def order_empty_start(self, name: str, ttl: float, restore_from: str | None = None) -> bool:
        """A person's `bootstrap --force --empty`: `name` initializes a new cluster from nothing (or, for
        `galera-pilot restore`, from the backup set `restore_from`).

        The initialize record is swapped in one compare-and-set, so no agent ever sees "no cluster" and
        races to initialize; then the old cluster's seed, mark and roster go (its history stays). Leased
        like an initializer's own record: if `name`'s agent never takes it up, any empty node may."""
        current = self.get("initialize")
        replaces = json.loads(current.value).get("cluster_uuid") if current is not None else None
        record = json.dumps({"by": name, "cluster_uuid": None, "started_at": time.time(), "ordered_empty": True,
                             "replaces": replaces, "restore_from": restore_from})
        if current is None:
            swapped = self.create("initialize", record, ttl)
        else:
            swapped = self.compare_and_set("initialize", record, current.version, ttl)
        if not swapped:
            return False
        for key in ("seed", "high_water", *(kv.key for kv in self.list("roster/"))):
            self.delete(key)
        return True

    def keep_initialize_lease(self, name: str, ttl: float) -> bool:
        current = self.get("initialize")
        if current is None or json.loads(current.value).get("by") != name:
            return False
        return self.compare_and_set("initialize", current.value, current.version, ttl)

    def publish_member(self, member: Member, ttl: float) -> None:
        self.put(f"members/{member.name}", json.dumps(member.to_dict()), ttl)

    def remove_member(self, name: str) -> None:
        self.delete(f"members/{name}")

    def update_roster(self, entry: RosterEntry) -> None:
        self.put(f"roster/{entry.name}", json.dumps(entry.to_dict()))

    def publish_seed(self, seed: SeedRecord) -> None:
        self.put("seed", json.dumps(seed.to_dict()))

    def acquire_lease(self, key: str, name: str, ttl: float, reason: str) -> bool:
        """Take (or renew, if already ours) a leased lock. At most one holder at any time."""
        value = json.dumps({"holder": name, "reason": reason, "at": time.time()})
        if self.create(key, value, ttl):
            return True
        current = self.get(key)
        if current is None:
            return self.create(key, value, ttl)
        if json.loads(current.value).get("holder") != name:
            return False
        return self.compare_and_set(key, value, current.version, ttl)

    def lease_holder(self, key: str) -> str | None:
        """Who holds a leased lock now (None: nobody)."""
        current = self.get(key)
        return json.loads(current.value).get("holder") if current is not None else None

    def release_lease(self, key: str, name: str) -> None:
        current = self.get(key)
        if current is not None and json.loads(current.value).get("holder") == name:
            self.delete(key, current.version)

    def acquire_bootstrap_lock(self, name: str, ttl: float, reason: str) -> bool:
        """The bootstrap lock: only its holder may start mariadbd with --wsrep-new-cluster."""
        return self.acquire_lease("bootstrap", name, ttl, reason)

    def release_bootstrap_lock(self, name: str) -> None:
        self.release_lease("bootstrap", name)

    def order_bootstrap(self, member: str, ttl: float) -> bool:
        """A person's override (`galera-pilot bootstrap --force`): `member` bootstraps even without the
        positions the policy waits for. Leased, so a forgotten order cannot fire much later."""
        value = json.dumps({"member": member, "at": time.time()})
        return self.create("force_bootstrap", value, ttl)

    def clear_bootstrap_order(self) -> None:
        self.delete("force_bootstrap")

    # ---- routing: the writer lease, switchover requests, maintenance --------------------------------------
    def acquire_writer(self, name: str, ttl: float, reason: str) -> bool:
        """Take or renew the writer lease (create-if-absent, or compare-and-set when it is already ours).
        The holder must renew well within `ttl`, and stop claiming the role before it can expire."""
        return self.acquire_lease("writer", name, ttl, reason)

    def release_writer(self, name: str) -> None:
        """Give the writer role up at once (only if we hold it), so another member need not wait for
        the lease to expire."""
        self.release_lease("writer", name)

    def request_switchover(self, from_member: str, to_member: str | None, ttl: float) -> bool:
        """Ask the writer to hand over; False if another request is pending."""
        value = json.dumps(Switchover(from_member, to_member, time.time()).to_dict())
        return self.create("switchover", value, ttl)

    def clear_switchover(self) -> None:
        self.delete("switchover")

    def fail_switchover(self, request: Switchover, why: str, ttl: float = 30.0) -> bool:
        """Mark `request` failed (the old writer took the role back), so `galera-pilot switchover` can say
        why at once; False when the key holds another request by now."""
        current = self.get("switchover")
        if current is None or Switchover.from_dict(json.loads(current.value)) != request:
            return False
        failed = Switchover(request.from_member, request.to_member, request.at, why)
        return self.compare_and_set("switchover", json.dumps(failed.to_dict()), current.version, ttl)

    def set_maintenance(self, name: str, on: bool) -> None:
        if on:
            self.put(f"maintenance/{name}", json.dumps({"member": name, "at": time.time()}))
        else:
            self.delete(f"maintenance/{name}")

    # ---- the high-water mark ---------------------------------------------------------------------------
    def raise_high_water(self, uuid: str, seqno: int, member: str) -> bool:
        """Raise the mark to (uuid, seqno) unless it already stands there or higher; True if raised.

        Compare-and-set, so two agents raising at once end at the higher of the two. A mark of another
        UUID is replaced only by `reset_high_water` (a new cluster), never here. A lost compare-and-set
        means another writer moved the mark, so the attempts are bounded by how many write at once."""
        record = json.dumps(HighWater(uuid, seqno, member, time.time()).to_dict())
        for _ in range(HIGH_WATER_ATTEMPTS):
            current = self.get("high_water")
            if current is None:
                if self.create("high_water", record):
                    return True
                continue
            stored = HighWater.from_dict(json.loads(current.value))
            if stored.uuid != uuid or stored.seqno >= seqno:
                return False
            if self.compare_and_set("high_water", record, current.version):
                return True
        return False

    def reset_high_water(self, uuid: str, seqno: int, member: str) -> None:
        """Set the mark whatever it said: a new cluster, or a person's forced bootstrap that discarded
        what lay beyond (the discarded history is in the event the caller records)."""
        self.put("high_water", json.dumps(HighWater(uuid, seqno, member, time.time()).to_dict()))

    def record_history(self, event: HistoryEvent) -> None:
        key = f"{HISTORY_PREFIX}{event.at:017.6f}-{event.member}"
        self.put(key, json.dumps(event.to_dict()))

    def trim_history(self, keep: int = history_rules.KEEP, keep_notifications: int = history_rules.KEEP_NOTIFICATIONS,
                     limit: int | None = None) -> int:
        """Delete what the history no longer keeps (dcs/history.py), the oldest first and at most `limit`
        keys; how many events went. Two trims at once are harmless: a key already deleted is gone."""
        entries = []
        for kv in self.list(HISTORY_PREFIX):
            try:
                entries.append((kv.key, json.loads(kv.value)))
            except ValueError:
                continue
        doomed = history_rules.to_delete(entries, keep, keep_notifications)
        return sum(bool(self.delete(key)) for key in doomed[:limit])

    def put_json(self, key: str, data: dict[str, Any], ttl: float | None = None) -> None:
        self.put(key, json.dumps(data), ttl)
