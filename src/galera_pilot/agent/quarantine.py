"""Moving a datadir aside (quarantine) and putting a new one in place, also when the datadir is a mount
point (its own volume, the usual production layout).

A datadir that must not be joined as it is (aborted SST, corrupt grastate.dat, another cluster's UUID)
is kept, never deleted, in `<base_dir>/data.refused-<time>`. A plain folder is renamed there. A mount
point cannot be renamed (EBUSY), so its contents are copied into that folder and then removed from the
mount, which stays in place for the full SST. The copy is not kept inside the mount: the SST scripts
empty the datadir before receiving (wsrep_sst_mariabackup deletes every top-level entry but a few name
patterns, wsrep_sst_rsync runs `rsync --delete`), and mariadbd would take any folder there for a
database. If the node folder's filesystem has no room for the copy, the quarantine is refused with a
sentence saying how much room it needs, and the datadir stays exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from galera_pilot.errors import PilotError
from galera_pilot.mariadb.disk import MIB, measure, size_text

# Room left over on the node folder's filesystem after copying a mount point's contents out.
COPY_MARGIN = 64 * MIB
SEED_PARTIAL = ".seed-copy"  # inside a mount-point datadir: same filesystem, so each entry moves by rename


def is_mount_point(path: Path) -> bool:
    return os.path.ismount(path)


def tree_bytes(path: Path) -> int:
    """Bytes the files under `path` occupy (allocated blocks, as `du` counts them)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                continue
    return total


def refused_target(base_dir: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = base_dir / f"data.refused-{stamp}"
    serial = 1
    while target.exists():  # two in the same second must not collide
        serial += 1
        target = base_dir / f"data.refused-{stamp}-{serial}"
    return target


def copy_out_refusal(data_dir: Path, base_dir: Path, mount_point: bool | None = None) -> str | None:
    """Why the datadir cannot be quarantined now (a mount point whose contents do not fit beside it),
    or None."""
    if not (is_mount_point(data_dir) if mount_point is None else mount_point):
        return None
    need = tree_bytes(data_dir)
    usage = measure("base", base_dir)
    if usage is None or usage.free_bytes >= need + COPY_MARGIN:
        return None
    return (f"cannot quarantine {data_dir}: it is a mount point, so its contents ({size_text(need)}) must be "
            f"copied out to {base_dir}, which has {size_text(usage.free_bytes)} free; make room there "
            f"({size_text(need + COPY_MARGIN)} needed) or move the contents away by hand")


def move_aside(data_dir: Path, base_dir: Path, mount_point: bool | None = None) -> Path:
    """Keep the datadir in base_dir/data.refused-<time> and leave an empty datadir (or none) behind."""
    target = refused_target(base_dir)
    if not (is_mount_point(data_dir) if mount_point is None else mount_point):
        try:
            data_dir.rename(target)
        except OSError as error:
            raise PilotError(f"cannot move {data_dir} aside to {target}: {error.strerror}") from None
        return target
    refusal = copy_out_refusal(data_dir, base_dir, True)
    if refusal:
        raise PilotError(refusal)
    entries = sorted(data_dir.iterdir())
    try:
        target.mkdir()
        for entry in entries:
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, target / entry.name, symlinks=True)
            else:
                shutil.copy2(entry, target / entry.name, follow_symlinks=False)
    except OSError as error:
        shutil.rmtree(target, ignore_errors=True)
        raise PilotError(f"cannot quarantine {data_dir} (a mount point): copying its contents to {target} "
                         f"failed: {error}; the datadir is unchanged") from None
    empty_mount(data_dir, entries)
    return target


def empty_mount(data_dir: Path, entries: list[Path] | None = None) -> None:
    for entry in sorted(data_dir.iterdir()) if entries is None else entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def place_seed_in_mount(seed: Path, data_dir: Path, prepare: Callable[[Path], None]) -> None:
    """Copy the seed into an (empty) mount-point datadir: into a hidden folder on the same filesystem
    first, then each entry by rename, `ibdata1` and `mysql` last, so an interrupted copy never looks like
    a datadir (grastate.has_data) and the next attempt starts over."""
    partial = data_dir / SEED_PARTIAL
    if partial.exists():
        shutil.rmtree(partial)
    shutil.copytree(seed, partial, symlinks=True)
    prepare(partial)  # ownership, before anything is in place
    last = ("ibdata1", "mysql")
    names = sorted(os.listdir(partial), key=lambda n: (n in last, n))
    for name in names:
        os.rename(partial / name, data_dir / name)
    partial.rmdir()
