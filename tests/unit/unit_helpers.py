"""Builders shared by several unit test modules (imported by name; pytest puts this folder on sys.path)."""

from __future__ import annotations

import copy
from typing import Any

from galera_pilot.config import NodeConfig, parse_config

BASE_CONFIG: dict[str, Any] = {
    "name": "node1",
    "address": "127.0.0.2",
    "dcs": "sqlite:///var/lib/galera-pilot/dcs.sqlite",
    "base_dir": "/srv/galera/node1",
    "credentials_file": "/etc/galera-pilot/credentials.yaml",
}


def config_data(**overrides: Any) -> dict[str, Any]:
    """A fresh deep copy of the minimal valid configuration mapping, with top-level overrides."""
    data = copy.deepcopy(BASE_CONFIG)
    data.update(overrides)
    return data


def make_config(**overrides: Any) -> NodeConfig:
    return parse_config(config_data(**overrides))
