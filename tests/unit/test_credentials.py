"""credentials.py: generated secrets, private files, and strict loading."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from galera_pilot.credentials import Credentials, load_credentials, save_credentials
from galera_pilot.errors import ConfigError
from galera_pilot.files import write_private

FIELDS = ("admin_user", "admin_password", "sst_user", "sst_password")


def write_mode(path: Path, text: str, mode: int) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_generate_gives_distinct_random_passwords() -> None:
    generated = [Credentials.generate() for _ in range(20)]
    passwords = [c.admin_password for c in generated] + [c.sst_password for c in generated]
    assert len(set(passwords)) == len(passwords)
    for credentials in generated:
        assert credentials.admin_user and credentials.sst_user
        assert credentials.admin_user != credentials.sst_user
        assert credentials.admin_password != credentials.sst_password
        for password in (credentials.admin_password, credentials.sst_password):
            assert ":" not in password  # wsrep_sst_auth is user:password
            assert len(password) >= 24
            assert password.isprintable() and not any(c.isspace() for c in password)


def test_repr_hides_passwords() -> None:
    credentials = Credentials.generate()
    for text in (repr(credentials), str(credentials), f"{credentials!r}", repr([credentials])):
        assert credentials.admin_password not in text
        assert credentials.sst_password not in text
    assert credentials.admin_user in repr(credentials)


def test_save_writes_mode_0600_and_round_trips(tmp_path: Path) -> None:
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        path = tmp_path / "credentials.yaml"
        credentials = Credentials.generate()
        save_credentials(path, credentials)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_credentials(path) == credentials
    assert not (tmp_path / "credentials.yaml.tmp").exists()


def test_save_replaces_a_world_readable_file_with_a_private_one(tmp_path: Path) -> None:
    path = write_mode(tmp_path / "credentials.yaml", "old: content\n", 0o644)
    credentials = Credentials.generate()
    save_credentials(path, credentials)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_credentials(path) == credentials


def test_write_private_leftover_tmp_does_not_leak_its_mode(tmp_path: Path) -> None:
    # A world-readable leftover .tmp from an interrupted earlier write must not make the new file readable.
    write_mode(tmp_path / "secret.tmp", "stale", 0o666)
    write_private(tmp_path / "secret", "fresh")
    assert (tmp_path / "secret").read_text() == "fresh"
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


def test_write_private_other_mode(tmp_path: Path) -> None:
    write_private(tmp_path / "my.cnf", "[mariadbd]\n", 0o640)
    assert (tmp_path / "my.cnf").stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o666, 0o610, 0o601])
def test_load_rejects_group_or_world_access(tmp_path: Path, mode: int) -> None:
    text = yaml.safe_dump({f: "x" for f in FIELDS})
    path = write_mode(tmp_path / "credentials.yaml", text, mode)
    with pytest.raises(ConfigError, match="group or others"):
        load_credentials(path)


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_accepts_owner_only(tmp_path: Path, mode: int) -> None:
    text = yaml.safe_dump({"admin_user": "a", "admin_password": "p1", "sst_user": "s", "sst_password": "p2"})
    path = write_mode(tmp_path / "credentials.yaml", text, mode)
    assert load_credentials(path) == Credentials("a", "p1", "s", "p2")


@pytest.mark.parametrize("missing", FIELDS)
def test_load_names_a_missing_field(tmp_path: Path, missing: str) -> None:
    data = {f: "value" for f in FIELDS if f != missing}
    path = write_mode(tmp_path / "credentials.yaml", yaml.safe_dump(data), 0o600)
    with pytest.raises(ConfigError, match=f"field '{missing}' is missing"):
        load_credentials(path)


@pytest.mark.parametrize("empty", FIELDS)
def test_load_names_an_empty_field(tmp_path: Path, empty: str) -> None:
    data = {f: ("" if f == empty else "value") for f in FIELDS}
    path = write_mode(tmp_path / "credentials.yaml", yaml.safe_dump(data), 0o600)
    with pytest.raises(ConfigError, match=f"field '{empty}'"):
        load_credentials(path)


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just a string\n"])
def test_load_rejects_non_mappings(tmp_path: Path, text: str) -> None:
    path = write_mode(tmp_path / "credentials.yaml", text, 0o600)
    with pytest.raises(ConfigError, match="field 'admin_user'"):
        load_credentials(path)


def test_load_rejects_invalid_yaml(tmp_path: Path) -> None:
    path = write_mode(tmp_path / "credentials.yaml", "admin_user: [unclosed\n", 0o600)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_credentials(path)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read credentials file"):
        load_credentials(tmp_path / "absent.yaml")


@pytest.mark.parametrize("value", ["123456", "true", "[a, b]"])
def test_load_rejects_non_string_field_with_config_error(tmp_path: Path, value: str) -> None:
    text = f"admin_user: pilot_admin\nadmin_password: {value}\nsst_user: pilot_sst\nsst_password: secret\n"
    path = write_mode(tmp_path / "credentials.yaml", text, 0o600)
    with pytest.raises(ConfigError, match="field 'admin_password'"):
        load_credentials(path)
