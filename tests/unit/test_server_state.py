"""The server-state file: every server starts DOWN unless the running worker already judged it."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.proxy.haproxy_config import ProxyBackend, ProxySettings, render_haproxy_config
from galera_pilot.proxy.server_state import (
    FIELD_COUNT,
    STATE_HEADER,
    ServerLine,
    render_server_state,
    servers_of,
)

RUN = Path("/run/galera-pilot/proxy")
THREE = [ProxyBackend("node1", "127.0.0.2"), ProxyBackend("node2", "127.0.0.3"),
         ProxyBackend("node3", "127.0.0.4", 3310, 8010)]
CONFIG = render_haproxy_config(ProxySettings(), THREE, RUN)

# What HAProxy 2.6 answered to `show servers state` (measured): node1 the writer, node3 never checked.
LIVE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight \
srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state \
bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr \
srv_agent_addr srv_agent_port
3 writer 1 node1 127.0.0.2 2 0 1 1 4 15 3 2 6 0 0 0 - 3306 - 0 8008 - - 8008
3 writer 2 node2 127.0.0.3 0 0 1 1 4 17 2 0 6 0 0 0 - 3306 - 0 8008 - - 8008
3 writer 3 node3 127.0.0.4 2 0 1 1 0 0 0 2 6 0 0 0 - 3310 - 0 8010 - - 8010
5 reader 1 node1 127.0.0.2 2 0 1 1 4 15 3 2 6 0 0 0 - 3306 - 0 8008 - - 8008
5 reader 2 node2 127.0.0.3 2 0 1 1 4 15 3 2 6 0 1 1 - 3306 - 0 8008 - - 8008

"""


def rows(state: str) -> dict[tuple[str, str], list[str]]:
    lines = state.splitlines()
    assert lines[:2] == ["1", STATE_HEADER]
    parsed = {}
    for line in lines[2:]:
        fields = line.split()
        assert len(fields) == FIELD_COUNT, line
        parsed[(fields[1], fields[3])] = fields
    return parsed


def op_state(state: str) -> dict[tuple[str, str], str]:
    return {key: fields[5] for key, fields in rows(state).items()}


def test_servers_of_reads_every_backend_of_a_rendered_config() -> None:
    assert servers_of(CONFIG) == [
        ServerLine("writer", "node1", "127.0.0.2", 3306, 8008),
        ServerLine("writer", "node2", "127.0.0.3", 3306, 8008),
        ServerLine("writer", "node3", "127.0.0.4", 3310, 8010),
        ServerLine("reader", "node1", "127.0.0.2", 3306, 8008),
        ServerLine("reader", "node2", "127.0.0.3", 3306, 8008),
        ServerLine("reader", "node3", "127.0.0.4", 3310, 8010),
    ]
    assert servers_of(render_haproxy_config(ProxySettings(), [], RUN)) == []


def test_a_first_start_puts_every_server_down_with_checks_running() -> None:
    state = render_server_state(CONFIG)
    assert set(op_state(state).values()) == {"0"}
    for fields in rows(state).values():
        assert fields[10] == "1"  # checks "initializing": status 0 would leave them idle (measured)
        assert fields[12] == "0"  # health: the first passing check makes it UP (rise 1)
        assert fields[13] == "6"  # checks configured and enabled
        assert fields[0] == fields[2] == fields[15] == fields[16] == "0"  # matched by name
    assert rows(state)[("writer", "node3")][18] == "3310"
    assert rows(state)[("writer", "node3")][21] == "8010"


def test_a_reload_keeps_the_running_workers_judgement() -> None:
    state = render_server_state(CONFIG, LIVE)
    assert op_state(state) == {
        ("writer", "node1"): "2",  # the writer stays UP: no gap for new writer connections
        ("writer", "node2"): "0",
        ("writer", "node3"): "0",  # never checked (status 0): starts DOWN, not "UP" as carried
        ("reader", "node1"): "2",
        ("reader", "node2"): "2",
        ("reader", "node3"): "0",  # not in the dump
    }
    carried = rows(state)[("reader", "node2")]
    assert carried[0] == carried[2] == carried[15] == carried[16] == "0"  # ids may change with a reload


def test_a_moved_server_starts_down() -> None:
    moved = render_haproxy_config(ProxySettings(), [ProxyBackend("node1", "127.0.0.9"), *THREE[1:]], RUN)
    assert op_state(render_server_state(moved, LIVE))[("writer", "node1")] == "0"
    new_port = render_haproxy_config(ProxySettings(), [ProxyBackend("node1", "127.0.0.2", 3306, 9008), *THREE[1:]],
                                     RUN)
    assert op_state(render_server_state(new_port, LIVE))[("writer", "node1")] == "0"


def test_a_dump_that_is_not_version_1_is_ignored() -> None:
    assert set(op_state(render_server_state(CONFIG, LIVE.replace("1\n", "2\n", 1))).values()) == {"0"}
    assert set(op_state(render_server_state(CONFIG, "Unknown command\n")).values()) == {"0"}
    assert set(op_state(render_server_state(CONFIG, "")).values()) == {"0"}


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=400))
def test_any_answer_from_the_cli_gives_a_well_formed_file(dump: str) -> None:
    state = render_server_state(CONFIG, "1\n" + dump)
    assert set(rows(state)) == {(s.backend, s.name) for s in servers_of(CONFIG)}
