"""The CA rotation's phases (tls/ca_rotation.py): what each phase writes, what every host must report
once it has it, and that each step can be run again after a crash in its middle.

Real certificates and TLS handshakes with Python's ssl module: a phase is right only if a host that has
taken it still talks to a host one phase behind (and after the last one, refuses the old CA)."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galera_pilot.errors import PilotError
from galera_pilot.tls import ca_rotation as phases
from galera_pilot.tls import pki
from galera_pilot.tls.authority import NEXT_CA, ROTATION, Authority, init_authority
from galera_pilot.tls.bundle import Bundle, load_bundle
from galera_pilot.tls.contexts import client_context, server_context

HOSTS = ("node1", "node2", "proxy")


@pytest.fixture
def world(tmp_path: Path) -> tuple[Authority, list[tuple[str, Path]]]:
    """A PKI and three hosts' bundles, issued before any rotation."""
    authority = init_authority(tmp_path / "pki", "test")
    bundles = []
    for index, name in enumerate(HOSTS):
        target = tmp_path / name / "tls"
        authority.issue_bundle(name, [f"127.0.0.{index + 2}"], out=target)
        bundles.append((name, target))
    return authority, bundles


def loaded(bundles: list[tuple[str, Path]]) -> dict[str, Bundle]:
    return {name: load_bundle(path) for name, path in bundles}


def handshake(server: Bundle, client: Bundle) -> None:
    """A mutual TLS handshake over a socket pair, `server` verifying `client` and the other way round
    (as Galera's links, the REST API with a client certificate and HAProxy's checks do)."""
    server_side, client_side = socket.socketpair()
    server_ctx = server_context(server.cert, server.key, server.ca)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    client_ctx = client_context(client.ca, client.cert, client.key)
    client_ctx.check_hostname = False
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            with server_ctx.wrap_socket(server_side, server_side=True) as wrapped:
                wrapped.recv(1)
        except (ssl.SSLError, OSError) as error:
            failure.append(error)
    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with client_ctx.wrap_socket(client_side) as wrapped:
            wrapped.sendall(b"x")
    finally:
        thread.join(5)
    if failure:
        raise failure[0]


# ---- pure: the order of phases and what hosts report ------------------------------------------------------
def test_phases_come_in_order_then_the_restart() -> None:
    state = None
    seen = []
    for _ in range(4):
        step = phases.next_phase(state)
        seen.append(step)
        if step == "restart":
            break
        state = phases.RotationState(step, "aaaa", "bbbb", "now")
    assert seen == ["trust", "reissue", "drop", "restart"]


def test_what_every_host_reports_after_each_phase() -> None:
    state = phases.RotationState("trust", "old1", "new1", "t")
    assert phases.expected(state) == phases.Expected(("new1", "old1"), "old1")
    assert phases.expected(phases.RotationState("reissue", "old1", "new1", "t")) == \
        phases.Expected(("new1", "old1"), "new1")
    assert phases.expected(phases.RotationState("drop", "old1", "new1", "t")) == phases.Expected(("new1",), "new1")


@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d"]),
                       st.tuples(st.lists(st.sampled_from(["old", "new", "other"]), max_size=3, unique=True)
                                 .map(tuple), st.sampled_from(["old", "new", ""]))),
       st.sampled_from(["trust", "reissue", "drop"]))
def test_a_host_lags_exactly_when_its_report_differs(reports: dict[str, tuple[tuple[str, ...], str]],
                                                      phase: phases.Phase) -> None:
    wanted = phases.expected(phases.RotationState(phase, "old", "new", "t"))
    lagging = phases.laggards(reports, wanted)
    for name, (trust, signer) in reports.items():
        assert (name in lagging) == (tuple(sorted(trust)) != wanted.trust or signer != wanted.signer)
    assert set(lagging) <= set(reports)


def test_a_record_written_by_something_else_is_refused(world: tuple[Authority, list]) -> None:
    authority, _ = world
    (authority.dir / ROTATION).write_text(json.dumps({"phase": "finished", "old": "a", "new": "b", "started": "t"}))
    with pytest.raises(PilotError, match="does not record a CA rotation phase"):
        phases.read_state(authority)
    (authority.dir / ROTATION).write_text("{not json")
    with pytest.raises(PilotError, match="cannot be read"):
        phases.read_state(authority)


