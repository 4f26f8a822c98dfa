"""Cluster-wide settings (settings/, issue 13): the --set language, the checks, the merge with a node's file
(local wins), the server catalog's judgement, and what a running server must do to follow them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from unit_helpers import config_data, make_config

from galera_pilot.agent.settings_keeper import SettingsKeeper, started_gcache
from galera_pilot.cluster import Cluster, ClusterSettings, Member
from galera_pilot.config import NodeConfig, dump_config, load_config, parse_config
from galera_pilot.credentials import Credentials
from galera_pilot.errors import ConfigError
from galera_pilot.mariadb.mycnf import patch_server_section, provider_option_map, render_mycnf, server_section
from galera_pilot.routing.keeper import WriterKeeper
from galera_pilot.settings.catalog import Variable, check_value, judge, number_of, sql_value
from galera_pilot.settings.edits import (
    changes,
    edited,
    parse_assignment,
    parse_removal,
    problems,
    replaced,
    touched,
)
from galera_pilot.settings.follow import at_once, differences, needing_restart
from galera_pilot.settings.merge import merged_sections, overridden

CREDENTIALS = Credentials.generate()
MAX_CONNECTIONS = Variable("max_connections", "BIGINT UNSIGNED", "GLOBAL", False, 10, 100000)
LOG_FILE_SIZE = Variable("innodb_log_file_size", "BIGINT UNSIGNED", "GLOBAL", False, 4194304, 2 ** 60)
POOL = Variable("innodb_buffer_pool_size", "BIGINT UNSIGNED", "GLOBAL", False, 2097152, 2 ** 63)
READ_ONLY = Variable("innodb_page_size", "BIGINT UNSIGNED", "GLOBAL", True, 4096, 65536)
BINLOG_FORMAT = Variable("binlog_format", "ENUM", "SESSION", False, choices=("MIXED", "STATEMENT", "ROW"))
SLOW_LOG = Variable("slow_query_log", "BOOLEAN", "SESSION")
LONG_QUERY = Variable("long_query_time", "DOUBLE", "SESSION", False, 0, 31536000)
SQL_MODE = Variable("sql_mode", "SET", "SESSION", choices=("ANSI_QUOTES", "STRICT_TRANS_TABLES", "NO_ZERO_DATE"))
SESSION_ONLY = Variable("timestamp", "DOUBLE", "SESSION ONLY")


def settings(**sections: dict) -> ClusterSettings:
    return ClusterSettings(**sections, revision=1)


# ---- the --set language ------------------------------------------------------------------------------------
def test_assignments_name_section_and_variable() -> None:
    assert parse_assignment("mariadb.max-connections=500") == ("mariadb", "max_connections", "500")
    assert parse_assignment("galera.gcs.fc_limit = 64") == ("galera", "gcs.fc_limit", "64")
    assert parse_assignment("timing.loop_wait=2") == ("timing", "loop_wait", "2")
    assert parse_removal("mariadb.Max_Connections") == ("mariadb", "max_connections")


@pytest.mark.parametrize("text, says", [
    ("max_connections=5", "expected SECTION.NAME=VALUE"),
    ("mariadb.max_connections", "expected SECTION.NAME=VALUE"),
    ("server.max_connections=5", "unknown section 'server'"),
])
def test_bad_assignments_say_what_is_expected(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_assignment(text)


def test_edits_make_a_new_revision_and_list_their_changes() -> None:
    first = edited(None, [("mariadb", "max_connections", "500"), ("timing", "loop_wait", "2")], [], "ops", 1.0)
    assert first.revision == 1 and first.mariadb == {"max_connections": "500"} and first.by == "ops"
    second = edited(first, [("mariadb", "max_connections", "600")], [("timing", "loop_wait")], "ops", 2.0)
    assert second.revision == 2 and second.timing == {}
    assert changes(first, second) == ["~ mariadb.max_connections = 600 (was 500)", "- timing.loop_wait (was 2)"]
    assert changes(None, first) == ["+ mariadb.max_connections = 500", "+ timing.loop_wait = 2"]
    third = edited(second, [("galera", "gcs.fc_limit", "64")], [], "ops", 3.0)
    assert touched(first, second) == {"max_connections"} and touched(second, third) == {"gcs.fc_limit"}
    assert touched(None, first) == {"max_connections"}


def test_an_edited_document_replaces_the_record() -> None:
    new = replaced(None, {"mariadb": {"max-connections": 500, "slow_query_log": True}, "galera": None}, "ops", 1.0)
    assert new.mariadb == {"max_connections": "500", "slow_query_log": "ON"} and new.galera == {}
    with pytest.raises(ConfigError, match="unknown section 'mysql'"):
        replaced(None, {"mysql": {}}, "ops", 1.0)
    with pytest.raises(ConfigError, match="must be a mapping"):
        replaced(None, {"timing": ["loop_wait"]}, "ops", 1.0)


@pytest.mark.parametrize("record, says", [
    (settings(mariadb={"datadir": "/x"}), "mariadb.datadir: managed by galera-pilot"),
    (settings(mariadb={"wsrep_provider_options": "x=y"}), "mariadb.wsrep_provider_options: managed"),
    (settings(mariadb={"ssl_cipher": "x"}), "mariadb.ssl_cipher: managed"),
    (settings(mariadb={"read_only": "ON"}), "mariadb.read_only: set by the agents"),
    (settings(mariadb={"max connections": "5"}), "not a server variable name"),
    (settings(mariadb={"max_connections": ""}), "non-empty"),
    (settings(mariadb={"innodb_flush_log_at_trx_commit": "5"}), "mariadb.innodb_flush_log_at_trx_commit"),
    (settings(mariadb={"init_connect": "'SET NAMES utf8mb4'"}), "mariadb.init_connect: no quotes"),
    (settings(mariadb={"ft_stopword_file": "/x#y"}), "# starts a comment"),
    (settings(mariadb={"gcache_size": "lots"}), "mariadb.gcache_size"),
    (settings(galera={"gcache.size": "1G"}), "galera.gcache.size: set mariadb.gcache_size instead"),
    (settings(galera={"gmcast.listen_addr": "tcp://x"}), "galera.gmcast.listen_addr: managed"),
    (settings(galera={"gcs.fc_limit": "1;pc.bootstrap=1"}), "galera.gcs.fc_limit: the value"),
    (settings(timing={"watch": "false"}), "timing.watch: a node's own setting"),
    (settings(timing={"loop_whit": "1"}), "timing.loop_whit: unknown"),
    (settings(timing={"loop_wait": "fast"}), "timing.loop_wait"),
    (settings(timing={"loop_wait": "6"}), "member_ttl must be more than twice loop_wait"),
])
def test_problems_name_the_setting(record: ClusterSettings, says: str) -> None:
    assert any(says in problem for problem in problems(record)), problems(record)


def test_good_settings_have_no_problems() -> None:
    record = settings(mariadb={"max_connections": "500", "innodb_buffer_pool_size": "256M", "gcache_size": "1G",
                               "innodb_flush_log_at_trx_commit": "2", "init_connect": "SET NAMES utf8mb4"},
                      galera={"gcs.fc_limit": "64"}, timing={"loop_wait": "2", "member_ttl": "12"})
    assert problems(record) == []


# ---- the server's catalog --------------------------------------------------------------------------------
@pytest.mark.parametrize("variable, value", [
    (MAX_CONNECTIONS, "500"), (POOL, "256M"), (POOL, "1g"), (LONG_QUERY, "2.5"), (SLOW_LOG, "on"),
    (SLOW_LOG, "0"), (BINLOG_FORMAT, "row"), (SQL_MODE, "ANSI_QUOTES,strict_trans_tables"), (SQL_MODE, ""),
])
def test_values_the_server_takes(variable: Variable, value: str) -> None:
    check_value(variable, value)


@pytest.mark.parametrize("variable, value, says", [
    (MAX_CONNECTIONS, "lots", "is not a number"),
    (MAX_CONNECTIONS, "5", "out of range (10 to 100000)"),
    (MAX_CONNECTIONS, "2.5", "not a whole number"),
    (SLOW_LOG, "maybe", "not ON or OFF"),
    (BINLOG_FORMAT, "JSON", "not one of MIXED, STATEMENT, ROW"),
    (SQL_MODE, "ANSI_QUOTES,NO_SUCH", "'NO_SUCH' is not one of"),
    (SESSION_ONLY, "1", "per-session variable"),
    (Variable("time_zone", "VARCHAR", "SESSION", startup=False), "+00:00", "my.cnf cannot set it"),
])
def test_values_the_server_refuses_are_named(variable: Variable, value: str, says: str) -> None:
    with pytest.raises(ConfigError, match=f"mariadb.{variable.name}: .*{says.replace('(', '.').replace(')', '.')}"):
        check_value(variable, value)


def test_set_global_spellings() -> None:
    """SET GLOBAL refuses '256M' and a quoted number: numbers go unquoted, booleans as ON/OFF."""
    assert sql_value(POOL, "256M") == 256 * 1024 * 1024
    assert sql_value(LONG_QUERY, "2.5") == 2.5
    assert sql_value(SLOW_LOG, "1") == "ON" and sql_value(SLOW_LOG, "off") == "OFF"
    assert sql_value(BINLOG_FORMAT, "ROW") == "ROW"
    assert sql_value(MAX_CONNECTIONS, None) is None
    assert number_of("4k") == 4096


def test_catalog_rows_become_variables() -> None:
    row = {"VARIABLE_NAME": "MAX_CONNECTIONS", "VARIABLE_TYPE": "BIGINT UNSIGNED", "VARIABLE_SCOPE": "GLOBAL",
           "READ_ONLY": "NO", "NUMERIC_MIN_VALUE": "10", "NUMERIC_MAX_VALUE": "100000", "ENUM_VALUE_LIST": None}
    assert Variable.from_row(row | {"COMMAND_LINE_ARGUMENT": "REQUIRED"}) == MAX_CONNECTIONS
    assert Variable.from_row(row | {"READ_ONLY": "YES"}).dynamic is False
    assert Variable.from_row(row | {"COMMAND_LINE_ARGUMENT": None}).startup is False


def test_the_judgement_lists_every_error_and_sorts_the_rest() -> None:
    catalog = {v.name: v for v in (MAX_CONNECTIONS, READ_ONLY, SLOW_LOG)}
    judged = judge({"max_connections": "500", "innodb_page_size": "16384", "no_such": "1", "slow_query_log": "x"},
                   {"gcs.fc_limit": "64", "gcs.nope": "1", "evs.suspect_timeout": "5", "pc.ignore_sb": "maybe"},
                   catalog, {"gcs.fc_limit": "16", "evs.suspect_timeout": "PT5S", "pc.ignore_sb": "false"},
                   "10.11.19")
    assert judged.at_once == ("max_connections",)
    assert judged.restart == ("innodb_page_size", "gcs.fc_limit")
    assert len(judged.errors) == 5
    assert "galera.evs.suspect_timeout: '5' is not a duration (PT1S, PT0.5S, PT1M) (it is PT5S now)" in judged.errors
    assert any(e.startswith("galera.pc.ignore_sb: 'maybe' is not a yes or no") for e in judged.errors)
    assert any("mariadb.no_such: not a system variable of MariaDB 10.11.19" in e for e in judged.errors)
    assert any("galera.gcs.nope" in e for e in judged.errors)


# ---- the merge: the node's own file wins ---------------------------------------------------------------------
def test_what_the_file_leaves_out_takes_the_cluster_value() -> None:
    local = make_config(mariadb={"innodb_buffer_pool_size": "64M", "extra": {"max-connections": "50"},
                                 "provider_options": {"gcs.fc_limit": "32"}}, timing={"member_ttl": 12})
    cluster = settings(mariadb={"innodb_buffer_pool_size": "256M", "innodb_log_file_size": "96M",
                                "max_connections": "500", "long_query_time": "2"},
                       galera={"gcs.fc_limit": "64", "gcs.fc_factor": "0.9"},
                       timing={"loop_wait": "2", "member_ttl": "30"})
    mariadb, timing = merged_sections(local, cluster)
    assert mariadb.innodb_buffer_pool_size == "64M"  # the file's
    assert mariadb.innodb_log_file_size == "96M"  # the cluster's
    assert mariadb.extra == {"long_query_time": "2", "max-connections": "50"}  # one variable, the file's spelling
    assert mariadb.provider_options == {"gcs.fc_limit": "32", "gcs.fc_factor": "0.9"}
    assert (timing.loop_wait, timing.member_ttl) == (2.0, 12.0)
    assert merged_sections(local, None) == (local.mariadb, local.timing)


def test_what_the_file_overrides_is_named() -> None:
    local = make_config(mariadb={"innodb_buffer_pool_size": "64M", "extra": {"max-connections": "50"},
                                 "provider_options": {"gcs.fc_limit": "32"}}, timing={"member_ttl": 12})
    cluster = settings(mariadb={"innodb_buffer_pool_size": "1G", "max_connections": "5", "long_query_time": "2"},
                       galera={"gcs.fc_limit": "64"}, timing={"member_ttl": "30", "loop_wait": "2"})
    assert overridden(local, cluster) == ("galera.gcs.fc_limit", "mariadb.innodb_buffer_pool_size",
                                          "mariadb.max_connections", "timing.member_ttl")
    assert overridden(local, None) == ()


def test_a_cluster_value_that_does_not_fit_the_file_is_refused() -> None:
    local = make_config(timing={"member_ttl": 5})
    with pytest.raises(ConfigError, match=r"do not fit this node's file: timing.*member_ttl"):
        merged_sections(local, settings(timing={"loop_wait": "3"}))


def test_a_written_node_file_sets_only_what_it_was_given() -> None:
    """`up` writes node files with the fields it chose only: the others stay free for the cluster's."""
    written = parse_config(yaml.safe_load(dump_config(make_config(use_seed=False))))
    assert "mariadb" not in written.model_fields_set and "timing" not in written.model_fields_set
    mariadb, _ = merged_sections(written, settings(mariadb={"innodb_buffer_pool_size": "256M"}))
    assert mariadb.innodb_buffer_pool_size == "256M"


