"""A snapshot of the cluster as the DCS sees it (Patroni's `Cluster`/`Member` idea).

Plain, immutable data: the decision functions in `decisions.py` take one of these and return what to
do, so they can be tested exhaustively without any process, socket or clock.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from galera_pilot.backup.request import BackupRequest
from galera_pilot.backup.restore_order import RestoreOrder

UNKNOWN_UUID = "00000000-0000-0000-0000-000000000000"
EMPTY_SOURCE = "empty"


def _pick(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """Keep only the keys the dataclass knows, so newer agents can add fields without breaking older ones."""
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


@dataclass(frozen=True)
class SavedView:
    """The Primary Component a node last belonged to, as Galera saved it in gvwstate.dat (pc.recovery).

    When every member of that view comes back, Galera re-forms the component by itself: no bootstrap,
    no state transfer between nodes that were in step."""

    my_uuid: str
    view_id: str
    members: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SavedView | None:
        if not data:
            return None
        return cls(str(data.get("my_uuid", "")), str(data.get("view_id", "")),
                   tuple(str(m) for m in data.get("members", ())))


@dataclass(frozen=True)
class Position:
    """Where a node's data stands in the cluster's history (from grastate.dat or --wsrep-recover)."""

    uuid: str
    seqno: int
    safe_to_bootstrap: bool = False
    source: str = "grastate"  # grastate | wsrep-recover | live
    # Why this datadir may not be a bootstrap source (aborted SST, corrupt grastate, ...); None if it may.
    unusable: str | None = None
    saved_view: SavedView | None = None
    # Why grastate.dat could not be read (missing, empty, corrupt) when the position came from InnoDB
    # instead (--wsrep-recover): the file is rewritten from the recovered position before mariadbd starts.
    grastate_problem: str | None = None

    @property
    def empty(self) -> bool:
        """The datadir holds nothing: a position its agent reports so that a recovery knows this member
        has nothing to offer (rather than waiting for it), never a bootstrap source."""
        return self.source == EMPTY_SOURCE

    @property
    def usable(self) -> bool:
        return self.unusable is None and self.uuid != UNKNOWN_UUID and self.seqno >= 0

    @property
    def needs_recovery(self) -> bool:
        """A crashed node's grastate.dat says seqno -1 (and the all-zero UUID if it died with a transaction in
        flight); only --wsrep-recover knows the real position."""
        return self.unusable is None and self.seqno < 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Position | None:
        if data is None:
            return None
        picked = _pick(cls, data)
        picked["saved_view"] = SavedView.from_dict(data.get("saved_view"))
        return cls(**picked)


EMPTY_POSITION = Position(UNKNOWN_UUID, -1, source=EMPTY_SOURCE, unusable="the datadir is empty")


@dataclass(frozen=True)
class HighWater:
    """The highest committed seqno any member ever reported for the cluster's UUID (DCS key `high_water`).

    Agents raise it while they run (live `wsrep_last_committed`) and from the positions of their stopped
    datadirs; it never goes down by itself. A bootstrap from below it would discard transactions the
    cluster had committed, so no agent does that without a person. `member` is who reported it last."""

    uuid: str
    seqno: int
    member: str = ""
    at: float = 0.0
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "seqno": self.seqno, "member": self.member, "at": self.at}

    @classmethod
    def from_dict(cls, data: dict[str, Any], version: int = 0) -> HighWater:
        return cls(**_pick(cls, data), version=version)

    def above(self, uuid: str, seqno: int) -> int:
        """How many transactions of this cluster lie beyond (uuid, seqno); 0 for another cluster's mark."""
        return max(0, self.seqno - seqno) if uuid == self.uuid else 0