# ---- the files of each phase, and that hosts one phase apart still talk --------------------------------
def test_three_phases_move_every_host_to_the_new_ca_without_a_gap(world: tuple[Authority, list]) -> None:
    authority, bundles = world
    before = loaded(bundles)
    old_id = before["node1"].signer_id()
    kept = shutil.copytree(bundles[2][1], bundles[2][1].parent / "kept")  # the proxy's bundle as it was

    state = phases.begin(authority)
    assert phases.read_state(authority) == state and state.old == old_id and state.new != old_id
    assert (authority.dir / f"{NEXT_CA}.key").stat().st_mode & 0o077 == 0
    # Phase 1 reached node1 only: it trusts both, the others the old CA alone; all still talk.
    phases.trust_bundles(authority, [bundles[0][1]])
    now = loaded(bundles)
    assert now["node1"].trust_ids() == tuple(sorted((state.old, state.new)))
    handshake(now["node1"], now["node2"])
    handshake(now["node2"], now["node1"])
    phases.trust_bundles(authority, [path for _, path in bundles])
    assert {b.trust_ids() for b in loaded(bundles).values()} == {phases.expected(state).trust}

    state = phases.mark(authority, state, "reissue")
    assert pki.short_id(pki.describe(authority.signing_ca().cert_pem)) == state.new
    # Phase 2 reached node1 only: its new certificate is accepted by hosts that still present old ones.
    phases.reissue_bundles(authority, bundles[:1])
    now = loaded(bundles)
    assert now["node1"].signer_id() == state.new and now["node2"].signer_id() == state.old
    assert now["node1"].facts.ips == before["node1"].facts.ips  # the names it had
    handshake(now["node1"], now["node2"])
    handshake(now["node2"], now["node1"])
    phases.reissue_bundles(authority, bundles[1:])

    state = phases.promote(authority, state)
    assert phases.read_state(authority) == state
    assert pki.short_id(pki.describe(authority.node_ca().cert_pem)) == state.new
    assert not (authority.dir / f"{NEXT_CA}.key").exists()
    assert (authority.dir / phases.RETIRED / f"ca-{state.old}.pem").exists()
    # Phase 3 reached node1 only: it trusts the new CA alone, and every host presents a new certificate.
    phases.trust_bundles(authority, [bundles[0][1]])
    now = loaded(bundles)
    assert now["node1"].trust_ids() == (state.new,)
    handshake(now["node1"], now["node2"])
    handshake(now["node2"], now["node1"])
    # ...and no longer accepts a certificate of the old CA.
    with pytest.raises(ssl.SSLError):
        handshake(now["node1"], load_bundle(kept))
    assert phases.next_phase(state) == "restart"
    phases.finish(authority)
    assert phases.read_state(authority) is None
    assert pki.short_id(pki.describe(authority.signing_ca().cert_pem)) == state.new


def test_begin_again_keeps_the_incoming_ca(world: tuple[Authority, list]) -> None:
    """A run killed after the new CA was made but before the phase was recorded makes no second one."""
    authority, _ = world
    first = phases.begin(authority)
    (authority.dir / ROTATION).unlink()
    again = phases.begin(authority)
    assert (again.old, again.new) == (first.old, first.new)
    assert len(pki.describe_all(authority.trust_pem())) == 2


def test_promote_again_after_a_crash_between_the_moves(world: tuple[Authority, list]) -> None:
    """Killed after the certificate moved but before the key did: the next run moves the key only, and
    the node CA's certificate and key belong together again."""
    authority, _ = world
    state = phases.mark(authority, phases.begin(authority), "reissue")
    (authority.dir / f"{NEXT_CA}.pem").replace(authority.ca_file)  # the first half of promote
    state = phases.promote(authority, state)
    ca = authority.node_ca()
    assert pki.short_id(pki.describe(ca.cert_pem)) == state.new
    leaf = pki.issue(ca, "node9", ["127.0.0.9"])
    assert pki.signed_by(leaf.cert_pem, [ca.cert_pem])
    assert not (authority.dir / phases.RETIRED / f"ca-{state.new}.pem").exists()


def test_new_bundles_during_a_rotation_follow_its_phase(world: tuple[Authority, list], tmp_path: Path) -> None:
    """`pki issue` (or an agent renewing itself) in the middle of a rotation: trusted by every host."""
    authority, _ = world
    state = phases.begin(authority)
    early = load_bundle(authority.issue_bundle("late1", ["127.0.0.21"], out=tmp_path / "late1"))
    assert early.signer_id() == state.old and len(early.trust_ids()) == 2
    phases.mark(authority, state, "reissue")
    later = load_bundle(authority.issue_bundle("late2", ["127.0.0.22"], out=tmp_path / "late2"))
    assert later.signer_id() == state.new and len(later.trust_ids()) == 2


def test_issued_bundles_lists_what_pki_issue_wrote(world: tuple[Authority, list]) -> None:
    authority, _ = world
    authority.issue_bundle("db1", ["10.0.0.1"])
    (authority.dir / "issued" / "junk").mkdir()
    assert [name for name, _ in phases.issued_bundles(authority)] == ["db1"]


def test_a_run_stopped_inside_a_phase_is_finished_by_the_next_run(world: tuple[Authority, list]) -> None:
    """Killed after re-issuing one bundle of three: the next run re-issues the two left behind before it
    goes on (waiting for hosts whose bundles were never written would never end). Killed inside phase 3's
    promotion (the certificate moved, the phase not recorded): the next run finishes the promotion."""
    from galera_pilot.control.ca_rotation import CaRotation

    authority, bundles = world
    said: list[str] = []
    state = phases.mark(authority, phases.begin(authority), "reissue")
    phases.trust_bundles(authority, [path for _, path in bundles])
    phases.reissue_bundles(authority, bundles[:1])
    CaRotation(authority, bundles, said.append).run()  # converges phase 2, then writes phase 3
    assert any("phase 2 again for node2, proxy" in line for line in said), said
    assert phases.read_state(authority).phase == "drop"  # type: ignore[union-attr]
    assert {load_bundle(path).signer_id() for _, path in bundles} == {state.new}
    assert {load_bundle(path).trust_ids() for _, path in bundles} == {(state.new,)}

    authority2 = init_authority(authority.dir.parent / "pki2", "t2")
    state2 = phases.mark(authority2, phases.begin(authority2), "reissue")
    (authority2.dir / f"{NEXT_CA}.pem").replace(authority2.ca_file)  # promote's first move, then killed
    with pytest.raises(PilotError, match="what is left is a rolling restart"):
        CaRotation(authority2, [], said.append).run()  # promotion finished; the roll needs the cluster
    assert phases.read_state(authority2).phase == "drop"  # type: ignore[union-attr]
    assert pki.short_id(pki.describe(authority2.signing_ca().cert_pem)) == state2.new
