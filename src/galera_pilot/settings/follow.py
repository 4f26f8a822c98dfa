"""What a running server must do to follow its node's settings: `SET GLOBAL` now, or a restart.

my.cnf is the record of what the server runs with: the agent writes it at every start, and writes into
it each setting it applies at runtime. So the comparison is between two renderings of the same function
(mariadb/mycnf.py): the file as it is, and what the settings would render now. A difference in a dynamic
variable is applied with `SET GLOBAL` (and written into the file); any other difference (a read-only
variable, an option that is no variable, a provider option) waits for a restart (`restart --pending`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from galera_pilot.config import MANAGED_MYCNF_KEYS, MANAGED_PROVIDER_OPTIONS, TUNABLE_MYCNF_KEYS
from galera_pilot.mariadb.mycnf import provider_option_map
from galera_pilot.settings.catalog import Variable

PROVIDER_OPTIONS = "wsrep_provider_options"
# Lines galera-pilot renders from the node's identity and state, not from the settings (the peers and start
# position change at every start; wsrep_sst_auth carries a password): never compared, never SET GLOBAL.
NOT_SETTINGS = (MANAGED_MYCNF_KEYS - TUNABLE_MYCNF_KEYS) | {"user"}
# The provider options the settings render: the person's own, gcache.size and evs.join_retrans_period.
DERIVED_OPTIONS = frozenset({"gcache.size", "evs.join_retrans_period"})


@dataclass(frozen=True)
class Differences:
    variables: dict[str, str | None] = field(default_factory=dict)  # [mariadbd] line -> wanted (None: gone)
    options: tuple[str, ...] = ()  # provider options that differ

    def __bool__(self) -> bool:
        return bool(self.variables or self.options)


def differences(running: dict[str, str], wanted: dict[str, str]) -> Differences:
    """`running`, `wanted`: [mariadbd] sections (mycnf.server_section) of the file and of a fresh render."""
    variables: dict[str, str | None] = {}
    for name in sorted((set(running) | set(wanted)) - NOT_SETTINGS):
        if running.get(name) != wanted.get(name):
            variables[name] = wanted.get(name)
    old = provider_option_map(running.get(PROVIDER_OPTIONS, ""))
    new = provider_option_map(wanted.get(PROVIDER_OPTIONS, ""))
    options = tuple(sorted(n for n in set(old) | set(new) if old.get(n) != new.get(n)
                           and (n in DERIVED_OPTIONS or n not in MANAGED_PROVIDER_OPTIONS)))
    return Differences(variables, options)


def at_once(variables: dict[str, str | None], catalog: dict[str, Variable]) -> dict[str, str | None]:
    """The differing variables `SET GLOBAL` applies now (None: back to the compiled default)."""
    return {name: value for name, value in variables.items() if name in catalog and catalog[name].dynamic}


def needing_restart(found: Differences, applied: set[str]) -> tuple[str, ...]:
    """What the running server still lacks once `applied` are set: `list` shows it as `pending restart`."""
    return tuple(sorted(set(found.variables) - applied)) + found.options
