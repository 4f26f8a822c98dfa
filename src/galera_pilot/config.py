"""One node's typed configuration, loaded from YAML.

The agent renders everything else (my.cnf, the mariadbd command line, the SST settings) from this model,
so a node is fully described by one file. Validation errors name the offending field, because a user
editing YAML by hand needs to know *where* the mistake is, not a pydantic traceback.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from galera_pilot.backup.settings import BackupSettings
from galera_pilot.errors import ConfigError
from galera_pilot.events.settings import CallbackSettings

SstMethod = Literal["mariabackup", "rsync", "mysqldump"]
# my.cnf settings that galera-pilot renders itself (see mariadb/mycnf.py); `mariadb.extra` may not
# override them, since a later line in my.cnf silently wins.
MANAGED_MYCNF_KEYS = frozenset({
    "user", "datadir", "socket", "pid_file", "log_error", "bind_address", "port", "wsrep_on", "wsrep_provider",
    "wsrep_cluster_name", "wsrep_cluster_address", "wsrep_node_name", "wsrep_node_address",
    "wsrep_provider_options", "wsrep_sst_method", "wsrep_sst_receive_address", "wsrep_sst_auth",
    "wsrep_start_position", "binlog_format", "innodb_autoinc_lock_mode", "default_storage_engine",
    "innodb_buffer_pool_size", "innodb_log_file_size", "innodb_flush_log_at_trx_commit", "extra_port",
    "extra_max_connections", "skip_name_resolve", "performance_schema", "wsrep_node_incoming_address",
    "ssl_ca", "ssl_capath", "ssl_cert", "ssl_key", "ssl", "require_secure_transport", "wsrep_notify_cmd",
})
# Server variables the agent itself sets while mariadbd runs (a drained writer's read-only, a donor's
# desync): a configured value would fight it.
RUNTIME_OWNED_VARIABLES = frozenset({"read_only", "wsrep_desync", "wsrep_reject_queries", "wsrep_sst_donor"})
# The settings of my.cnf a person may tune: the MariadbSettings fields that render a [mariadbd] line.
TUNABLE_MYCNF_KEYS = frozenset({"innodb_buffer_pool_size", "innodb_log_file_size", "innodb_flush_log_at_trx_commit"})
# Galera provider options galera-pilot renders itself (mariadb/mycnf.py provider_options) or that are actions,
# not settings (pc.bootstrap, evs.evict); gcache.size and evs.join_retrans_period have their own fields.
MANAGED_PROVIDER_OPTIONS = {
    "gmcast.listen_addr": "", "ist.recv_addr": "", "ist.recv_bind": "", "pc.recovery": "", "base_host": "",
    "base_port": "", "base_dir": "", "socket.ssl": "", "socket.ssl_cert": "", "socket.ssl_key": "",
    "socket.ssl_ca": "", "socket.dynamic": "", "pc.bootstrap": "", "evs.evict": "",
    "gcache.size": "mariadb.gcache_size", "evs.join_retrans_period": "mariadb.join_retrans_period",
}
PORT_LABELS = ("client", "galera", "ist", "sst", "api")


def option_key(name: str) -> str:
    """my.cnf spells options with - or _; the server variable is always the _ spelling, lower case."""
    return name.strip().replace("-", "_").lower()

NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,62}$"


def _check_address(value: str) -> str:
    try:
        parsed = ipaddress.ip_address(value)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", value):
            raise ValueError(f"{value!r} is neither an IP address nor a host name") from None
        return value
    if parsed.version == 6:
        raise ValueError("IPv6 addresses are not supported yet; use an IPv4 address or a host name")
    return value


class Ports(BaseModel):
    """TCP ports of one node. All five are per address, so nodes on 127.0.0.2/.3/.4 reuse them."""

    model_config = ConfigDict(extra="forbid")

    client: int = Field(3306, ge=1, le=65535)
    galera: int = Field(4567, ge=1, le=65535)
    ist: int = Field(4568, ge=1, le=65535)
    sst: int = Field(4444, ge=1, le=65535)
    api: int = Field(8008, ge=1, le=65535)

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        values = [self.client, self.galera, self.ist, self.sst, self.api]
        if len(set(values)) != len(values):
            raise ValueError("client, galera, ist, sst and api ports must all differ")
        return self


class AdvertisedPorts(BaseModel):
    """Ports peers and clients dial when they differ from the ports this node listens on (NAT, published
    container ports). Each one left out is the listen port of the same name."""

    model_config = ConfigDict(extra="forbid")

    client: int | None = Field(None, ge=1, le=65535)
    galera: int | None = Field(None, ge=1, le=65535)
    ist: int | None = Field(None, ge=1, le=65535)
    sst: int | None = Field(None, ge=1, le=65535)
    api: int | None = Field(None, ge=1, le=65535)


class Binaries(BaseModel):
    """Where the MariaDB programs live; Debian's paths by default."""

    model_config = ConfigDict(extra="forbid")

    mariadbd: str = "/usr/sbin/mariadbd"
    install_db: str = "/usr/bin/mariadb-install-db"
    upgrade: str = "/usr/bin/mariadb-upgrade"  # run by a rolling upgrade on every node (galera-pilot upgrade)
    galera_provider: str = "/usr/lib/galera/libgalera_smm.so"