# ---- following them on a running server ---------------------------------------------------------------------
def rendered(**mariadb: object) -> dict[str, str]:
    return server_section(render_mycnf(make_config(mariadb=mariadb), CREDENTIALS, ("10.0.0.2:4567",), "u:5"))


def test_a_fresh_render_differs_only_where_the_settings_do() -> None:
    running = rendered(extra={"max_connections": "100"})
    wanted = server_section(render_mycnf(make_config(mariadb={"extra": {"max_connections": "500",
                                                                        "long_query_time": "2"},
                                                              "provider_options": {"gcs.fc_limit": "64"}}),
                                         CREDENTIALS, ()))
    found = differences(running, wanted)  # the peers and the start position differ too: not settings
    assert found.variables == {"long_query_time": "2", "max_connections": "500"}
    assert found.options == ("gcs.fc_limit",)
    catalog = {"max_connections": MAX_CONNECTIONS, "long_query_time": LONG_QUERY}
    assert at_once(found.variables, catalog) == found.variables
    assert needing_restart(found, {"max_connections", "long_query_time"}) == ("gcs.fc_limit",)
    assert not differences(running, running)


def test_a_removed_setting_goes_back_to_the_default_or_waits() -> None:
    found = differences(rendered(extra={"max_connections": "100", "innodb_page_size": "8192"}), rendered())
    assert found.variables == {"innodb_page_size": None, "max_connections": None}
    assert at_once(found.variables, {"max_connections": MAX_CONNECTIONS, "innodb_page_size": READ_ONLY}) == {
        "max_connections": None}
    assert needing_restart(found, {"max_connections"}) == ("innodb_page_size",)


