"""Replacing the node CA without downtime, in three phases, each reaching every host before the next:

  1. trust    a new CA is made (PKI/ca-next); PKI/ca.pem and every bundle's ca.pem hold both CAs,
              certificates unchanged
  2. reissue  every certificate is re-issued by the new CA, with the names it had; ca.pem still both
  3. drop     the new CA becomes PKI/ca.pem and ca.key, the old one is retired (its key deleted), every
              bundle trusts the new CA only; then a rolling restart, because Galera keeps a CA it once
              loaded trusted until mariadbd restarts (socket.ssl_reload adds, it never forgets)

Why the order: a host that trusts only the old CA refuses a certificate from the new one, so nobody may
present one (phase 2) before everybody trusts it (phase 1); and nobody may stop trusting the old CA
(phase 3) while somebody still presents a certificate it signed. Each host reports what it trusts and
which CA signed its certificate (`Member.tls_trust`, `tls_signer`); `expected()` says what every host
must report once a phase has reached it.

The phase reached is recorded in PKI/ca-rotation.json *after* its files are written, and every step is
safe to run again: an interrupted `pki rotate-ca` is continued by running it again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

from galera_pilot.errors import PilotError
from galera_pilot.files import write_private
from galera_pilot.tls import pki
from galera_pilot.tls.authority import NEXT_CA, NODE_CA, ROTATION, Authority
from galera_pilot.tls.bundle import CERT, write_trust

Phase = Literal["trust", "reissue", "drop"]
PHASES: tuple[Phase, ...] = ("trust", "reissue", "drop")
RETIRED = "retired"


@dataclass(frozen=True)
class RotationState:
    """What PKI/ca-rotation.json records: the last phase whose files are written, and the two CAs."""

    phase: Phase
    old: str  # short fingerprints (pki.short_id)
    new: str
    started: str  # ISO 8601, UTC

    def to_dict(self) -> dict[str, str]:
        return {"phase": self.phase, "old": self.old, "new": self.new, "started": self.started}


@dataclass(frozen=True)
class Expected:
    """What every host reports once a phase has reached it."""

    trust: tuple[str, ...]  # sorted
    signer: str

    def describe(self) -> str:
        return f"trusting {' and '.join(self.trust)}, certificate signed by {self.signer}"


def read_state(authority: Authority) -> RotationState | None:
    data = authority.rotation()
    if data is None:
        return None
    if data.get("phase") not in PHASES or not all(isinstance(data.get(k), str) for k in ("old", "new", "started")):
        raise PilotError(f"{authority.dir / ROTATION} does not record a CA rotation phase ({data!r}); it was "
                         "written by something else")
    return RotationState(cast(Phase, data["phase"]), data["old"], data["new"], data["started"])


def next_phase(state: RotationState | None) -> Phase | Literal["restart"]:
    """What comes after the recorded phase: the first phase, the next one, or the rolling restart."""
    if state is None:
        return "trust"
    if state.phase == "drop":
        return "restart"
    return PHASES[PHASES.index(state.phase) + 1]


def expected(state: RotationState) -> Expected:
    """What hosts report once `state.phase` has reached them."""
    if state.phase == "trust":
        return Expected(tuple(sorted((state.old, state.new))), state.old)
    if state.phase == "reissue":
        return Expected(tuple(sorted((state.old, state.new))), state.new)
    return Expected((state.new,), state.new)


def laggards(reports: dict[str, tuple[tuple[str, ...], str]], wanted: Expected) -> dict[str, str]:
    """Hosts (name -> (trust, signer) they report) that have not reached `wanted`, with what they report."""
    return {name: f"trusts {' and '.join(trust) or 'nothing'}, certificate signed by {signer or 'nobody known'}"
            for name, (trust, signer) in sorted(reports.items())
            if tuple(sorted(trust)) != wanted.trust or signer != wanted.signer}


def _record(authority: Authority, state: RotationState | None) -> None:
    path = authority.dir / ROTATION
    if state is None:
        path.unlink(missing_ok=True)
    else:
        write_private(path, json.dumps(state.to_dict()) + "\n", 0o644)


def begin(authority: Authority, common_name: str | None = None) -> RotationState:
    """Phase 1's PKI side: the incoming CA (made once: a rerun keeps it) and trust.pem with both CAs."""
    old = pki.describe(authority.node_ca().cert_pem)
    if not (authority.dir / f"{NEXT_CA}.key").exists():
        now = pki.now_utc()
        base = old.subject.split("CN=", 1)[-1].split(",", 1)[0].split(" (", 1)[0]
        # A name of its own: two CAs with one subject in one file leave chain building to key identifiers,
        # which not every TLS stack here looks at first.
        incoming = pki.make_ca(common_name or f"{base} ({now:%Y-%m-%d %H:%M:%S})")
        write_private(authority.dir / f"{NEXT_CA}.key", incoming.key_pem.decode())
        write_private(authority.dir / f"{NEXT_CA}.pem", incoming.cert_pem.decode(), 0o644)
    incoming = authority.next_ca()
    new = pki.describe(incoming.cert_pem)
    # The outgoing CA stays first: it is the one ca.key belongs to until phase 3.
    both = authority.node_ca().cert_pem.rstrip(b"\n") + b"\n" + incoming.cert_pem
    write_private(authority.ca_file, both.decode(), 0o644)
    state = RotationState("trust", pki.short_id(old), pki.short_id(new), pki.now_utc().isoformat(timespec="seconds"))
    _record(authority, state)
    return state


