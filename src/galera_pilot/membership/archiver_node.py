"""Which agent archives the binary logs: pure, over one DCS snapshot.

One archiver at a time, by a leased DCS key (`binlog-archiver`): two nodes uploading the same history
only double the cost, but one that is not Synced would archive a history that may be replaced by a state
transfer. The holder keeps the lease while its member is Synced in a Primary Component (moving the
archiver means starting from another node's files, which costs an overlap), unless it is the writer and
another member could take it (it took the lease as the only Synced member of a cluster starting); when
it dies, its lease expires and the member the backup placement rule picks (a Synced member that is not
the writer) takes it, starting from that node's first binlog holding the next GTID. No archiving during a restore: the
history is about to be replaced.
"""

from __future__ import annotations

from dataclasses import dataclass

from galera_pilot.cluster import Cluster
from galera_pilot.membership.backup_node import choose_backup_node

ARCHIVER_LEASE = "binlog-archiver"


@dataclass(frozen=True)
class ArchiverTurn:
    archive: bool  # hold (take or renew) the lease and archive now
    release: bool  # give the lease up (held, but this member may no longer archive)
    reason: str  # one sentence, for the agent's log and /status


def archiver_turn(cluster: Cluster, me: str, holder: str | None, enabled: bool) -> ArchiverTurn:
    """What this agent does about the archive now; `holder` is the lease's holder (None: free)."""
    if not enabled:
        return ArchiverTurn(False, holder == me, "binlog archiving is off (backup.binlogs.archive)")
    if cluster.restore is not None:
        return ArchiverTurn(False, holder == me, f"a restore of backup {cluster.restore.backup} is in progress")
    member = cluster.members.get(me)
    synced = (member is not None and me not in cluster.removed and member.running and member.is_primary
              and member.state == "Synced")
    if holder == me:
        placement = choose_backup_node(cluster)
        if synced and me == cluster.writer and placement.node not in (None, me):
            # It took the lease when it was the only Synced member (a cluster starting): the uploads
            # leave the node clients write to as soon as another member can take them.
            return ArchiverTurn(False, True, f"this node is the writer and {placement.node} is Synced: it gives "
                                             "the archiver lease up")
        if synced:
            return ArchiverTurn(True, False, "this node archives the binlogs (it holds the archiver lease)")
        state = "gone" if member is None else member.state
        return ArchiverTurn(False, True, f"this node is {state}, not Synced: it gives the archiver lease up")
    if holder is not None:
        return ArchiverTurn(False, False, f"{holder} archives the binlogs")
    placement = choose_backup_node(cluster)
    if placement.node is None:
        return ArchiverTurn(False, False, f"nobody archives the binlogs: {placement.reason}")
    if placement.node != me:
        return ArchiverTurn(False, False, f"the archiver lease is free: {placement.node} takes it ({placement.reason})")
    return ArchiverTurn(True, False, f"this node takes the archiver lease ({placement.reason})")
