"""The small pure parts of point-in-time recovery's adapters: the binlog text filter and the position
mariadb-backup reports."""

from __future__ import annotations

import io
from pathlib import Path

from galera_pilot.backup.replay import _filter
from galera_pilot.backup.tools import last_gtid


def test_the_server_id_lines_a_wsrep_gtid_mode_node_refuses_are_dropped_and_nothing_else() -> None:
    text = (b"# at 330\n/*M!100001 SET @@session.gtid_domain_id=1*//*!*/;\n"
            b"/*M!100001 SET @@session.server_id=1*//*!*/;\n/*M!100001 SET @@session.gtid_seq_no=5*//*!*/;\n"
            b"BINLOG '\nAAAA\n'/*!*/;\n/*!100001 SET @@SESSION.SERVER_ID=@@GLOBAL.SERVER_ID */;\n")
    out = io.BytesIO()
    out.close = lambda: None  # type: ignore[method-assign]  # read it after the filter closes it
    _filter(io.BytesIO(text), out)
    assert out.getvalue() == text.replace(b"/*M!100001 SET @@session.server_id=1*//*!*/;\n", b"").replace(
        b"/*!100001 SET @@SESSION.SERVER_ID=@@GLOBAL.SERVER_ID */;\n", b"")


def test_the_backup_tools_gtid_is_read_from_its_log(tmp_path: Path) -> None:
    log = tmp_path / "tool.log"
    log.write_text("[00] 2026-12-03 15:00:00 MySQL binlog position: filename 'mariadb-bin.000003', position '1631', "
                   "GTID of the last change '0-1-1,1-1-9'\n")
    assert last_gtid(log) == "0-1-1,1-1-9"
    log.write_text("[00] no binary log\n")
    assert last_gtid(log) == "" and last_gtid(tmp_path / "missing") == ""