@dataclass(frozen=True)
class Member:
    """One live agent's report, published with a TTL."""

    name: str
    address: str
    api_url: str = ""
    client_port: int = 3306
    galera_port: int = 4567
    host: str = ""
    running: bool = False  # mariadbd process alive
    state: str = "stopped"  # wsrep_local_state_comment, or stopped / starting / unreachable
    cluster_status: str = ""  # Primary / non-Primary / Disconnected
    cluster_size: int = 0
    cluster_uuid: str = ""
    seqno: int = -1  # wsrep_last_committed
    gcomm_uuid: str = ""
    use_seed: bool = True  # may start from the seed datadir (the formation of a new cluster counts on it)
    activity: str = ""
    position: Position | None = None
    updated_at: float = 0.0
    priority: int = 0  # writer preference (config `priority`): highest Synced member wins a writer election
    # Free space and inodes of the datadir's, the log's and the node folder's filesystems (disk_guard.py):
    # location -> {path, total_bytes, free_bytes, total_inodes, free_inodes, free_percent, ..., warning}.
    disk: dict[str, dict[str, Any]] = field(default_factory=dict)
    clock_skew: float | None = None  # this host's clock minus the other members' (freshness.py), None: unknown
    # TLS: when the node's certificate expires (ISO 8601, "" without TLS), and why a new bundle was refused.
    tls_not_after: str = ""
    tls_warning: str = ""
    # Which CAs its bundle trusts and which one signed its certificate (short fingerprints): how far a CA
    # rotation has reached this node (tls/ca_rotation.py).
    tls_trust: tuple[str, ...] = ()
    tls_signer: str = ""
    # For the lifecycle (lifecycle/): whether this agent sees the cluster paused, mariadbd's version, its
    # receive queue, the gcache it keeps for IST (bytes) and the write-set traffic it sees (bytes/s, over a
    # minute): a rolling restart checks that the others' gcache covers a node's downtime.
    paused: bool = False
    version: str = ""  # what the running server says (SELECT VERSION())
    installed_version: str = ""  # what the installed binary would run (mariadbd --version)
    recv_queue: int = 0
    gcache_bytes: int = 0
    write_rate: float = 0.0
    # Cluster-wide settings (settings/): the revision of the `config` record this agent follows, the
    # settings its running server still lacks until a restart (variables, provider options), and why the
    # last change could not be taken ("" when it could).
    settings_revision: int = 0
    pending_restart: tuple[str, ...] = ()
    settings_error: str = ""
    settings_overridden: tuple[str, ...] = ()  # cluster-wide settings its own file sets otherwise

    @property
    def is_primary(self) -> bool:
        return self.running and self.cluster_status == "Primary"

    @property
    def is_synced(self) -> bool:
        return self.is_primary and self.state == "Synced"

    @property
    def gcomm_address(self) -> str:
        return f"{self.address}:{self.galera_port}"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["position"] = self.position.to_dict() if self.position else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Member:
        picked = _pick(cls, data)
        picked["position"] = Position.from_dict(data.get("position"))
        for name in ("pending_restart", "settings_overridden", "tls_trust"):
            picked[name] = tuple(picked.get(name) or ())
        return cls(**picked)


@dataclass(frozen=True)
class RosterEntry:
    """A member that joined the cluster at least once: a full recovery waits to hear from it."""

    name: str
    address: str
    api_url: str = ""
    client_port: int = 3306
    stopped_gracefully: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RosterEntry:
        return cls(**_pick(cls, data))


@dataclass(frozen=True)
class InitializeRecord:
    by: str
    cluster_uuid: str | None = None
    started_at: float = 0.0
    finished_at: float | None = None
    version: int = 0
    # A person's `bootstrap --force --empty`: `by` starts a new cluster from nothing, replacing this one.
    ordered_empty: bool = False
    replaces: str | None = None  # the cluster UUID it replaces
    restore_from: str | None = None  # `galera-pilot restore`: the new cluster starts from this backup set

    @property
    def done(self) -> bool:
        return self.cluster_uuid is not None

    @classmethod
    def from_dict(cls, data: dict[str, Any], version: int = 0) -> InitializeRecord:
        return cls(**_pick(cls, data), version=version)


@dataclass(frozen=True)
class SeedRecord:
    """A clean datadir at a known position that joiners on the same host may copy instead of an SST.

    `formation` names the nodes that start together from it (name -> the gcomm UUID each will use) and
    `addresses` their gcomm addresses: each writes the same Primary view (`view_id`) into its
    gvwstate.dat, and Galera's pc.recovery forms the first component of all of them at once, with no
    bootstrap and no state transfer, since every copy is at the seed's position."""

    host: str
    path: str
    uuid: str
    seqno: int
    view_id: str = ""
    formation: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedRecord:
        return cls(**_pick(cls, data))


@dataclass(frozen=True)
class HistoryEvent:
    """One recorded bootstrap/recovery decision: what was decided, by whom, from which inputs, and why."""

    at: float
    member: str
    action: str
    reason: str
    inputs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HistoryEvent:
        return cls(**_pick(cls, data))


@dataclass(frozen=True)
class Switchover:
    """A person's request (`galera-pilot switchover`) that the writer move away from `from_member`,
    to `to_member` when given; leased, so a request nobody can carry out does not linger."""

    from_member: str
    to_member: str | None = None
    at: float = 0.0  # wall clock of the requesting host: for display only, never compared
    failed: str = ""  # why the handover did not complete (set by the old writer, which took the role back)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"from": self.from_member, "to": self.to_member, "at": self.at}
        if self.failed:
            data["failed"] = self.failed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Switchover:
        return cls(str(data.get("from", "")), data.get("to"), float(data.get("at", 0.0)), str(data.get("failed", "")))