def test_an_option_that_is_no_variable_waits_for_a_restart() -> None:
    found = differences(rendered(), rendered(extra={"log-bin": "mariadb-bin"}))
    assert at_once(found.variables, {}) == {}
    assert needing_restart(found, set()) == ("log_bin",)


def test_lines_galera_pilot_renders_itself_are_never_settings() -> None:
    """A new SST password or TLS path is no setting: never SET GLOBAL (nor logged), never pending."""
    running = rendered()
    other = server_section(render_mycnf(make_config(tls={"enabled": False}), Credentials.generate(), ()))
    found = differences(running, other)
    assert found.variables == {} and found.options == ()
    assert started_gcache(rendered(gcache_size="1G"), 5) == 1024 ** 3 and started_gcache({}, 5) == 5


def test_a_typed_field_change_is_a_variable_change() -> None:
    found = differences(rendered(), rendered(innodb_buffer_pool_size="256M", gcache_size="1G"))
    assert found.variables == {"innodb_buffer_pool_size": "256M"}
    assert found.options == ("gcache.size",)


names = st.from_regex(r"[a-z][a-z_]{0,12}", fullmatch=True)
values = st.from_regex(r"[A-Za-z0-9,.]{1,10}", fullmatch=True)


@given(st.dictionaries(names, values, max_size=6), st.dictionaries(names, st.none() | values, max_size=6))
def test_patching_my_cnf_changes_those_lines_only(before: dict[str, str], patch: dict[str, str | None]) -> None:
    text = "# generated\n[mariadbd]\n" + "".join(f"{k} = {v}\n" for k, v in before.items()) + \
        "\n[sst]\nsockopt = x\n\n[client]\nsocket = /s\n"
    after = patch_server_section(text, patch)
    expected = {k: v for k, v in ({**before, **patch}).items() if v is not None}
    assert server_section(after) == expected
    assert after.endswith("[sst]\nsockopt = x\n\n[client]\nsocket = /s\n")


