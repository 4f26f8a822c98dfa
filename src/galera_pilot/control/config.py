"""The control configuration: what an operator's host needs to address a cluster without its folder.

`galera-pilot -c FILE VERB` (or `GALERA_PILOT_CONFIG=FILE`) accepts three kinds of file, told apart by
their fields, so that whatever configuration a host already has is enough:

- a control configuration (this module's `ControlConfig`): DCS URL and cluster name, optionally the
  credentials file for `query`, the members' REST API URLs to ask while the DCS is unreachable, and the
  client endpoints `dsn` prints;
- a node's agent configuration (`name` and `address` among its fields): every node host already has one;
- a proxy configuration (`writer_bind`/`reader_bind`): the proxy host has one, and it names the endpoints.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from galera_pilot.backup.settings import BackupSettings
from galera_pilot.config import NAME_PATTERN, NodeConfig, dcs_url_carries_password, load_config, parse_model
from galera_pilot.errors import ConfigError
from galera_pilot.proxy.haproxy_config import parse_bind
from galera_pilot.proxy.manager import ProxyConfig, parse_proxy_config


class Endpoints(BaseModel):
    """Where clients connect: the writer and reader endpoints (HOST:PORT), as `dsn` prints them."""

    model_config = ConfigDict(extra="forbid")

    writer: str | None = None
    reader: str | None = None

    @field_validator("writer", "reader")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            parse_bind(value)
        return value


class ControlConfig(BaseModel):
    """A control configuration file (docs/operations.md#addressing-a-cluster)."""

    model_config = ConfigDict(extra="forbid")

    dcs: str = Field(description="coordination store URL, e.g. etcd://10.0.0.11:2379,10.0.0.12:2379")
    cluster_name: str = Field("galera", pattern=NAME_PATTERN)
    credentials_file: Path | None = Field(None, description="admin credentials for `query` (mode 0600)")
    members: dict[str, str] = Field(default_factory=dict,
                                    description="member name -> REST API URL, asked while the DCS is unreachable")
    endpoints: Endpoints = Field(default_factory=Endpoints)
    ca_file: Path | None = Field(None, description="the cluster's node CA (ca.pem): verifies the members' HTTPS "
                                 "REST APIs and their MySQL certificates")
    api_token_file: Path | None = Field(None, description="the API token (api-token, mode 0600) for "
                                        "state-changing REST API requests")
    tls_bundle: Path | None = Field(None, description="an operator's bundle (galera-pilot pki issue operator …): "
                                    "its CA and token unless ca_file/api_token_file say otherwise, and its "
                                    "certificate for an etcds:// DCS that asks for client certificates")
    backup_repository: Path | None = Field(None, description="the backup repository the agents write (a "
                                           "mounted directory): what `backup list/show/verify/delete` read")
    backup: BackupSettings | None = Field(None, description="the nodes' backup section (an S3 repository, the "
                                          "encryption key): instead of backup_repository")

    @field_validator("members")
    @classmethod
    def _urls(cls, value: dict[str, str]) -> dict[str, str]:
        for name, url in value.items():
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{name}: {url!r} is not an http:// or https:// URL")
        return {name: url.rstrip("/") for name, url in value.items()}


ConfigKind = ControlConfig | NodeConfig | ProxyConfig


def load_any_config(path: Path) -> ConfigKind:
    """Read FILE as whichever of the three kinds its fields say it is; errors name the file and field."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as error:
        raise ConfigError(f"cannot read configuration {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"configuration {path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {path}: expected a mapping of fields at the top level")
    if "name" in data and "address" in data:
        return load_config(path)  # also refuses a password-carrying node file others can read
    if "writer_bind" in data or "reader_bind" in data:
        config: ConfigKind = parse_proxy_config(data, str(path))
    else:
        config = parse_model(ControlConfig, data, str(path))
    if dcs_url_carries_password(config.dcs) and os.stat(path).st_mode & 0o077:
        raise ConfigError(f"field 'dcs' carries an etcd password, so {path} must not be readable by group or "
                          "others (chmod 600 it)")
    return config