class Recovery(BaseModel):
    """How a full outage is resolved when not every last-known member comes back."""

    model_config = ConfigDict(extra="forbid")

    policy: Literal["all", "majority"] = Field(
        "all", description="all: wait for every last-known member's position; majority: after majority_timeout "
        "a strict majority is enough (its most advanced node bootstraps); a minority never bootstraps",
    )
    majority_timeout: float = Field(30.0, ge=0, le=86400)


class DiskSettings(BaseModel):
    """Disk space thresholds (mariadb/disk.py): a warning in /status, /metrics and `list`, and the room
    mariadbd needs before the agent starts it."""

    model_config = ConfigDict(extra="forbid")

    warn_free_percent: float = Field(10.0, ge=0, le=100, description="warn when less than this share of a "
                                     "node filesystem (datadir, log, node folder) is free")
    warn_free_mb: int = Field(1024, ge=0, description="warn when less than this many MiB are free")
    warn_free_inodes_percent: float = Field(10.0, ge=0, le=100, description="warn when less than this share "
                                            "of the inodes is free")
    start_min_free_mb: int = Field(32, ge=0, description="do not start mariadbd with less than this many MiB "
                                   "free on the datadir's filesystem; after mariadbd died of ENOSPC, wait until "
                                   "this much more than was free then is free")
    start_min_free_inodes: int = Field(1000, ge=0, description="do not start mariadbd with fewer free inodes "
                                       "on the datadir's filesystem")
    locations: dict[str, Path] = Field(
        default_factory=dict, description="more folders to watch, by name (e.g. backup: /srv/backups), shown "
        "and alerted on like the datadir's, the log's and the node folder's (data, log, base)",
    )

    @field_validator("locations")
    @classmethod
    def _named_locations(cls, value: dict[str, Path]) -> dict[str, Path]:
        for name, path in value.items():
            if name in ("data", "log", "base") or not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", name):
                raise ValueError(f"{name!r}: a location name is lowercase letters, digits and _, and not data, "
                                 "log or base")
            if not path.is_absolute():
                raise ValueError(f"{name}: must be an absolute path, got {str(path)!r}")
        return value


class Timing(BaseModel):
    """How often the agent looks, and how long its DCS records live."""

    model_config = ConfigDict(extra="forbid")

    loop_wait: float = Field(1.0, gt=0, le=60, description="seconds between two agent cycles")
    member_ttl: float = Field(10.0, gt=0, le=600, description="seconds a member key lives without heartbeat")
    bootstrap_lock_ttl: float = Field(30.0, gt=0, le=3600)
    # The writer lease: short, because a writer that can neither renew nor release it (a hung agent, a
    # lost DCS) keeps the cluster without a writer for up to this long. Renewed every WRITER_TICK.
    writer_lease_ttl: float = Field(3.0, ge=1.5, le=60, description="seconds the writer key lives unrenewed")
    writer_failsafe: bool = Field(True, description="keep the writer role while the DCS is down if every other "
                                  "member of the Primary Component agrees (failsafe.py)")
    watch: bool = Field(True, description="react to DCS changes at once (etcd watch; SQLite checked every 0.1 s); "
                        "false: only poll (loop_wait, and every 0.2 s for the writer)")

    @model_validator(mode="after")
    def _ttl_longer_than_loop(self) -> Timing:
        if self.member_ttl <= 2 * self.loop_wait:
            raise ValueError("member_ttl must be more than twice loop_wait, or members flap")
        return self