def test_a_patched_file_keeps_option_spellings_apart() -> None:
    text = "[mariadbd]\nmax-connections = 5\n"
    assert server_section(patch_server_section(text, {"max_connections": "7"})) == {"max_connections": "7"}
    assert provider_option_map("a=1; b = 2;;c") == {"a": "1", "b": "2"}


def test_members_report_pending_restart_as_a_tuple() -> None:
    member = Member.from_dict({"name": "n", "address": "a", "pending_restart": ["x", "gcs.fc_limit"]})
    assert member.pending_restart == ("x", "gcs.fc_limit")


# ---- the agent's keeper: merged sections replace the running ones, reload re-reads the file --------------
class Lease:
    ttl = fresh_within = 0.0
    failsafe = True


def keeper_for(path: Path, data: dict[str, Any]) -> tuple[SettingsKeeper, NodeConfig, Lease]:
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    lease = Lease()
    return SettingsKeeper(config, path, CREDENTIALS, cast(WriterKeeper, lease)), config, lease


def test_the_keeper_replaces_sections_in_place_and_retunes_the_lease(tmp_path: Path) -> None:
    keeper, config, lease = keeper_for(tmp_path / "a.yaml", config_data(timing={"member_ttl": 20}))
    record = settings(mariadb={"max_connections": "500"}, timing={"loop_wait": "2", "writer_lease_ttl": "5"})
    keeper.follow(Cluster(settings=record), running=False)
    assert config.mariadb.extra == {"max_connections": "500"}
    assert (config.timing.loop_wait, config.timing.member_ttl) == (2.0, 20.0)
    assert (lease.ttl, lease.fresh_within) == (5.0, 6.0)
    assert keeper.report.revision == 1 and keeper.report.error == ""
    bad = ClusterSettings(timing={"loop_wait": "15"}, revision=2)  # against the file's member_ttl 20
    keeper.follow(Cluster(settings=bad), running=False)
    assert "do not fit" in keeper.report.error and config.timing.loop_wait == 2.0  # the last good ones stay


