"""A datadir's lineage (backup/lineage.py): written once by a full backup, kept while the datadir is this
node's own, and counted as none when the file is gone or names another node (a copied datadir)."""

from __future__ import annotations

from pathlib import Path

from galera_pilot.backup.lineage import LINEAGE_FILE, ensure_lineage, read_lineage


def test_a_full_backup_writes_the_lineage_once_and_keeps_it(tmp_path: Path) -> None:
    assert read_lineage(tmp_path, "node2") is None
    first = ensure_lineage(tmp_path, "node2")
    assert first.startswith("node2:") and len(first) > len("node2:") + 8
    assert ensure_lineage(tmp_path, "node2") == first == read_lineage(tmp_path, "node2")
    assert (tmp_path / LINEAGE_FILE).stat().st_mode & 0o777 == 0o644


def test_another_nodes_file_an_empty_or_unreadable_one_counts_as_none(tmp_path: Path) -> None:
    path = tmp_path / LINEAGE_FILE
    for text in ("node1:abcdef\n", "node2:\n", "", "node2"):
        path.write_text(text)
        assert read_lineage(tmp_path, "node2") is None, text
    path.write_bytes(b"\xff\xfe")
    assert read_lineage(tmp_path, "node2") is None
    path.write_text("node1:abcdef\n")  # a copy of node1's datadir: the next full starts another lineage
    renewed = ensure_lineage(tmp_path, "node2")
    assert renewed.startswith("node2:") and path.read_text().strip() == renewed
