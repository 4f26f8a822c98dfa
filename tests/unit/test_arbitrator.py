"""The managed arbitrator's pure parts: garbd's command line, what its log says, the agent's decision."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from decision_builders import position, running, snapshot, stopped
from unit_helpers import make_config

from galera_pilot.agent.arbitrator_tls import ArbitratorTls
from galera_pilot.arbitrator.decisions import ArbitratorAction, decide_arbitrator, primary_peers
from galera_pilot.arbitrator.garbd import garbd_command, garbd_options
from galera_pilot.arbitrator.garbd_log import GarbdLogReader, GarbdView, follow
from galera_pilot.cluster import ArbitratorReport, Pause, Removal, SavedView
from galera_pilot.control.ca_rotation import CaRotation
from galera_pilot.dcs.membership import publish_arbitrator
from galera_pilot.dcs.sqlite import SQLiteDCS
from galera_pilot.errors import PilotError
from galera_pilot.tls.authority import init_authority
from galera_pilot.tls.node import load_node_tls

JOINED = """\
2026-12-02 14:50:31.041  INFO: New COMPONENT: primary = yes, bootstrap = no, my_idx = 2, memb_num = 3
2026-12-02 14:50:31.042  INFO: Shifting OPEN -> PRIMARY (TO: 12)
2026-12-02 14:50:31.043  INFO: Shifting PRIMARY -> JOINER (TO: 12)
2026-12-02 14:50:31.044  INFO: Shifting JOINED -> SYNCED (TO: 12)
""".splitlines()
CUT_OFF = """\
2026-12-02 14:52:10.001  INFO: New COMPONENT: primary = no, bootstrap = no, my_idx = 0, memb_num = 1
2026-12-02 14:52:10.002  INFO: Shifting SYNCED -> OPEN (TO: 40)
""".splitlines()


def test_garbd_joins_named_peers_with_its_work_dir_weight_and_the_node_tls(tmp_path: Path) -> None:
    config = make_config(name="arbitrator1", role="arbitrator", base_dir=str(tmp_path), address="127.0.0.9",
                         arbitrator={"weight": 2}, tls={"enabled": True})
    command = garbd_command(config, ("127.0.0.2:4567", "127.0.0.3:4567"))
    assert command[:3] == ["/usr/bin/garbd", "--address", "gcomm://127.0.0.2:4567,127.0.0.3:4567"]
    assert command[command.index("--workdir") + 1] == str(tmp_path / "garbd")
    assert command[command.index("--name") + 1] == "arbitrator1"
    options = dict(item.split("=", 1) for item in garbd_options(config).split(";"))
    assert options["gmcast.listen_addr"] == "tcp://127.0.0.9:4567" and options["pc.weight"] == "2"
    assert options["pc.recovery"] == "TRUE"
    assert options["socket.ssl_cert"] == str(tmp_path / "tls" / "node.pem")
    assert options["socket.ssl_ca"] == str(tmp_path / "tls" / "ca.pem") and "socket.dynamic" not in options
    plaintext = make_config(name="arbitrator1", role="arbitrator", base_dir=str(tmp_path), tls={"enabled": False})
    assert "socket.ssl" not in garbd_options(plaintext)
    with pytest.raises(ValueError, match="at least one running member"):
        garbd_command(config, ())


def test_garbd_log_follows_its_component_and_state() -> None:
    joined = follow(GarbdView(), JOINED)
    assert (joined.primary, joined.size, joined.state) == (True, 3, "SYNCED")
    cut = follow(joined, CUT_OFF)
    assert (cut.primary, cut.size, cut.state) == (False, 1, "OPEN")
    assert "Shifting SYNCED -> OPEN" in cut.last_line


def test_the_log_reader_takes_whole_lines_and_starts_over_for_a_new_garbd(tmp_path: Path) -> None:
    path = tmp_path / "garbd.log"
    reader = GarbdLogReader(path)
    assert reader.look() == GarbdView()  # no log yet
    path.write_text("\n".join(JOINED) + "\n" + CUT_OFF[0][:40])  # the last line half written
    assert reader.look().primary
    with open(path, "a") as log:
        log.write(CUT_OFF[0][40:] + "\n")
    assert not reader.look().primary
    reader.restart()  # a new garbd: what the old one wrote no longer counts
    assert reader.look() == GarbdView()
    path.write_text(JOINED[0] + "\n")  # replaced by a shorter file: read from its start
    assert reader.look().size == 3


CLUSTER = snapshot(running("n2"), running("n1"), stopped("n3"))


def test_garbd_starts_only_through_members_of_a_primary_component() -> None:
    decision = decide_arbitrator("arbitrator1", False, GarbdView(), CLUSTER, 0.0)
    gcomm = {m.name: m.gcomm_address for m in CLUSTER.members.values()}
    assert decision.action == ArbitratorAction.START and "through n1, n2" in decision.reason
    assert decision.peers == primary_peers(CLUSTER) == tuple(sorted((gcomm["n1"], gcomm["n2"])))
    nobody = snapshot(stopped("n1"), stopped("n2"), running("n3", status="non-Primary", state="Initialized"))
    waiting = decide_arbitrator("arbitrator1", False, GarbdView(), nobody, 0.0)
    assert waiting.action == ArbitratorAction.NONE and "never bootstraps" in waiting.reason


def test_an_exited_garbd_waits_out_its_backoff() -> None:
    decision = decide_arbitrator("arbitrator1", False, GarbdView(), CLUSTER, 4.0)
    assert decision.action == ArbitratorAction.NONE and "again in 4 s" in decision.reason


def test_a_running_garbd_is_left_to_galera_in_any_component() -> None:
    for view in (follow(GarbdView(), JOINED), follow(GarbdView(), JOINED + CUT_OFF), GarbdView()):
        assert decide_arbitrator("arbitrator1", True, view, CLUSTER, 0.0).action == ArbitratorAction.NONE
    assert "Primary Component of 3" in decide_arbitrator("arbitrator1", True, follow(GarbdView(), JOINED),
                                                         CLUSTER, 0.0).reason


def test_paused_nothing_is_started_and_removed_it_leaves() -> None:
    paused = replace(CLUSTER, pause=Pause(by="person", at=0.0))
    assert decide_arbitrator("arbitrator1", False, GarbdView(), paused, 0.0).action == ArbitratorAction.NONE
    removed = replace(paused, removed={"arbitrator1": Removal("arbitrator1", "person", 0.0)})
    assert decide_arbitrator("arbitrator1", True, GarbdView(), removed, 0.0).action == ArbitratorAction.LEAVE


def test_the_report_survives_the_dcs_round_trip_and_ignores_unknown_fields() -> None:
    report = ArbitratorReport("arbitrator1", "127.0.0.9", running=True, state="SYNCED", primary=True,
                              component_size=3, weight=1, gcomm_uuid="abc")
    assert ArbitratorReport.from_dict({**report.to_dict(), "from_a_newer_agent": 1}) == report
    assert report.gcomm_address == "127.0.0.9:4567"


def test_garbd_starts_towards_members_waiting_for_pc_recovery_of_a_view_that_names_it() -> None:
    garbd, other = "aaaaaaaa-0000-0000-0000-000000000009", "aaaaaaaa-0000-0000-0000-000000000001"
    view = SavedView(other, "5 x 7", tuple(sorted((other, garbd))))
    waiting = replace(running("n1", status="non-Primary", state="Initialized"),
                      position=replace(position(10), saved_view=view))
    cluster = snapshot(waiting, stopped("n2", position(9)))
    decision = decide_arbitrator("arbitrator1", False, GarbdView(), cluster, 0.0, saved_instance=garbd)
    assert decision.action == ArbitratorAction.START and "pc.recovery" in decision.reason
    assert decision.peers == (waiting.gcomm_address,)
    # Another instance (no work dir, or a view without it): it waits for a Primary Component instead.
    for instance in ("", "bbbbbbbb-0000-0000-0000-000000000002"):
        assert decide_arbitrator("arbitrator1", False, GarbdView(), cluster, 0.0, instance).action == \
            ArbitratorAction.NONE


def test_a_new_bundle_restarts_garbd_only_when_it_is_good(tmp_path: Path) -> None:
    """`pki rotate` rewrote the bundle: garbd, which cannot reload, must restart on it; a broken copy is
    reported and changes nothing."""
    authority = init_authority(tmp_path / "pki", "arbtest")
    config = make_config(name="arbitrator1", role="arbitrator", base_dir=str(tmp_path / "arbitrator1"),
                         address="127.0.0.9", tls={"enabled": True})
    authority.issue_bundle("arbitrator1", ["127.0.0.9"], out=config.tls_bundle)
    current = load_node_tls(config)
    assert current is not None
    events: list[tuple[str, str]] = []
    keeper = ArbitratorTls(config, current, lambda action, reason, inputs=None: events.append((action, reason)))
    assert not keeper.changed()  # nothing new
    authority.issue_bundle("arbitrator1", ["127.0.0.9"], out=config.tls_bundle)  # pki rotate
    assert keeper.changed() and not keeper.changed() and keeper.error is None
    (config.tls_bundle / "node.pem").write_text("not a certificate\n")
    assert not keeper.changed() and keeper.error is not None and "node.pem" in keeper.error
    assert events and events[-1][0] == "tls"


def test_a_ca_rotation_refuses_while_an_arbitrator_reports(tmp_path: Path) -> None:
    """Its agent reports no trust for the phases to follow: the rotation would leave garbd behind."""
    authority = init_authority(tmp_path / "pki", "arbtest")
    store = SQLiteDCS(tmp_path / "dcs.sqlite", "arbtest")
    publish_arbitrator(store, ArbitratorReport("arbitrator1", "127.0.0.9", running=True, primary=True), 60)
    with pytest.raises(PilotError, match=r"runs an arbitrator \(arbitrator1\)"):
        CaRotation(authority, [], lambda line: None, store=store).run()
    assert not (authority.dir / "ca-next.pem").exists()
