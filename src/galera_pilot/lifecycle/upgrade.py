"""Pure rules of a rolling upgrade: may the cluster go from the versions it runs to the one installed?

MariaDB's own rules (galera-notes "Day-2 facts"): mixed versions are fine during a roll, not as a way of
life; one major step at a time (a series to the next, or a long-term series to the next long-term one);
joins must be by IST (a cross-version SST does not work, MDEV-33263); `mariadb-upgrade` on every node,
never after an unclean stop. So before the first node: every member reports both versions, they run one
series, the same packages are installed everywhere, nothing goes down, and the step is allowed.
"""

from __future__ import annotations

from galera_pilot.cluster import Cluster
from galera_pilot.mariadb.version import Version, parse_version, short

# Release series in order, and the long-term ones (an LTS may go straight to the next LTS).
SERIES = ((10, 3), (10, 4), (10, 5), (10, 6), (10, 7), (10, 8), (10, 9), (10, 10), (10, 11), (11, 0), (11, 1),
          (11, 2), (11, 3), (11, 4), (11, 5), (11, 6), (11, 7), (11, 8), (12, 0), (12, 1), (12, 2), (12, 3))
LTS = ((10, 6), (10, 11), (11, 4), (11, 8))


def step_allowed(running: Version, target: Version) -> bool:
    """Same series (a minor update), the next series, or the next long-term series from a long-term one."""
    now, then = running[:2], target[:2]
    if now == then:
        return True
    if now not in SERIES or then not in SERIES:
        return False
    if SERIES.index(then) == SERIES.index(now) + 1:
        return True
    return now in LTS and then in LTS and LTS.index(then) == LTS.index(now) + 1


def same_version(one: str, other: str) -> bool:
    """The same release, whatever the suffixes say (`VERSION()` adds `-log` when a log is on; two builds
    of one release differ after the `-`)."""
    parsed = parse_version(one)
    return parsed is not None and parsed == parse_version(other)


def pending_upgrade(running: str, installed: str) -> bool:
    """The installed binary is newer than the running server (`list` says `pending upgrade`)."""
    now, then = parse_version(running), parse_version(installed)
    return now is not None and then is not None and then > now


def upgrade_refusal(cluster: Cluster) -> tuple[str, str]:
    """(why the cluster cannot be upgraded now, or ""; the target version) before a rolling upgrade starts."""
    versions: dict[str, tuple[Version, Version, str]] = {}
    for name, member in sorted(cluster.members.items()):
        running, installed = parse_version(member.version), parse_version(member.installed_version)
        if running is None or installed is None:
            return f"{name} does not report its running and installed versions (is its mariadbd up?)", ""
        versions[name] = (running, installed, member.installed_version)
    if not versions:
        return "no member reports", ""
    targets = {installed for _, installed, _ in versions.values()}
    if len(targets) > 1:
        listed = ", ".join(f"{n}: {short(text)}" for n, (_, _, text) in versions.items())
        return f"install the same packages on every host first (installed: {listed})", ""
    target = targets.pop()
    target_text = next(text for _, _, text in versions.values())
    series = {running[:2] for running, _, _ in versions.values()}
    if len(series) > 1:
        return "the members run different series; finish the last upgrade first", ""
    for name, (running, installed, _) in versions.items():
        if installed < running:
            return (f"{name}'s installed binary ({'.'.join(map(str, installed))}) is older than what it runs "
                    f"({'.'.join(map(str, running))}): a downgrade is refused", "")
        if not step_allowed(running, installed):
            return (f"{'.'.join(map(str, running[:2]))} to {'.'.join(map(str, installed[:2]))} is more than one "
                    "major step: upgrade one series at a time (or long-term series to the next)", "")
    if all(running == target for running, _, _ in versions.values()):
        return f"every member already runs {short(target_text)}: nothing to upgrade", ""
    return "", target_text
