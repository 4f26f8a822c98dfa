"""The cluster's generated secrets: the admin account and the SST account.

They are generated once per cluster, written with mode 0600 from the first byte (never a chmod after
the fact), and reach mariadbd only through files, never through a command line.
"""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from galera_pilot.errors import ConfigError
from galera_pilot.files import write_private


@dataclass(frozen=True)
class Credentials:
    admin_user: str
    admin_password: str
    sst_user: str
    sst_password: str

    @classmethod
    def generate(cls) -> Credentials:
        # token_urlsafe never yields ':' — wsrep_sst_auth is "user:password".
        return cls("pilot_admin", secrets.token_urlsafe(24), "pilot_sst", secrets.token_urlsafe(24))

    def __repr__(self) -> str:  # keep secrets out of logs and tracebacks
        return f"Credentials(admin_user={self.admin_user!r}, sst_user={self.sst_user!r})"


def save_credentials(path: Path, credentials: Credentials) -> None:
    write_private(path, yaml.safe_dump(asdict(credentials), sort_keys=False))


def load_credentials(path: Path) -> Credentials:
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read credentials file {path}: {error.strerror}") from None
    except yaml.YAMLError:
        raise ConfigError(f"credentials file {path} is not valid YAML") from None
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"credentials file {path} must not be readable by group or others (chmod 600 it)")
    fields = ("admin_user", "admin_password", "sst_user", "sst_password")
    bad = [f for f in fields if not isinstance(data, dict) or not isinstance(data.get(f), str) or not data.get(f)]
    if bad:
        raise ConfigError(f"credentials file {path}: field '{bad[0]}' is missing, empty or not a string")
    return Credentials(**{f: data[f] for f in fields})
