"""The cluster-wide settings record (cluster.py: ClusterSettings) under the DCS key `config`, written only
by `galera-pilot edit-config` (control/settings.py), with compare-and-set: two people editing at once
cannot silently overwrite each other's change."""

from __future__ import annotations

import json

from galera_pilot.cluster import ClusterSettings
from galera_pilot.dcs.base import DCS

KEY = "config"


def read_settings(dcs: DCS) -> tuple[ClusterSettings | None, int | None]:
    """The record and its DCS version (None, None: never edited)."""
    kv = dcs.get(KEY)
    if kv is None:
        return None, None
    return ClusterSettings.from_dict(json.loads(kv.value)), kv.version


def store_settings(dcs: DCS, settings: ClusterSettings, version: int | None) -> bool:
    """Write the record over the version it was read at; False when someone changed it meanwhile."""
    text = json.dumps(settings.to_dict())
    return dcs.create(KEY, text) if version is None else dcs.compare_and_set(KEY, text, version)