# ---- the lifecycle's records (pause, rolling restart): lifecycle/ holds their rules ---------------------------
# Keys (under the cluster prefix):
#   pause            a person's `galera-pilot pause`: every agent keeps reporting and takes no action
#   roll             the rolling restart in progress: its order, who is done, who is being restarted now
#   roll_driver      the lease of the `galera-pilot restart` process that drives the roll (TTL): when it
#                    lapses the roll is interrupted, shown by `list`, and `restart --resume` continues it
#   restart/<name>   the request that <name>'s agent restart its mariadbd, and how far it got
# Times in these records are the writing host's wall clock, for people to read; no decision compares them.

@dataclass(frozen=True)
class Pause:
    """`galera-pilot pause`: until `resume`, no agent restarts, bootstraps, joins or moves the writer."""

    by: str
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Pause:
        return cls(**_pick(cls, data))


# A restart request's phases: the driver writes REQUESTED; the agent STOPPING (with the pid it stops), then
# DONE once a new mariadbd is Synced, or FAILED with why (it may still turn DONE if the node recovers).
REQUESTED, STOPPING, DONE, FAILED = "requested", "stopping", "done", "failed"


@dataclass(frozen=True)
class RestartRequest:
    """That `member`'s agent stop its mariadbd cleanly and let it rejoin (for the roll `roll`)."""

    member: str
    roll: str
    at: float = 0.0
    phase: str = REQUESTED
    stopped_pid: int | None = None  # the mariadbd the agent stopped: a different pid Synced means "restarted"
    detail: str = ""  # done: how it went; failed: why, with the error log's last lines
    upgrade: bool = False  # a rolling upgrade: run mariadb-upgrade once the new server is Synced
    stopped_cleanly: bool | None = None  # the agent's stop: mariadb-upgrade never runs after an unclean one
    upgrade_failed: bool = False  # mariadb-upgrade failed or was refused: never retried by the agent
    rebuild_from: str = ""  # `galera-pilot reinit`: move the datadir aside and take a full SST from this donor

    def moved(self, phase: str, **changes: Any) -> RestartRequest:
        return replace(self, phase=phase, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RestartRequest:
        return cls(**_pick(cls, data))


REMOVING = "removing"
REMOVED = "removed"


@dataclass(frozen=True)
class Removal:
    """`galera-pilot remove`: `member` is out of the cluster for good. While `removing`, its agent stops
    mariadbd cleanly (a graceful leave shrinks the quorum base), marks its folder and exits; `removed` once
    it has, or once the survivors evicted a member whose host is gone. The record stays: an agent of that
    name that comes back (a reinstalled host) reads it and refuses to start mariadbd."""

    member: str
    by: str
    at: float = 0.0
    phase: str = REMOVING
    how: str = "stop"  # stop | evict (membership/rules.removal_plan)
    detail: str = ""

    def moved(self, phase: str, **changes: Any) -> Removal:
        return replace(self, phase=phase, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Removal:
        return cls(**_pick(cls, data))


@dataclass(frozen=True)
class Roll:
    """A rolling restart: members are restarted one at a time in `order` (the writer last, whoever it is
    then), `done` those finished, `current` the one being restarted (or about to be)."""

    id: str
    order: tuple[str, ...]
    kind: str = "restart"  # restart | upgrade | reinit (one member rebuilt by a full SST from `donor`)
    donor: str = ""
    target: str = ""  # upgrade: the version every node runs at the end
    done: tuple[str, ...] = ()
    current: str | None = None
    started_at: float = 0.0
    by: str = ""  # host and pid of the `galera-pilot restart` that started it
    allow_sst: bool = False
    halted: str = ""  # why the roll stopped (a node that did not come back); `restart --resume` clears it
    drained: tuple[str, ...] = ()  # members the roll put in maintenance (and must take out again)
    downtimes: dict[str, float] = field(default_factory=dict)  # member -> seconds it was out, measured
    automatic: bool = False  # an automatic update (`updates` policy) the agents started themselves

    @property
    def remaining(self) -> tuple[str, ...]:
        return tuple(name for name in self.order if name not in self.done)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["order"], data["done"], data["drained"] = list(self.order), list(self.done), list(self.drained)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Roll:
        picked = _pick(cls, data)
        for name in ("order", "done", "drained"):
            picked[name] = tuple(picked.get(name) or ())
        return cls(**picked)


@dataclass(frozen=True)
class ClusterSettings:
    """The `config` record (`galera-pilot edit-config`): settings every node takes unless its own file sets
    them (local wins, as in Patroni). `mariadb`: server variables and the mariadb section's own fields;
    `galera`: provider options; `timing`: the agents' timers; `updates`: the automatic updates' policy.
    settings/ holds their rules (lifecycle/updates.py the updates')."""

    mariadb: dict[str, str] = field(default_factory=dict)
    galera: dict[str, str] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    updates: dict[str, Any] = field(default_factory=dict)  # automatic updates: policy, window (lifecycle/updates.py)
    revision: int = 0
    by: str = ""
    at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClusterSettings:
        picked = _pick(cls, data)
        for name in ("mariadb", "galera", "timing", "updates"):
            picked[name] = dict(picked.get(name) or {})
        return cls(**picked)


ARBITRATORS = "arbitrators/"  # the DCS prefix of the reports


@dataclass(frozen=True)
class ArbitratorReport:
    """A garbd arbitrator's report (agent/arbitrator.py), under `arbitrators/<name>` with a TTL. Kept
    apart from `members/`: everything that reads members (writer election, donors, rolls, proxies,
    recovery positions) is about servers that hold data; what an arbitrator counts in (quorum, majority,
    `list`) reads `Cluster.arbitrators` explicitly."""

    name: str
    address: str
    galera_port: int = 4567
    host: str = ""
    weight: int = 1
    running: bool = False  # garbd alive
    state: str = "stopped"  # garbd's own state from its log: SYNCED, JOINER, OPEN, ... or stopped / waiting
    primary: bool = False  # in a Primary Component, as garbd's last component message said
    component_size: int = 0  # members of that component (data nodes and arbitrators)
    gcomm_uuid: str = ""  # its identity in the group (gvwstate.dat keeps it across restarts)
    activity: str = ""  # the agent's last decision, one sentence
    updated_at: float = 0.0
    tls_not_after: str = ""  # its certificate's expiry (ISO 8601), "" without TLS
    tls_warning: str = ""  # why a new bundle is not used

    @property
    def gcomm_address(self) -> str:
        return f"{self.address}:{self.galera_port}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArbitratorReport:
        return cls(**_pick(cls, data))


@dataclass(frozen=True)
class Cluster:
    initialize: InitializeRecord | None = None
    members: dict[str, Member] = field(default_factory=dict)
    roster: dict[str, RosterEntry] = field(default_factory=dict)
    seed: SeedRecord | None = None
    bootstrap_lock_holder: str | None = None
    forced_bootstrap: str | None = None  # member a person ordered to bootstrap (`bootstrap --force`)
    history: tuple[HistoryEvent, ...] = ()
    history_read: bool = True  # False: a snapshot taken without the history (`history` is then empty)
    read_at: float = 0.0
    writer: str | None = None  # holder of the leased `writer` key: the one node clients write to
    maintenance: frozenset[str] = frozenset()  # members drained by `galera-pilot maintenance on`
    switchover: Switchover | None = None
    high_water: HighWater | None = None
    # Each member record's DCS version (etcd mod_revision, SQLite revision): it changes with every write,
    # which is how an agent tells a live member from a stale record without reading another host's clock.
    member_versions: dict[str, int] = field(default_factory=dict)
    pause: Pause | None = None  # `galera-pilot pause`: no agent takes any action
    roll: Roll | None = None  # the rolling restart in progress
    roll_driver: str | None = None  # the holder of the roll_driver lease: None when nobody drives the roll
    restarts: dict[str, RestartRequest] = field(default_factory=dict)  # member -> its restart request
    settings: ClusterSettings | None = None  # `galera-pilot edit-config`'s cluster-wide settings
    removed: dict[str, Removal] = field(default_factory=dict)  # `galera-pilot remove`: members out for good
    # garbd arbitrators whose agents report (ArbitratorReport): votes, never data, never in `members`.
    arbitrators: dict[str, ArbitratorReport] = field(default_factory=dict)
    backup_holder: str | None = None  # who holds the backup lock (dcs/backup.py): a backup is running
    backup_request: BackupRequest | None = None  # the last backup asked of an agent (backup/request.py)
    restore: RestoreOrder | None = None  # `galera-pilot restore` in progress (backup/restore_order.py)

    @property
    def primary_members(self) -> list[Member]:
        return [m for m in self.members.values() if m.is_primary]

    @property
    def has_primary(self) -> bool:
        return bool(self.primary_members)
