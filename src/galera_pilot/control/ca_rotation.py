"""Driving a CA rotation (tls/ca_rotation.py) through its phases, checking each has reached every host.

The nodes say how far they have come in the DCS (`Member.tls_trust`, `tls_signer`: what their mariadbd
has loaded); the embedded proxy says it in its run folder (proxy/check_tls.record_loaded). Nothing
moves to the next phase while one of them lags: a node still trusting only the old CA would refuse
every re-issued peer, a proxy too would mark every node DOWN, and an etcd that does not trust the new
CA would refuse every agent (the DCS is probed with a certificate of the new CA before anyone gets
one). Proxies on other hosts are in no DCS: their bundles are copied with the others, and nothing
here can check that they were.

Where the bundles are written on this machine (the embedded cluster), one run goes through every phase
and the rolling restart. Where they are copied to their hosts by the operator, each run does one phase
and says what to copy; the next run checks that every member took it before going on.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from galera_pilot.cluster import Cluster
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.files import write_private
from galera_pilot.lifecycle.driver import RollDriver, RollOptions
from galera_pilot.proxy.check_tls import loaded
from galera_pilot.tls import ca_rotation as phases
from galera_pilot.tls import pki
from galera_pilot.tls.authority import NEXT_CA, Authority

WAIT_POLL = 0.2


@dataclass
class CaRotation:
    """One `pki rotate-ca` run. `store` is the cluster's DCS (None: nobody can be asked, the operator
    vouches for each phase); `probe` opens the DCS with given (CA, certificate, key) files and reads it
    (None: the DCS does not use the cluster's certificates)."""

    authority: Authority
    bundles: Sequence[tuple[str, Path]]  # every bundle this run writes, by host name
    say: Callable[[str], None]
    store: DCS | None = None
    proxy_run_dir: Path | None = None  # the embedded proxy's, while it runs
    through: bool = False  # go on to the next phase once every host took this one
    in_place: bool = False  # the bundles are the hosts' own (the embedded folder): nothing to copy
    wait: float = 60.0  # seconds every host may take to take a phase
    probe: Callable[[tuple[Path, Path, Path]], None] | None = None
    roll_options: RollOptions = field(default_factory=RollOptions)

    def run(self) -> str:
        state = phases.read_state(self.authority)
        if state is None:
            self._check_ready()
        else:
            state = self._converge(state)
        while True:
            if state is not None:
                self._wait_reached(phases.expected(state), state.phase)
            step = phases.next_phase(state)
            if step == "restart":
                return self._restart()
            state = self._apply(step, state)
            if not self.through and self.in_place:
                self._wait_reached(phases.expected(state), state.phase)
                return (f"phase {PHASE_NUMBER[step]} of 3 ({step}) is in place and every host took it; run "
                        "`galera-pilot pki rotate-ca` again for the next one")
            if not self.through:
                names = ", ".join(name for name, _ in self.bundles)
                return (f"phase {PHASE_NUMBER[step]} of 3 ({step}) is written to {names} in "
                        f"{self.authority.dir / 'issued'}: copy each bundle to its host (every agent and proxy takes "
                        "it within a second), then run `galera-pilot pki rotate-ca` again")

    # ---- the phases -------------------------------------------------------------------------------------
    def _apply(self, step: phases.Phase, state: phases.RotationState | None) -> phases.RotationState:
        if step == "trust":
            new_state = phases.begin(self.authority)
            names = self._trust_everywhere()
            self.say(f"phase 1 of 3: a new CA ({new_state.new}) is trusted beside the old one ({new_state.old}) "
                     f"by {', '.join(names)}")
            return new_state
        assert state is not None
        if step == "reissue":
            self._probe_dcs(only_new=False)
            state = phases.mark(self.authority, state, "reissue")  # from here on the new CA signs
            done = phases.reissue_bundles(self.authority, self.bundles)
            self.say(f"phase 2 of 3: new certificates from the new CA for {', '.join(done)}")
            return state
        self._probe_dcs(only_new=True)
        state = phases.promote(self.authority, state)
        names = self._trust_everywhere()
        self.say(f"phase 3 of 3: the old CA ({state.old}) is dropped by {', '.join(names)} (kept in "
                 f"{self.authority.dir / phases.RETIRED}, its key deleted)")
        return state

    def _converge(self, state: phases.RotationState) -> phases.RotationState:
        """Write the recorded phase's files again where they are not yet what the phase says: a run that
        stopped in the middle of a phase (killed, a full disk, one unreadable bundle) left some bundles
        behind, and waiting for their hosts would never end. Every write here is idempotent."""
        if state.phase == "reissue" and not (self.authority.dir / f"{NEXT_CA}.pem").exists():
            state = phases.promote(self.authority, state)  # stopped inside phase 3's promotion
        if state.phase == "reissue":
            trusted = self.authority.trust_pem()
            behind = [(name, bundle) for name, bundle in self.bundles if _signer(bundle, trusted) != state.new]
            if behind:
                self.say(f"phase 2 again for {', '.join(n for n, _ in behind)} (an earlier run stopped midway)")
                phases.reissue_bundles(self.authority, behind)
            return state
        if state.phase == "drop":
            state = phases.promote(self.authority, state)
        elif state.phase == "trust":
            state = phases.begin(self.authority)
        self._trust_everywhere()
        return state

    def _trust_everywhere(self) -> list[str]:
        """Phases 1 and 3 (and their reruns): every bundle, and the applications' copy, trust what the PKI
        trusts now; the names of what was written."""
        names = phases.trust_bundles(self.authority, [bundle for _, bundle in self.bundles])
        if phases.trust_clients(self.authority):
            names.append("the applications' ca.pem (PKI/clients)")
        return names

    def _restart(self) -> str:
        if self.store is None:
            raise PilotError("the new CA is in place everywhere; what is left is a rolling restart (Galera trusts a "
                             "CA it once loaded until mariadbd restarts): give the cluster (--dir, -c or --dcs) and "
                             "run `galera-pilot pki rotate-ca` again, which runs it")
        self.say("rolling restart, so that no mariadbd trusts the old CA any more")
        driver = RollDriver(self.store, self.say, self.roll_options)
        snapshot = self.store.snapshot()
        roll = driver.resume() if snapshot.roll is not None else driver.start(driver.plan(snapshot))
        sentence = driver.run(roll)
        phases.finish(self.authority)
        new = pki.short_id(pki.describe(self.authority.node_ca().cert_pem))
        return f"{sentence}; the CA rotation is complete: every host trusts only the new CA ({new})"

    # ---- checks -----------------------------------------------------------------------------------------
    def _check_ready(self) -> None:
        """Before a rotation starts: every member live, Synced, not paused, no roll, each trusting what
        the PKI trusts now (a member that failed to take an earlier bundle must be fixed first)."""
        if self.store is None:
            self.say("no cluster given: nothing checks that the hosts take each phase; make sure they do")
            return
        cluster = self.store.snapshot()
        if cluster.pause is not None:
            raise PilotError("the cluster is paused, and paused agents take no new certificates: resume it first")
        if cluster.roll is not None:
            raise PilotError(f"rolling restart {cluster.roll.id} is recorded: finish it (galera-pilot restart "
                             "--resume) or abort it first")
        if cluster.arbitrators:
            # garbd reads its certificates only when it starts, and its agent reports no trust to follow
            # the phases by: it would be left behind the new CA.
            names = ", ".join(sorted(cluster.arbitrators))
            raise PilotError(f"the cluster runs an arbitrator ({names}), which a CA rotation does not carry over "
                             "yet: remove it first (galera-pilot remove NAME --yes --force), rotate, then add it "
                             "again with a bundle of the new CA")
        missing = sorted(set(cluster.roster) - set(cluster.members))
        unsynced = sorted(name for name, member in cluster.members.items() if not member.is_synced)
        if missing or unsynced:
            raise PilotError("every member must be up and Synced before the CA is rotated: "
                             + "; ".join(([f"no report from {', '.join(missing)}"] if missing else [])
                                         + ([f"not Synced: {', '.join(unsynced)}"] if unsynced else [])))
        current = load_bundle_ids(self.authority)
        lagging = phases.laggards(_reports(cluster), current)
        if lagging:
            raise PilotError("members do not use the PKI's current certificates: "
                             + "; ".join(f"{name} {what}" for name, what in lagging.items())
                             + f" (the PKI's CA is {current.signer})")

    def _wait_reached(self, wanted: phases.Expected, phase: str) -> None:
        """Until every member (and the embedded proxy) reports `wanted`; PilotError naming who lags."""
        if self.store is None:
            return
        deadline = time.monotonic() + self.wait
        while True:
            lagging, said = self._lagging(wanted)
            if not lagging:
                return
            if time.monotonic() >= deadline:
                raise PilotError(f"phase {PHASE_NUMBER[phase]} ({phase}) has not reached every host after "
                                 f"{self.wait:.0f} s: " + "; ".join(f"{n} {w}" for n, w in lagging.items())
                                 + f" (wanted: {wanted.describe()})" + "".join(f"; {n} says: {w}" for n, w in said)
                                 + ". Nothing more was changed; run `galera-pilot pki rotate-ca` again once "
                                 "they have it")
            time.sleep(WAIT_POLL)

    def _lagging(self, wanted: phases.Expected) -> tuple[dict[str, str], list[tuple[str, str]]]:
        """(who has not reached `wanted`, with what they report; the TLS warnings members publish)."""
        assert self.store is not None
        try:
            cluster = self.store.snapshot(with_history=False)
        except DCSError as error:
            return {"the DCS": f"does not answer ({error})"}, []
        lagging = phases.laggards(_reports(cluster), wanted)
        lagging |= {name: "sends no report" for name in sorted(set(cluster.roster) - set(cluster.members))}
        if self.proxy_run_dir is not None:
            lagging |= phases.laggards({"proxy": loaded(self.proxy_run_dir) or ((), "")}, wanted)
        return lagging, [(n, m.tls_warning) for n, m in sorted(cluster.members.items()) if m.tls_warning]

    def _probe_dcs(self, only_new: bool) -> None:
        """Before anyone presents a certificate of the new CA (phase 2), or trusts only it (phase 3): does
        the DCS accept them? A temporary certificate from the new CA tries."""
        if self.probe is None:
            return
        incoming = self.authority.next_ca() if (self.authority.dir / f"{NEXT_CA}.key").exists() \
            else self.authority.node_ca()  # promoted already (a rerun after a stop in phase 3)
        leaf = pki.issue(incoming, "ca-rotation-probe", dns=["ca-rotation-probe"], days=pki.MIN_LEAF_DAYS)
        with tempfile.TemporaryDirectory(prefix="gp-ca-probe-") as scratch:
            folder = Path(scratch)
            ca, cert, key = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
            write_private(ca, (incoming.cert_pem if only_new else self.authority.trust_pem()).decode())
            write_private(cert, leaf.cert_pem.decode())
            write_private(key, leaf.key_pem.decode())
            try:
                self.probe((ca, cert, key))
            except (DCSError, PilotError, OSError) as error:
                what = ("present a certificate signed by the new CA to it" if not only_new
                        else "verify it with the new CA alone")
                fix = ("add the new CA (the second certificate in PKI/ca.pem) to etcd's --trusted-ca-file and "
                       "restart etcd" if not only_new else
                       "re-issue etcd's server certificate from the new CA (PKI/ca-next.pem) and restart etcd")
                raise PilotError(f"the DCS refuses the new CA: the agents could not {what} ({error}). First "
                                 f"{fix}, then run `galera-pilot pki rotate-ca` again; nothing more was "
                                 "changed") from None


PHASE_NUMBER = {"trust": 1, "reissue": 2, "drop": 3}


def _reports(cluster: Cluster) -> dict[str, tuple[tuple[str, ...], str]]:
    return {name: (member.tls_trust, member.tls_signer) for name, member in cluster.members.items()}


def load_bundle_ids(authority: Authority) -> phases.Expected:
    """What a host that took the PKI's current files reports: its CAs, and the node CA as signer."""
    trust = tuple(sorted(pki.short_id(ca) for ca in pki.describe_all(authority.trust_pem())))
    return phases.Expected(trust, pki.short_id(pki.describe(authority.node_ca().cert_pem)))


def dcs_probe(url: str, cluster_name: str, authority: Authority) -> Callable[[tuple[Path, Path, Path]], None] | None:
    """For an etcd DCS over TLS whose certificates come from this PKI: read it once presenting the given
    (CA, certificate, key). None for a DCS the rotation does not concern: SQLite, plain etcd, or an etcd
    URL naming a CA of another PKI (its clients do not use the node bundles)."""
    if not url.startswith("etcds://"):
        return None
    from dataclasses import replace

    from galera_pilot.dcs.etcd import EtcdDCS, parse_etcd_url

    settings = parse_etcd_url(url)
    if settings.cacert is not None:
        try:
            theirs = {pki.short_id(ca) for ca in pki.describe_all(Path(settings.cacert).read_bytes())}
        except (OSError, ValueError):
            theirs = set()
        if not theirs & {pki.short_id(ca) for ca in pki.describe_all(authority.trust_pem())}:
            return None

    def probe(files: tuple[Path, Path, Path]) -> None:
        ca, cert, key = files
        store = EtcdDCS(replace(settings, cacert=str(ca), cert=str(cert), key=str(key)), cluster_name)
        try:
            store.snapshot()
        finally:
            store.close()
    return probe



def _signer(bundle: Path, trusted: bytes) -> str:
    """The short id of the CA among `trusted` that signed a bundle's certificate ("": none, or unreadable)."""
    try:
        signer = pki.signer_of((bundle / "node.pem").read_bytes(), [trusted])
    except (OSError, ValueError):
        return ""
    return pki.short_id(signer) if signer is not None else ""