class MariadbSettings(BaseModel):
    """Server settings that the operator may tune; the wsrep essentials are not negotiable here."""

    model_config = ConfigDict(extra="forbid")

    innodb_buffer_pool_size: str = "128M"
    innodb_log_file_size: str = "48M"
    gcache_size: str = Field("128M", pattern=r"^[0-9]+[KkMmGgTt]?$",
                             description="Galera's gcache.size: bytes, or with a K, M, G or T suffix")
    # Jepsen: flush_log_at_trx_commit=0 loses acknowledged writes when nodes crash in quick succession.
    innodb_flush_log_at_trx_commit: int = Field(1, ge=0, le=2, description="0, 1 or 2")
    # Galera's evs.join_retrans_period (default 1 s) paces every membership change: a node rejoining a
    # loaded cluster stalled writes for 2.0 s with 1 s and for 0.5-0.7 s with 0.2 s (measured here).
    join_retrans_period: float = Field(0.2, gt=0, le=10)
    extra: dict[str, str] = Field(default_factory=dict, description="more [mariadbd] options, verbatim")
    provider_options: dict[str, str] = Field(default_factory=dict, description="more Galera provider options "
                                             "(wsrep_provider_options), e.g. gcs.fc_limit: '64'")

    @property
    def gcache_bytes(self) -> int:
        """gcache.size in bytes: how much write-set history a donor keeps for IST."""
        text = self.gcache_size.upper()
        scale = 1024 ** ("KMGT".index(text[-1]) + 1) if text[-1] in "KMGT" else 1
        return int(text.rstrip("KMGT")) * scale

    @field_validator("extra")
    @classmethod
    def _no_managed_keys(cls, value: dict[str, str]) -> dict[str, str]:
        clash = sorted(k for k in value if option_key(k) in MANAGED_MYCNF_KEYS)
        if clash:
            raise ValueError(f"{', '.join(clash)} is managed by galera-pilot and cannot be set in extra")
        return value

    @field_validator("provider_options")
    @classmethod
    def _no_managed_options(cls, value: dict[str, str]) -> dict[str, str]:
        for name, option in value.items():
            problem = provider_option_problem(name, option)
            if problem:
                raise ValueError(f"{name}: {problem}")
        return value


def provider_option_problem(name: str, value: str) -> str:
    """Why NAME=VALUE cannot be a configured Galera provider option ("" when it can)."""
    if name in MANAGED_PROVIDER_OPTIONS:
        instead = MANAGED_PROVIDER_OPTIONS[name]
        return f"set {instead} instead" if instead else "managed by galera-pilot"
    if not re.fullmatch(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)+", name):
        return "not a Galera provider option name (like gcs.fc_limit)"
    if not value or any(c in value for c in ';"\'\n\\') or value != value.strip():
        return "the value must be non-empty, without ; quotes or backslashes"
    return ""


class ArbitratorSettings(BaseModel):
    """Read only with `role: arbitrator` (agent/arbitrator.py runs garbd)."""

    model_config = ConfigDict(extra="forbid")

    garbd: str = Field("/usr/bin/garbd", description="the garbd binary (Debian's galera-arbitrator-4)")
    weight: int = Field(1, ge=0, le=255, description="its vote in Galera's quorum (pc.weight); 0: it only "
                                                     "relays, it never decides a quorum")