def test_reload_takes_the_reloadable_sections_and_refuses_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    keeper, config, _ = keeper_for(path, config_data())
    path.write_text(yaml.safe_dump(config_data(recovery={"policy": "majority"}, mariadb={"extra": {"a_b": "1"}})))
    assert keeper.reload() == ["mariadb", "recovery"]
    keeper.follow(Cluster(), running=False)
    assert config.recovery.policy == "majority" and config.mariadb.extra == {"a_b": "1"}
    path.write_text(yaml.safe_dump(config_data(ports={"api": 9000})))
    with pytest.raises(ConfigError, match="ports changed; that takes an agent restart"):
        keeper.reload()
    path.write_text("name: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        keeper.reload()
    assert config.recovery.policy == "majority"  # nothing changed by the refusals


def test_reload_takes_the_tls_enable_step_and_nothing_else_of_tls(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    keeper, config, _ = keeper_for(path, config_data(tls={"enabled": True, "migrating": "galera"}))
    path.write_text(yaml.safe_dump(config_data(tls={"enabled": True, "migrating": "sst"})))
    assert keeper.reload() == ["tls.migrating"]
    keeper.follow(Cluster(), running=False)
    assert config.tls.migrating == "sst"
    path.write_text(yaml.safe_dump(config_data(tls={"enabled": False})))
    with pytest.raises(ConfigError, match="tls changed; that takes an agent restart"):
        keeper.reload()


def test_a_server_that_does_not_answer_is_a_settings_error_not_a_failed_cycle(tmp_path: Path) -> None:
    keeper, config, _ = keeper_for(tmp_path / "a.yaml", config_data(base_dir=str(tmp_path / "node")))
    config.base_dir.mkdir()
    config.mycnf.write_text(render_mycnf(config, CREDENTIALS, ()))
    keeper.follow(Cluster(settings=settings(mariadb={"max_connections": "500"})), running=True)
    assert keeper.report.error.startswith("the settings could not be followed"), keeper.report
    assert keeper.report.gcache_bytes == config.mariadb.gcache_bytes
    keeper.follow(Cluster(settings=settings(mariadb={"max_connections": "500"})), running=False)
    assert keeper.report.error == ""
