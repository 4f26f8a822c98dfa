"""`galera-pilot restore` on the restoring node: the new cluster's datadir built from a backup set, in
place of mariadb-install-db's empty one (agent/datadir.py `create_seed` does the rest: the first start
as a new cluster, this cluster's passwords on the restored accounts, the seed for the others).

The chain is verified against its manifests first, then unpacked and prepared beside the datadir (the
same filesystem, so the last step is a rename: an interrupted restore never looks like a datadir).
Galera's saved state (grastate.dat, gvwstate.dat) is left out: without it the first start creates a new
cluster UUID, and no node of the old history can join the new one by IST (galera-notes: a restore under
the old UUID let a stale node IST into a diverged history and report Synced).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from galera_pilot.backup.binlog_index import NotReachable, backup_seqno, of_history
from galera_pilot.backup.chains import chain_of
from galera_pilot.backup.materialize import prepare_chain
from galera_pilot.backup.replay import replay
from galera_pilot.backup.repositories import open_repository
from galera_pilot.backup.restore_order import RestoreOrder
from galera_pilot.config import NodeConfig
from galera_pilot.errors import PilotError
from galera_pilot.restore.point_in_time import steps_for

RENEW_EVERY = 10.0  # s: the initialize lease is renewed this often while the set is unpacked and prepared
GALERA_STATE = ("grastate.dat", "gvwstate.dat", "galera.cache")


def restore_datadir(config: NodeConfig, set_id: str, renew: Callable[[], object]) -> str:
    """Fill the (absent or empty) datadir from `set_id`'s chain; a sentence saying what was restored.
    PilotError, nothing in place of the datadir, when the set cannot be restored."""
    repository = open_repository(config.backup, config.cluster_name)
    chain = chain_of(repository.manifests(), set_id, repository.where)
    if chain[-1].kind == "logical":
        raise PilotError(f"backup {set_id} is logical: a cluster is restored from a physical backup (a full one, "
                         "or an incremental with its chain)")
    for link in chain:
        found = repository.verify(link.id)
        if not found.ok:
            problems = "; ".join(f"{p.object}: {p.what}" for p in found.problems)
            raise PilotError(f"backup {link.id} is damaged ({problems}): not restored")
    data = config.data_dir
    scratch = data.with_name(data.name + ".restore")
    if scratch.exists():
        shutil.rmtree(scratch)  # what an interrupted restore left: never a datadir, rebuilt from the set
    scratch.mkdir(mode=0o700, parents=True)
    started = time.monotonic()
    with _renewing(renew):
        prepared = prepare_chain(repository, chain, config.backup.tools, scratch)
    for name in GALERA_STATE:
        (prepared / name).unlink(missing_ok=True)
    if data.exists():
        if any(data.iterdir()):
            raise PilotError(f"{data} is not empty: the restored datadir is not put in its place")
        data.rmdir()
    prepared.rename(data)
    shutil.rmtree(scratch, ignore_errors=True)
    links = " + ".join(f"{m.id} ({m.kind})" for m in chain)
    return f"restored {links} in {time.monotonic() - started:.1f} s"


@contextlib.contextmanager
def _renewing(renew: Callable[[], object]) -> Iterator[None]:
    """`renew` every RENEW_EVERY while the block runs (unpacking a set, replaying binlogs: long work under
    the initialize lease)."""
    stop = threading.Event()
    renewer = threading.Thread(target=_renew, args=(renew, stop), name="restore-lease", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join(timeout=5)


def _renew(renew: Callable[[], object], stop: threading.Event) -> None:
    while not stop.wait(RENEW_EVERY):
        with contextlib.suppress(PilotError):  # the DCS is briefly away: the lease's TTL outlasts it
            renew()



def roll_forward(config: NodeConfig, order: RestoreOrder, socket: Path, renew: Callable[[], object]) -> str:
    """Point-in-time recovery: replay the archived binlogs from the restored set's position through the
    order's seqno, into the server just started on the restored datadir (before its accounts get this
    cluster's passwords: a replayed ALTER USER of the old history must not undo them). A sentence."""
    assert order.to_seqno is not None and order.domain is not None
    repository = open_repository(config.backup, config.cluster_name)
    manifest = repository.manifest(order.backup)
    base = backup_seqno(manifest, order.domain)
    if base is None:
        raise PilotError(f"backup {order.backup} records no GTID position of domain {order.domain}: it cannot be "
                         "rolled forward")
    try:
        steps = steps_for(of_history(repository.binlogs(), manifest.cluster_uuid), order.domain, base, order.to_seqno)
    except NotReachable as error:
        raise PilotError(f"the point asked cannot be reached from backup {order.backup}: {error}") from None
    started = time.monotonic()
    scratch = config.data_dir.with_name(config.data_dir.name + ".replay")
    try:
        with _renewing(renew):
            files = replay(repository, steps, config.backup.tools, socket, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return (f"rolled forward from GTID seqno {base} through {order.to_seqno} of domain {order.domain} "
            f"({order.asked or 'as asked'}): {files} archived binlog(s) in {time.monotonic() - started:.1f} s")