def trust_bundles(authority: Authority, bundles: Iterable[Path]) -> list[str]:
    """Phases 1 and 3 on the hosts' side: each bundle's ca.pem becomes what the PKI trusts now."""
    trusted = authority.trust_pem()
    done = []
    for bundle in bundles:
        write_trust(bundle, trusted)
        done.append(bundle.name if bundle.name != "tls" else bundle.parent.name)
    return done


def trust_clients(authority: Authority) -> bool:
    """The applications' copy of the node CA (PKI/clients/ca.pem, `pki issue-client`) follows ca.pem;
    whether there was one."""
    copy = authority.dir / "clients" / "ca.pem"
    if not copy.exists():
        return False
    write_private(copy, authority.trust_pem().decode(), 0o644)
    return True


def reissue_bundles(authority: Authority, bundles: Sequence[tuple[str, Path]]) -> list[str]:
    """Phase 2: every (name, bundle) gets a certificate from the incoming CA, with the names it had."""
    done = []
    for name, bundle in bundles:
        facts = authority.reissue(bundle, name)
        done.append(f"{name} (until {facts.not_after:%Y-%m-%d})")
    return done


def mark(authority: Authority, state: RotationState, phase: Phase) -> RotationState:
    new_state = RotationState(phase, state.old, state.new, state.started)
    _record(authority, new_state)
    return new_state


def promote(authority: Authority, state: RotationState) -> RotationState:
    """Phase 3's PKI side: the incoming CA becomes the node CA and the outgoing one is retired, its key
    deleted (it must sign nothing again). Safe to run again: an already promoted CA is left as it is."""
    next_pem, next_key = authority.dir / f"{NEXT_CA}.pem", authority.dir / f"{NEXT_CA}.key"
    if next_pem.exists():  # the certificate first; a rerun after a crash in between moves only the key
        retired = authority.dir / RETIRED
        retired.mkdir(mode=0o700, exist_ok=True)
        old_pem = pki.first_certificate(authority.ca_file.read_bytes())
        write_private(retired / f"ca-{pki.short_id(pki.describe(old_pem))}.pem", old_pem.decode(), 0o644)
        os.replace(next_pem, authority.ca_file)
    if next_key.exists():
        os.replace(next_key, authority.dir / f"{NODE_CA}.key")
    return mark(authority, state, "drop")


def finish(authority: Authority) -> None:
    """The rolling restart is done: no rotation is under way any more."""
    _record(authority, None)


def issued_bundles(authority: Authority) -> list[tuple[str, Path]]:
    """The bundles in PKI/issued (what `pki issue` wrote), by name."""
    issued = authority.dir / "issued"
    return [(path.name, path) for path in sorted(issued.iterdir()) if (path / CERT).exists()] \
        if issued.is_dir() else []
