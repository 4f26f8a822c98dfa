"""Kernel endpoints, the pure part (proxy/kernel_rules.py): who the endpoints lead to, round after round,
and the nftables script, which the real `nft` must accept (`nft -c`: checked, never applied)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.proxy.haproxy_config import ProxyBackend
from galera_pilot.proxy.kernel_rules import (
    FALL,
    Answer,
    CheckState,
    Targets,
    answer_from_status,
    judge,
    kernel_backend_refusal,
    render_ruleset,
    table_name,
)

NODES = [ProxyBackend(f"node{i}", f"127.0.0.{i + 1}") for i in (1, 2, 3)]
WRITER = ("127.0.0.1", 3306)
READER = ("127.0.0.1", 3307)


def names(targets: Targets) -> tuple[str | None, list[str]]:
    return (targets.writer.name if targets.writer else None), [b.name for b in targets.readers]


def test_the_writer_and_the_readers_follow_the_agents_answers() -> None:
    state = CheckState()
    answers = {"node1": Answer(True, True), "node2": Answer(False, True), "node3": Answer(False, False)}
    assert names(judge(NODES, answers, state)) == ("node1", ["node1", "node2"])
    # An agent's own "no" counts at once: that is a considered answer, not a lost packet.
    answers["node1"] = Answer(False, True)
    answers["node2"] = Answer(True, True)
    assert names(judge(NODES, answers, state)) == ("node2", ["node1", "node2"])


def test_a_silent_agent_keeps_its_place_for_one_round_only() -> None:
    state = CheckState()
    judge(NODES, {"node1": Answer(True, True), "node2": Answer(False, True), "node3": Answer(False, True)}, state)
    silent = {"node1": None, "node2": Answer(False, True), "node3": Answer(False, True)}
    for _ in range(FALL - 1):
        assert names(judge(NODES, silent, state)) == ("node1", ["node1", "node2", "node3"])
    assert names(judge(NODES, silent, state)) == (None, ["node2", "node3"])
    # Once out, an agent that is still silent does not come back; its first answer brings it back.
    assert names(judge(NODES, silent, state)) == (None, ["node2", "node3"])
    back = {"node1": Answer(True, True), "node2": Answer(False, True), "node3": Answer(False, True)}
    assert names(judge(NODES, back, state)) == ("node1", ["node1", "node2", "node3"])


def test_a_silent_member_that_was_out_does_not_get_in() -> None:
    state = CheckState()
    assert names(judge(NODES, {"node1": None, "node2": Answer(True, True)}, state)) == ("node2", ["node2"])


def test_two_claimants_in_one_round_get_no_writes() -> None:
    state = CheckState()
    answers = {"node1": Answer(True, True), "node2": Answer(True, True), "node3": Answer(False, True)}
    assert names(judge(NODES, answers, state))[0] is None


answer = st.one_of(st.none(), st.builds(Answer, st.booleans(), st.booleans()))


@given(st.lists(st.fixed_dictionaries({n.name: answer for n in NODES}), min_size=1, max_size=12))
def test_never_a_writer_nobody_claimed_lately(rounds: list[dict[str, Answer | None]]) -> None:
    """Whatever the answers: at most one writer, and it answered writer=True in one of the last FALL
    rounds without answering anything else since (silence only, up to FALL - 1 rounds)."""
    state = CheckState()
    for index, answers in enumerate(rounds):
        targets = judge(NODES, answers, state)
        if targets.writer is None:
            continue
        name = targets.writer.name
        recent = [r.get(name) for r in rounds[max(0, index - FALL + 1):index + 1]]
        last_said = next((a for a in reversed(recent) if a is not None), None)
        assert last_said is not None and last_said.writer, (index, rounds)
        readers = {b.name for b in targets.readers}
        assert readers <= {n.name for n in NODES}


def test_answers_come_from_the_status_routing_block() -> None:
    assert answer_from_status({"routing": {"writer": True, "read": False}}) == Answer(True, False)
    assert answer_from_status({"name": "node1"}) is None
    assert answer_from_status(None) is None


def test_table_names_and_targets_the_kernel_can_use() -> None:
    assert table_name("prod-eu", 3306) == "galera_pilot_prod_eu_3306"
    assert kernel_backend_refusal(NODES[0]) == ""
    assert "not an IPv4 address" in kernel_backend_refusal(ProxyBackend("node9", "db9.example.org"))


def test_the_script_replaces_the_table_and_refuses_an_endpoint_without_targets() -> None:
    text = render_ruleset("galera_pilot_t_3306", WRITER, READER, Targets(None, (NODES[1], NODES[2])))
    lines = text.splitlines()
    assert lines[:3] == ["table ip galera_pilot_t_3306", "delete table ip galera_pilot_t_3306",
                         "table ip galera_pilot_t_3306 {"]
    assert "ip daddr 127.0.0.1 tcp dport 3306 reject with tcp reset" in text
    assert ("ip daddr 127.0.0.1 tcp dport 3307 dnat ip to numgen random mod 2 map "
            "{ 0 : 127.0.0.3 . 3306, 1 : 127.0.0.4 . 3306 }") in text
    single = render_ruleset("galera_pilot_t_3306", WRITER, READER, Targets(NODES[0], (NODES[0],)))
    assert "ip daddr 127.0.0.1 tcp dport 3306 dnat to 127.0.0.2:3306" in single
    assert "reject" not in single


@pytest.mark.parametrize("targets", [Targets(), Targets(NODES[0], tuple(NODES)), Targets(None, (NODES[2],))])
def test_nft_accepts_the_script(targets: Targets) -> None:
    assert shutil.which("nft"), "nft is missing: run scripts/setup.sh"
    text = render_ruleset("galera_pilot_unit_check_3306", WRITER, READER, targets)
    checked = subprocess.run(["nft", "-c", "-f", "-"], input=text, capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