class TlsSettings(BaseModel):
    """Transport security (on unless switched off): Galera replication, IST and SST, client connections
    and the REST API, all from one bundle (tls/bundle.py) issued by `galera-pilot pki issue`."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false: everything in plaintext, the REST API open to anyone who "
                          "reaches it (for networks that are private by other means)")
    bundle: Path | None = Field(None, description="the folder with ca.pem, client-ca.pem, node.pem, node.key "
                                "and api-token; default: the node folder's tls/")
    migrating: Literal["galera", "sst"] | None = Field(
        None, description="set by `galera-pilot tls enable` while a plaintext cluster moves to TLS, never by hand: "
        "'galera': replication over TLS, plaintext peers still accepted (socket.dynamic), state transfers and "
        "clients plaintext; 'sst': state transfers and client TLS too, plaintext peers and clients still accepted")
    authority: Path | None = Field(None, description="a PKI folder whose CA key this host holds (the embedded "
                                   "cluster's): the agent then renews its own certificate at two thirds of its life")

    @field_validator("bundle", "authority")
    @classmethod
    def _absolute_bundle(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        return value


class NodeConfig(BaseModel):
    """Everything one agent needs to run its node."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    cluster_name: str = Field("galera", pattern=NAME_PATTERN)
    address: str = Field(description="address this node listens on (and advertises, unless advertise_address)")
    advertise_address: str | None = Field(
        None, description="address peers, proxies and clients dial when it is not `address` (NAT, containers); "
        "what the member record publishes and peers put in wsrep_cluster_address",
    )
    advertise_ports: AdvertisedPorts = Field(default_factory=AdvertisedPorts)
    dcs: str = Field(description="coordination store URL, e.g. sqlite:///var/lib/galera-pilot/dcs.sqlite")
    base_dir: Path = Field(description="the node's folder: datadir, sockets and logs live below it")
    credentials_file: Path = Field(description="YAML with the admin and SST passwords, mode 0600")
    sst_method: SstMethod = "mariabackup"
    use_seed: bool = Field(
        True,
        description="a joiner with an empty datadir copies the initializer's seed datadir when it is on "
        "this host, and joins by IST instead of a full SST",
    )
    fast_eviction: bool = Field(
        True,
        description="when this node's mariadbd dies, have a live peer evict its old instance (evs.evict) so the "
        "survivors do not stall writes for evs.suspect_timeout",
    )
    mariadbd_user: str | None = Field(
        None, description="OS user that runs mariadbd; default 'mysql' when the agent runs as root"
    )
    priority: int = Field(
        0, ge=0, le=1000,
        description="writer preference: when the writer must be chosen anew, the Synced member with the highest "
        "priority takes it (ties by name); 0 never stops a member from becoming the writer",
    )
    donor_reads: bool = Field(
        False,
        description="let /read answer 200 while this node is a Donor/Desynced (it serves an SST and may lag)",
    )
    ports: Ports = Field(default_factory=Ports)
    binaries: Binaries = Field(default_factory=Binaries)
    timing: Timing = Field(default_factory=Timing)
    recovery: Recovery = Field(default_factory=Recovery)
    disk: DiskSettings = Field(default_factory=lambda: DiskSettings.model_validate({}))
    mariadb: MariadbSettings = Field(default_factory=MariadbSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    callbacks: CallbackSettings = Field(default_factory=CallbackSettings)
    role: Literal["data", "arbitrator"] = Field("data", description="arbitrator: the agent runs garbd (a vote in "
                                                "every quorum, no data) instead of mariadbd")
    arbitrator: ArbitratorSettings = Field(default_factory=ArbitratorSettings)
    backup: BackupSettings = Field(default_factory=BackupSettings)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return _check_address(value)

    @field_validator("advertise_address")
    @classmethod
    def _advertise_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value in ("0.0.0.0", "::"):
            raise ValueError("must be an address peers can dial, not the wildcard address")
        return _check_address(value)

    @model_validator(mode="after")
    def _dialable(self) -> NodeConfig:
        if self.address == "0.0.0.0" and self.advertise_address is None:
            raise ValueError("address 0.0.0.0 (listen on every interface) needs advertise_address: peers cannot "
                             "dial 0.0.0.0")
        # MariaDB's SST scripts (mariabackup, rsync, mysqldump) listen on the port of
        # wsrep_sst_receive_address itself, and Galera (26.4.23, seen in the NAT test) puts the port its IST
        # receiver is bound to into the IST request, whatever ist.recv_addr says: the donor dials that.
        # Neither port can therefore be mapped to another number; only the address can differ.
        for label, listen in (("sst", self.ports.sst), ("ist", self.ports.ist)):
            advertised = getattr(self.advertise_ports, label)
            if advertised is not None and advertised != listen:
                raise ValueError(f"advertise_ports.{label} ({advertised}) must equal ports.{label} ({listen}): "
                                 f"the donor dials the {label.upper()} port the joiner listens on; publish the "
                                 "same port number")
        return self

    @field_validator("base_dir", "credentials_file")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        return value

    # Derived locations: one place decides the layout of a node's folder.
    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def run_dir(self) -> Path:
        return self.base_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.base_dir / "log"

    @property
    def seed_dir(self) -> Path:
        return self.base_dir / "seed"

    @property
    def socket(self) -> Path:
        return self.run_dir / "mariadbd.sock"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "mariadbd.pid"

    @property
    def mycnf(self) -> Path:
        return self.base_dir / "my.cnf"

    @property
    def error_log(self) -> Path:
        return self.log_dir / "mariadbd.err"

    @property
    def agent_log(self) -> Path:
        return self.log_dir / "agent.log"

    @property
    def tls_bundle(self) -> Path:
        """The node's TLS bundle folder (what `pki issue` wrote for it)."""
        return self.tls.bundle or self.base_dir / "tls"

    @property
    def server_tls_dir(self) -> Path:
        """mariadbd's copy of the bundle's files, owned by the mariadbd user (it cannot read the agent's)."""
        return self.run_dir / "tls"

    @property
    def effective_mariadbd_user(self) -> str | None:
        """mariadbd must not run as root: rsync SST then fails ("Permission denied" on ibdata1)."""
        if self.mariadbd_user:
            return self.mariadbd_user
        return "mysql" if os.geteuid() == 0 else None

    @property
    def advertised_address(self) -> str:
        """The address others dial: advertise_address, else the listen address."""
        return self.advertise_address or self.address

    def advertised_port(self, label: str) -> int:
        """The port others dial for `label` (client, galera, ist, sst, api): advertised, else the listen port."""
        assert label in PORT_LABELS, label
        advertised: int | None = getattr(self.advertise_ports, label)
        return advertised if advertised is not None else int(getattr(self.ports, label))

    @property
    def advertises_elsewhere(self) -> bool:
        """True when some address or port others dial differs from what this node listens on."""
        return (self.advertised_address != self.address
                or any(self.advertised_port(label) != getattr(self.ports, label) for label in PORT_LABELS))

    @property
    def api_url(self) -> str:
        """The REST API as peers, proxies and the CLI reach it (advertised address and port)."""
        scheme = "https" if self.tls.enabled else "http"
        return f"{scheme}://{self.advertised_address}:{self.advertised_port('api')}"


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        lines.append(f"  field '{where}': {message}")
    return "\n".join(lines)


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: object, source: str = "<config>") -> M:
    """Validate a configuration mapping into `model`; a bad field becomes a ConfigError naming it."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {source}: expected a mapping of fields at the top level")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def load_model(model: type[M], path: Path) -> M:
    """Read a YAML configuration file into `model` (node and proxy configurations alike)."""
    try:
        text = Path(path).read_text()
    except OSError as error:
        raise ConfigError(f"cannot read configuration {path}: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"configuration {path} is not valid YAML: {error}") from None
    return parse_model(model, data, str(path))


def parse_config(data: object, source: str = "<config>") -> NodeConfig:
    return parse_model(NodeConfig, data, source)


def load_config(path: Path) -> NodeConfig:
    config = load_model(NodeConfig, path)
    try:
        exposed = dcs_url_carries_password(config.dcs) and Path(path).stat().st_mode & 0o077
    except OSError:
        exposed = False
    if exposed:
        raise ConfigError(f"field 'dcs' carries an etcd password, so {path} must not be readable by group or "
                          "others (chmod 600 it)")
    return config


def dcs_url_carries_password(url: str) -> bool:
    """Whether a DCS URL holds an etcd password (user:password@): then it must stay out of argv and of
    files others can read."""
    return redact_dcs_url(url) != url


def redact_dcs_url(url: str) -> str:
    """A DCS URL fit for messages: an etcd password given as user:password@ is replaced by ***."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, tail = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.partition(':')[0]}:***@{hosts}{slash}{tail}"


def dump_config(config: NodeConfig) -> str:
    """The fields set explicitly only: what the file leaves out stays free for the cluster-wide settings
    (`galera-pilot edit-config`) and for later defaults, since a node's own file wins over both."""
    return yaml.safe_dump(config.model_dump(mode="json", exclude_unset=True), sort_keys=False)
