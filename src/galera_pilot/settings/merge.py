"""A node's effective settings: its own file over the cluster's (local wins, as in Patroni).

"Its own file" means the fields the file actually sets (pydantic's fields_set): a field it leaves out
takes the cluster-wide value, and without one the default. Server variables go where the file's
`mariadb.extra` goes, provider options where `mariadb.provider_options` goes; the file's own entries win
name by name (max-connections and max_connections are one variable).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from galera_pilot.cluster import ClusterSettings
from galera_pilot.config import MariadbSettings, NodeConfig, Timing, option_key
from galera_pilot.errors import ConfigError
from galera_pilot.settings.edits import CLUSTER_TIMING, MARIADB_FIELDS


def merged_sections(local: NodeConfig, settings: ClusterSettings | None) -> tuple[MariadbSettings, Timing]:
    """The mariadb and timing sections this node runs with; a ConfigError when the two sources together
    are invalid (e.g. the cluster's loop_wait against this file's member_ttl)."""
    if settings is None:
        return local.mariadb, local.timing
    own = local.mariadb
    fields: dict[str, Any] = {name: value for name, value in settings.mariadb.items() if name in MARIADB_FIELDS}
    fields |= {name: getattr(own, name) for name in own.model_fields_set if name in MARIADB_FIELDS}
    extra = {name: value for name, value in settings.mariadb.items() if name not in MARIADB_FIELDS}
    for name, value in own.extra.items():
        extra.pop(option_key(name), None)
        extra[name] = value
    options = dict(settings.galera) | own.provider_options
    timing = {name: value for name, value in settings.timing.items() if name in CLUSTER_TIMING}
    timing |= {name: getattr(local.timing, name) for name in local.timing.model_fields_set}
    try:
        mariadb = MariadbSettings.model_validate(fields | {"extra": extra, "provider_options": options})
    except ValidationError as error:
        raise ConfigError(_sentence("mariadb", error)) from None
    try:
        merged_timing = Timing.model_validate(timing)
    except ValidationError as error:
        raise ConfigError(_sentence("timing", error)) from None
    return mariadb, merged_timing


def _sentence(section: str, error: ValidationError) -> str:
    item = error.errors()[0]
    where = ".".join(str(p) for p in item["loc"])
    return (f"the cluster-wide settings (revision kept) do not fit this node's file: "
            f"{section}{'.' + where if where else ''}: {item['msg']}")


def overridden(local: NodeConfig, settings: ClusterSettings | None) -> tuple[str, ...]:
    """The cluster-wide settings this node's own file sets otherwise (`mariadb.X`, `galera.X`, `timing.X`):
    what `edit-config` and `show-config` name, since the node does not take them."""
    if settings is None:
        return ()
    own = local.mariadb
    extra = {option_key(name) for name in own.extra}
    names = [f"mariadb.{n}" for n in settings.mariadb
             if (n in MARIADB_FIELDS and n in own.model_fields_set) or n in extra]
    names += [f"galera.{n}" for n in settings.galera if n in own.provider_options]
    names += [f"timing.{n}" for n in settings.timing if n in local.timing.model_fields_set]
    return tuple(sorted(names))
