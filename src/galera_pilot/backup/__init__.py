"""Backups (issue 12): what a cluster keeps so that data survives mistakes replication copies everywhere.

pgBackRest's vocabulary: a repository holds backup sets; a full backup starts a chain, incrementals
extend it, each naming its parent. The pure rules come first (`catalog.py`: what a backup set is;
`schedule.py`: which backup is due; `retention.py`: which sets may go), then what a set records
(`manifest.py`) and a repository in a directory (`repository.py`: sets streamed in, hashed as they are
written, verified against their manifest). The adapters: `take.py` copies one set on a node (run by
agent/backups.py), `trial_restore.py` restores one into a scratch server; `settings.py` is a node's
`backup` section, `request.py` the DCS request an agent takes, `tools.py` the programs' command lines.
Restoring a cluster and point-in-time recovery are still to come.
"""
