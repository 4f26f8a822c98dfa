"""The embedded cluster's proxy configuration: DIR/proxy.yaml, and the bind check before a start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.embedded.proxy import DEFAULT_READER_BIND, DEFAULT_WRITER_BIND
from galera_pilot.errors import PilotError


def cluster(tmp_path: Path) -> EmbeddedCluster:
    return EmbeddedCluster.layout(tmp_path / "c", 2, "127.0.0.131", "mariabackup")


def test_proxy_config_defaults_given_binds_and_fields_set_by_hand(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    assert c.proxy.config() is None
    config = c.proxy.configure(None, None)
    assert (config.writer_bind, config.reader_bind) == (DEFAULT_WRITER_BIND, DEFAULT_READER_BIND)
    assert config.run_dir == c.dir / "proxy" and config.dcs == c.meta["dcs"]
    config = c.proxy.configure("127.0.0.130:3306", None)
    assert (config.writer_bind, config.reader_bind) == ("127.0.0.130:3306", DEFAULT_READER_BIND)
    data = yaml.safe_load(c.proxy.config_path.read_text())
    data["nbthread"] = 1
    c.proxy.config_path.write_text(yaml.safe_dump(data))
    config = c.proxy.configure(None, "127.0.0.130:3307")
    assert (config.writer_bind, config.reader_bind, config.nbthread) == ("127.0.0.130:3306", "127.0.0.130:3307", 1)


def test_a_taken_bind_is_refused_before_anything_starts(tmp_path: Path) -> None:
    c = cluster(tmp_path)
    with socket.socket() as listener:
        listener.bind(("127.0.0.139", 0))
        listener.listen()
        port = listener.getsockname()[1]
        config = c.proxy.configure(f"127.0.0.139:{port}", "127.0.0.139:1")
        with pytest.raises(PilotError, match=f"127.0.0.139:{port} is already in use"):
            c.proxy.check_binds(config)
    c.proxy.check_binds(config)  # free again


def test_bad_binds_name_the_field(tmp_path: Path) -> None:
    with pytest.raises(PilotError, match="writer_bind"):
        cluster(tmp_path).proxy.configure("localhost", None)
