"""The agent's side of the cluster-wide settings: merge them with the node's file, follow them on the
running server, and re-read the file on `galera-pilot reload` (or SIGHUP).

Each cycle: the effective mariadb and timing sections (settings/merge.py) replace the ones the agent
runs with, in place, so every room sees them at its next look (the writer keeper's lease and freshness
are set anew). Then, when mariadbd answers, my.cnf as written is compared with what the settings would
render now (settings/follow.py): dynamic variables are applied with `SET GLOBAL` and written into my.cnf,
the rest is published as `pending restart` until the next start writes a fresh my.cnf.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path

import pymysql

from galera_pilot.cluster import Cluster
from galera_pilot.config import NodeConfig, load_config
from galera_pilot.credentials import Credentials
from galera_pilot.errors import ConfigError, PilotError
from galera_pilot.files import write_private
from galera_pilot.mariadb import sql, variables
from galera_pilot.mariadb.mycnf import patch_server_section, provider_option_map, render_mycnf, server_section
from galera_pilot.routing.keeper import WriterKeeper
from galera_pilot.settings.catalog import Judgement, catalog_of, judge, number_of, sql_value
from galera_pilot.settings.follow import at_once, differences, needing_restart
from galera_pilot.settings.merge import merged_sections, overridden

log = logging.getLogger(__name__)
# The sections `reload` takes from the file without an agent restart; any other change needs one.
RELOADABLE = ("mariadb", "timing", "disk", "recovery", "callbacks", "backup")


@dataclass(frozen=True)
class SettingsReport:
    """What the member record says of the settings."""

    revision: int = 0
    pending_restart: tuple[str, ...] = ()
    error: str = ""
    overridden: tuple[str, ...] = ()  # cluster-wide settings this node's own file sets otherwise
    gcache_bytes: int = 0  # the gcache the running server was started with (else the next start's)


class SettingsKeeper:
    def __init__(self, config: NodeConfig, config_path: Path | None, credentials: Credentials,
                 writer: WriterKeeper) -> None:
        self.config = config  # what every room reads: its mariadb/timing/disk/recovery are replaced in place
        self.path = config_path
        self.local = config.model_copy(deep=True)  # the node's file as loaded: the merge's starting point
        self.credentials = credentials
        self.writer = writer
        self.report = SettingsReport()
        self._lock = threading.Lock()
        self._reloaded = False
        self._reload_changed: list[str] = []
        # The sections of the last reload once a cycle has merged them (None: nothing new): on_reload is
        # called only then, so it runs with the callbacks that reload brought (agent/event_keeper.py).
        self.applied_reload: list[str] | None = None
        self._merged_key: tuple[int, int] | None = None
        self._merge_error = ""
        self._followed_key: tuple[object, ...] | None = None
        self._failed: dict[str, str | None] = {}  # variable -> the value `SET GLOBAL` refused (not retried)

    # ---- each cycle ------------------------------------------------------------------------------------
    def follow(self, cluster: Cluster, running: bool) -> None:
        """Never raises for what the server or the file system says: a failure is the node's settings_error
        (the cycle's decisions must go on whatever a setting does)."""
        revision = cluster.settings.revision if cluster.settings else 0
        error = self._merge(cluster, revision)
        pending: tuple[str, ...] = ()
        gcache = self.config.mariadb.gcache_bytes
        if running:
            try:
                pending, gcache = self._follow_server()
            except (PilotError, pymysql.MySQLError, OSError) as failure:
                self._followed_key = None  # look again next cycle
                error = error or f"the settings could not be followed: {failure}"
        else:
            self._followed_key = None
            self._failed.clear()  # the next start writes a fresh my.cnf: nothing stays refused
        self.report = SettingsReport(revision, pending, error or self._failure_text(),
                                     overridden(self.local, cluster.settings), gcache)

    def _merge(self, cluster: Cluster, revision: int) -> str:
        with self._lock:
            local, reloaded, self._reloaded = self.local, self._reloaded, False
            if reloaded:
                self.applied_reload = self._reload_changed
        key = (id(local), revision)
        if key == self._merged_key and not reloaded:
            return self._merge_error
        self._merged_key, self._merge_error = key, ""
        config = self.config
        if reloaded:  # these take no merge: the file's own
            config.disk, config.recovery, config.callbacks = local.disk, local.recovery, local.callbacks
            config.backup = local.backup  # the schedule's next look and the next backup use it
            config.tls.migrating = local.tls.migrating  # `tls enable`'s steps: the next my.cnf follows
        try:
            mariadb, timing = merged_sections(local, cluster.settings)
        except ConfigError as error:
            log.warning("%s", error)
            self._merge_error = str(error)
            return self._merge_error
        if mariadb != config.mariadb or timing != config.timing:
            log.info("settings: cluster revision %d merged with this node's file", revision)
            config.mariadb, config.timing = mariadb, timing
            self.writer.ttl = timing.writer_lease_ttl
            self.writer.fresh_within = max(3.0, 3 * timing.loop_wait)
            self.writer.failsafe = timing.writer_failsafe
        return ""

    def _follow_server(self) -> tuple[tuple[str, ...], int]:
        """(what waits for a restart, the running server's gcache in bytes)."""
        path = self.config.mycnf
        try:
            stat = path.stat()
            # What the render depends on besides the file: the mariadb section, and the binlog settings
            # of the backup section (point-in-time recovery's log_bin and GTID settings).
            key = (stat.st_mtime_ns, stat.st_size, self.config.mariadb, self.config.backup.binlogs)
            if key == self._followed_key:  # nothing changed on either side since the last look
                return self.report.pending_restart, self.report.gcache_bytes
            text = path.read_text()
        except OSError:
            return (), self.config.mariadb.gcache_bytes  # not written by this agent's layout: nothing to compare
        running = server_section(text)
        wanted = server_section(render_mycnf(self.config, self.credentials, ()))
        found = differences(running, wanted)
        for name in set(self._failed) - set(found.variables):
            del self._failed[name]  # no longer differs (set by hand, or the setting went back)
        applied: set[str] = set()
        if found.variables:
            applied = self._apply(found.variables, text)
        pending = needing_restart(found, applied)
        if applied:  # my.cnf was rewritten: its new stat is what "unchanged" means from now on
            stat = path.stat()
        self._followed_key = (stat.st_mtime_ns, stat.st_size, self.config.mariadb, self.config.backup.binlogs)
        if pending != self.report.pending_restart and pending:
            log.info("settings: %s take effect at the next restart (galera-pilot restart --pending)",
                     ", ".join(pending))
        return pending, started_gcache(running, self.config.mariadb.gcache_bytes)

    def _apply(self, changed: dict[str, str | None], text: str) -> set[str]:
        connection = sql.connect_socket(self.config, self.credentials, timeout=2.0)
        try:
            catalog = catalog_of(variables.catalog_rows(connection, changed))
            applied: dict[str, str | None] = {}
            for name, value in at_once(changed, catalog).items():
                if name in self._failed and self._failed[name] == value:
                    continue
                try:
                    variables.set_global(connection, name, sql_value(catalog[name], value))
                except Exception as error:  # the server's refusal (pymysql error): said, not retried
                    self._failed[name] = value
                    log.warning("settings: SET GLOBAL %s = %s refused: %s", name, value, error)
                    continue
                self._failed.pop(name, None)
                applied[name] = value
        finally:
            connection.close()
        if applied:
            self._write_mycnf(patch_server_section(text, applied))
            log.info("settings: applied at once: %s", ", ".join(f"{n} = {v if v is not None else 'DEFAULT'}"
                                                                 for n, v in applied.items()))
        return set(applied)

    def _write_mycnf(self, text: str) -> None:
        write_private(self.config.mycnf, text, 0o640)
        user = self.config.effective_mariadbd_user
        if user and os.geteuid() == 0:
            shutil.chown(self.config.mycnf, "root", user)

    def _failure_text(self) -> str:
        return "; ".join(f"SET GLOBAL {n} refused (see the agent log)" for n in sorted(self._failed))

    # ---- reload (REST API thread, or SIGHUP) ---------------------------------------------------------------
    def reload(self) -> list[str]:
        """Re-read the node's file: the sections that changed (RELOADABLE), applied at the next cycle. A
        ConfigError, with nothing changed, for an invalid file or a change that needs an agent restart."""
        if self.path is None:
            raise ConfigError("this agent was not started from a configuration file; nothing to reload")
        fresh = load_config(self.path)
        with self._lock:
            current = self.local
            fixed = [name for name in type(fresh).model_fields if name not in RELOADABLE
                     and getattr(fresh, name) != getattr(current, name)
                     and not (name == "tls" and _only_migration(fresh, current))]
            if fixed:
                raise ConfigError(f"{self.path}: {', '.join(fixed)} changed; that takes an agent restart "
                                  "(nothing was reloaded)")
            changed = [name for name in RELOADABLE if getattr(fresh, name) != getattr(current, name)]
            if fresh.tls.migrating != current.tls.migrating:
                changed.append("tls.migrating")
            if fresh.timing.watch != current.timing.watch:
                raise ConfigError(f"{self.path}: timing.watch changed; that takes an agent restart (nothing was "
                                  "reloaded)")
            self.local = fresh
            self._reloaded = True
            self._reload_changed = changed
        return changed


def _only_migration(fresh: NodeConfig, current: NodeConfig) -> bool:
    """Whether the tls sections differ in `migrating` alone (what `tls enable` changes while agents run)."""
    return fresh.tls.model_copy(update={"migrating": current.tls.migrating}) == current.tls


def started_gcache(running: dict[str, str], otherwise: int) -> int:
    """gcache.size as the running server's my.cnf gave it, in bytes (what a rolling restart's IST check
    counts on), else `otherwise`."""
    text = provider_option_map(running.get("wsrep_provider_options", "")).get("gcache.size", "")
    try:
        return int(number_of(text)) if text else otherwise
    except ValueError:
        return otherwise


def check(config: NodeConfig, credentials: Credentials, proposed_variables: dict[str, str],
          proposed_options: dict[str, str]) -> Judgement:
    """`POST /settings/check`: judge proposed settings against this node's running server."""
    try:
        connection = sql.connect_socket(config, credentials, timeout=2.0)
        try:
            rows = variables.catalog_rows(connection, proposed_variables)
            options = variables.provider_options(connection) if proposed_options else {}
            version = sql.server_version(connection)
        finally:
            connection.close()
    except (pymysql.MySQLError, OSError) as error:
        raise PilotError(f"mariadbd on {config.name} does not answer ({error})") from None
    return judge(proposed_variables, proposed_options, catalog_of(rows), options, version)
