"""`list` while the DCS is down (control/members.py): who is asked, what is learned from whom, and what
each row says. The members' answers are dictionaries shaped like an agent's /status (pure logic)."""

from __future__ import annotations

from typing import Any

from galera_pilot.cluster import Cluster, Member, RosterEntry
from galera_pilot.control.members import ask_members, outage_heading, rows_from_snapshot
from galera_pilot.control.target import ClusterTarget, KnownMember

URLS = {f"node{i}": f"http://10.0.0.1{i}:8008" for i in range(1, 5)}


def status(name: str, writer: bool = False, peers: tuple[str, ...] = (), state: str = "Synced") -> dict[str, Any]:
    member = Member(name, URLS[name][7:-5], api_url=URLS[name], running=True, state=state,
                    cluster_status="Primary", cluster_size=3, seqno=42).to_dict()
    member["routing"] = {"writer": writer, "maintenance": False, "healthy": True}
    member["peers"] = {p: {"api_url": URLS[p], "address": URLS[p][7:-5], "client_port": 3306} for p in peers}
    return member


def fetcher(answers: dict[str, dict[str, Any] | None], asked: list[str]):
    by_url = {URLS[name]: document for name, document in answers.items()}

    def fetch(url: str) -> dict[str, Any] | None:
        asked.append(url)
        return by_url.get(url)
    return fetch


def known(*names: str) -> dict[str, KnownMember]:
    return {n: KnownMember(n, URLS[n]) for n in names}


def test_one_reachable_member_names_the_others() -> None:
    asked: list[str] = []
    answers = {"node1": status("node1", writer=True, peers=("node2", "node3")), "node2": status("node2"),
               "node3": None}
    view = ask_members(known("node1"), fetcher(answers, asked))
    assert sorted(asked) == [URLS["node1"], URLS["node2"], URLS["node3"]]  # each asked once
    assert view.answered == ["node1", "node2"] and view.silent == ["node3"]
    rows = {row["name"]: row for row in view.rows}
    assert rows["node1"]["role"] == "writer" and rows["node1"]["state"] == "Synced" and rows["node1"]["seqno"] == 42
    assert rows["node2"]["role"] == ""
    assert rows["node3"]["state"] == "unreachable" and URLS["node3"] in str(rows["node3"]["activity"])
    assert rows["node3"]["address"] == "10.0.0.13"


def test_peers_named_by_several_members_are_asked_once_and_rounds_end() -> None:
    asked: list[str] = []
    every = ("node1", "node2", "node3", "node4")
    answers: dict[str, dict[str, Any] | None] = {
        n: status(n, peers=tuple(p for p in every if p != n)) for n in every}
    view = ask_members(known("node1", "node2"), fetcher(answers, asked))
    assert sorted(asked) == sorted(URLS.values())
    assert view.answered == list(every)


def test_nothing_known_nothing_asked() -> None:
    asked: list[str] = []
    view = ask_members({}, fetcher({}, asked))
    assert asked == [] and view.rows == []
    target = ClusterTarget("etcd://10.0.0.11:2379", "prod", "etcd://10.0.0.11:2379")
    assert "no member address is known here" in outage_heading(target, "the DCS x is unreachable: y", view)


def test_rows_from_the_dcs_include_roster_members_without_a_heartbeat() -> None:
    snapshot = Cluster(members={"node2": Member("node2", "10.0.0.12", state="Synced")},
                       roster={"node1": RosterEntry("node1", "10.0.0.11", stopped_gracefully=True),
                               "node3": RosterEntry("node3", "10.0.0.13")},
                       writer="node2", maintenance=frozenset())
    target = ClusterTarget("etcd://x:1", "prod", "x", known=known("node4"))
    rows = {row["name"]: row for row in rows_from_snapshot(target, snapshot)}
    assert [r for r in rows] == ["node1", "node2", "node3", "node4"]
    assert rows["node1"]["state"] == "stopped" and rows["node3"]["state"] == "unreachable"
    assert rows["node2"]["role"] == "writer"
    assert rows["node4"]["activity"] == "no heartbeat in the DCS"
