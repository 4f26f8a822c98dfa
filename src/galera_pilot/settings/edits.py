"""The `--set section.name=value` language of `galera-pilot edit-config`, and the checks that need no server.

Three sections, as the record holds them:

* `mariadb.NAME`: a server variable (max_connections, wsrep_slave_threads …) or one of the node file's own
  mariadb fields (innodb_buffer_pool_size, gcache_size, join_retrans_period …);
* `galera.NAME`: a Galera provider option (gcs.fc_limit …), always applied by a restart;
* `timing.NAME`: the agents' timers (loop_wait, member_ttl, writer_lease_ttl …), applied at once;
* `updates.policy` / `updates.window`: automatic minor updates (lifecycle/updates.py).

What a running server knows (is it a variable, of which type, may it change at runtime) is checked by an
agent against its own server (catalog.py) before anything is stored.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from galera_pilot.cluster import ClusterSettings
from galera_pilot.config import (
    MANAGED_MYCNF_KEYS,
    RUNTIME_OWNED_VARIABLES,
    TUNABLE_MYCNF_KEYS,
    MariadbSettings,
    Timing,
    option_key,
    provider_option_problem,
)
from galera_pilot.errors import ConfigError
from galera_pilot.lifecycle.updates import UpdatePolicy

SECTIONS = ("mariadb", "galera", "timing", "updates")
# The mariadb section's own fields that are not server variables: they render provider options.
MARIADB_FIELDS = frozenset(set(MariadbSettings.model_fields) - {"extra", "provider_options"})
# Timers an agent takes at once (agent/settings_keeper.py); `watch` starts a thread, so it stays a node's own.
CLUSTER_TIMING = frozenset({"loop_wait", "member_ttl", "bootstrap_lock_ttl", "writer_lease_ttl", "writer_failsafe"})
VARIABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")


def parse_assignment(text: str) -> tuple[str, str, str]:
    """`section.name=value` -> (section, name, value); a ConfigError says what is wrong."""
    where, sep, value = text.partition("=")
    section, dot, name = where.strip().partition(".")
    if not sep or not dot or not name:
        raise ConfigError(f"--set {text!r}: expected SECTION.NAME=VALUE, e.g. mariadb.max_connections=500")
    if section not in SECTIONS:
        raise ConfigError(f"--set {text!r}: unknown section {section!r} (one of {', '.join(SECTIONS)})")
    if section == "mariadb":
        name = option_key(name)
    return section, name.strip(), value.strip()


def parse_removal(text: str) -> tuple[str, str]:
    section, dot, name = text.strip().partition(".")
    if not dot or section not in SECTIONS or not name:
        raise ConfigError(f"--unset {text!r}: expected SECTION.NAME, e.g. mariadb.max_connections")
    return section, option_key(name) if section == "mariadb" else name.strip()


def edited(settings: ClusterSettings | None, sets: list[tuple[str, str, str]], unsets: list[tuple[str, str]],
           by: str, at: float) -> ClusterSettings:
    """The record after these edits, one revision later."""
    current = settings or ClusterSettings()
    sections: dict[str, dict[str, Any]] = {name: dict(getattr(current, name)) for name in SECTIONS}
    for section, name in unsets:
        sections[section].pop(name, None)
    for section, name, value in sets:
        sections[section][name] = value
    return _revised(current, sections, by, at)


def replaced(settings: ClusterSettings | None, document: dict[str, Any], by: str, at: float) -> ClusterSettings:
    """The record an edited document describes (`edit-config` in an editor); a ConfigError for a bad shape."""
    current = settings or ClusterSettings()
    unknown = sorted(set(document) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section {unknown[0]!r} (one of {', '.join(SECTIONS)})")
    sections: dict[str, dict[str, Any]] = {}
    for name in SECTIONS:
        values = document.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"section {name!r} must be a mapping of NAME: VALUE")
        keys = (option_key(str(k)) if name == "mariadb" else str(k) for k in values)
        sections[name] = {k: _text(v) for k, v in zip(keys, values.values(), strict=True)}
    return _revised(current, sections, by, at)


def _revised(current: ClusterSettings, sections: dict[str, dict[str, Any]], by: str, at: float) -> ClusterSettings:
    """`current` with every section replaced, one revision later (both ways of editing end here)."""
    return replace(current, **sections, revision=current.revision + 1, by=by, at=at)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    return "" if value is None else str(value)


def problems(settings: ClusterSettings) -> list[str]:
    """Everything wrong with the record that no server needs to be asked about, each naming its setting."""
    found: list[str] = []
    for name, value in settings.mariadb.items():
        label = f"mariadb.{name}"
        if not VARIABLE_NAME.fullmatch(name):
            found.append(f"{label}: not a server variable name")
        elif (name in MANAGED_MYCNF_KEYS and name not in TUNABLE_MYCNF_KEYS) or name.startswith("ssl_"):
            found.append(f"{label}: managed by galera-pilot")
        elif name in RUNTIME_OWNED_VARIABLES:
            found.append(f"{label}: set by the agents themselves while the cluster runs")
        elif name == "extra" or name == "provider_options":
            found.append(f"{label}: set each variable or option by name instead")
        elif not value or "\n" in value:
            found.append(f"{label}: the value must be non-empty and on one line")
        elif any(c in value for c in "'\"#\\"):
            found.append(f"{label}: no quotes, # or backslashes (the value is written to my.cnf as it is, where "
                         "# starts a comment)")
    typed = {k: v for k, v in settings.mariadb.items() if k in MARIADB_FIELDS}
    found += _model_problems(MariadbSettings, typed, "mariadb")
    for name, value in settings.galera.items():
        problem = provider_option_problem(name, value)
        if problem:
            found.append(f"galera.{name}: {problem}")
    for name in settings.timing:
        if name not in Timing.model_fields:
            found.append(f"timing.{name}: unknown (one of {', '.join(sorted(CLUSTER_TIMING))})")
        elif name not in CLUSTER_TIMING:
            found.append(f"timing.{name}: a node's own setting (its file), not a cluster-wide one")
    if not any(p.startswith("timing.") for p in found):
        found += _model_problems(Timing, settings.timing, "timing")
    found += _model_problems(UpdatePolicy, settings.updates, "updates")
    return found


def _model_problems(model: type[BaseModel], values: dict[str, Any], section: str) -> list[str]:
    try:
        model.model_validate(values)
    except ValidationError as error:
        return [f"{section}.{'.'.join(str(p) for p in item['loc']) or '(all)'}: {item['msg']}"
                for item in error.errors()]
    return []


def server_checked(settings: ClusterSettings) -> tuple[dict[str, str], dict[str, str]]:
    """What an agent must check against its running server: (variables, provider options)."""
    variables = {k: v for k, v in settings.mariadb.items() if k not in MARIADB_FIELDS or k in TUNABLE_MYCNF_KEYS}
    return variables, dict(settings.galera)


def changes(old: ClusterSettings | None, new: ClusterSettings) -> list[str]:
    """The edit in lines a person confirms: `+ mariadb.max_connections = 500`, `- …`, `~ … (was …)`."""
    lines = []
    for section in SECTIONS:
        before = getattr(old, section) if old else {}
        after = getattr(new, section)
        for name in sorted(set(before) | set(after)):
            if name not in after:
                lines.append(f"- {section}.{name} (was {before[name]})")
            elif name not in before:
                lines.append(f"+ {section}.{name} = {after[name]}")
            elif str(before[name]) != str(after[name]):
                lines.append(f"~ {section}.{name} = {after[name]} (was {before[name]})")
    return lines


def touched(old: ClusterSettings | None, new: ClusterSettings) -> set[str]:
    """The mariadb and galera names this edit sets, changes or removes."""
    names: set[str] = set()
    for section in ("mariadb", "galera"):
        before: dict[str, Any] = getattr(old, section) if old else {}
        after: dict[str, Any] = getattr(new, section)
        names |= {n for n in set(before) | set(after) if before.get(n) != after.get(n)}
    return names
