"""The keys of an S3 repository: from a private file, or from the environment every S3 tool reads. Never
from the node's configuration itself (it is copied around and shown), never in argv or a message."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from galera_pilot.backup.repository import RepositoryError


def load_s3_credentials(path: Path | None, environ: Mapping[str, str]) -> tuple[str, str]:
    """(access key, secret key) from `path`, a private YAML file of `access_key:` and `secret_key:`, or
    without one from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, as every S3 tool reads them. A file others
    may read is refused: its key is as good as published. No message quotes the file's content."""
    if path is None:
        names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
        values: Mapping[str, Any] = environ
    else:
        names = ("access_key", "secret_key")
        try:
            with open(path, "rb") as file:
                mode = os.fstat(file.fileno()).st_mode
                values = _fields(file.read().decode())
        except OSError as error:
            raise RepositoryError(f"cannot read S3 credentials {path}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise RepositoryError(f"S3 credentials {path} are not UTF-8 text") from None
        if mode & 0o077:
            raise RepositoryError(f"S3 credentials {path} may be read by others (mode {mode & 0o777:04o}): "
                                  f"chmod 600 it")
    missing = [n for n in names if values.get(n) in (None, "")]
    if missing:
        what = " and ".join(missing)
        raise RepositoryError(f"S3 credentials {path} have no {what}" if path else
                              f"no S3 credentials: {what} not set, and no credentials file given")
    wrong = [n for n in names if not isinstance(values[n], str)]
    if wrong:
        raise RepositoryError(f"S3 credentials {path}: {wrong[0]} is not a string (quote it)")
    return values[names[0]], values[names[1]]


def _fields(text: str) -> dict[str, Any]:
    """YAML's mapping; lines of `name: value` when the text is no YAML (a secret YAML would not take)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items()}
    lines = (line.partition(":") for line in text.splitlines())
    return {name.strip(): value.strip() for name, colon, value in lines if colon}
