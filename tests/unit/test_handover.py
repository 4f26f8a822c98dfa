"""handover.py's refusals, pure: a switchover target or a member put in maintenance must be able to act.

`maintenance on` refuses an agent that answers but has not read the DCS for more than KEEPER_STALE (it
would never see the mark, so nothing would drain it); a switchover also needs the target healthy, out of
maintenance and seeing the same writer. (An integration test under libfaketime proved too load-dependent
for the maintenance case: the stalled agent's /status may miss the CLI's 1 s timeout, which by design
counts as "already out of the endpoints".)
"""

from __future__ import annotations

from galera_pilot.routing.handover import KEEPER_STALE, keeper_refusal, target_refusal


def document(ago: float | None = 0.2, healthy: bool = True, maintenance: bool = False, holder: str = "node1",
             error: str | None = None) -> dict:
    return {"routing": {"writer_keeper_ago": ago, "healthy": healthy, "health": "Primary and Synced" if healthy
                        else "no answer from mariadbd for 2.0 s", "maintenance": maintenance,
                        "writer_holder": holder, "writer_error": error}}


def test_a_keeper_that_read_the_dcs_lately_may_act() -> None:
    assert keeper_refusal(document(0.2)) == ""
    assert keeper_refusal(document(KEEPER_STALE)) == ""


def test_a_stalled_or_cut_off_keeper_is_refused_with_the_reason() -> None:
    assert keeper_refusal(document(KEEPER_STALE + 1.9)) == "its agent has read the DCS not for 2.9 s"
    assert keeper_refusal(document(None)) == "its agent has read the DCS never"
    why = keeper_refusal(document(12.0, error="no etcd endpoint answered"))
    assert why.endswith("(last error: no etcd endpoint answered)")


def test_a_switchover_target_must_be_able_to_take_the_role() -> None:
    assert target_refusal(document(), "", "node1") == ""
    assert target_refusal(None, "connection refused", "node1") == "its agent does not answer: connection refused"
    assert target_refusal(document(healthy=False), "", "node1").startswith("it is not healthy")
    assert target_refusal(document(maintenance=True), "", "node1") == "it is in maintenance"
    assert target_refusal(document(5.0), "", "node1").startswith("its agent has read the DCS not for")
    assert target_refusal(document(holder="node2"), "", "node1") == "it sees node2 as the writer, not node1"
