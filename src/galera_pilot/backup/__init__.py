"""Backups (issue 12): what a cluster keeps so that data survives mistakes replication copies everywhere.

pgBackRest's vocabulary: a repository holds backup sets; a full backup starts a chain, incrementals
extend it, each naming its parent. The pure rules come first (`catalog.py`: what a backup set is;
`schedule.py`: which backup is due; `scheduler.py`: whether this agent asks for it now; `retention.py`:
which sets may go; `chains.py`: a new set's id, an incremental's parent), then what a set records
(`manifest.py`) and a repository in a directory (`repository.py`: sets streamed in, hashed as they are
written, verified against their manifest). The adapters: `take.py` copies one set on a node (run by
agent/backups.py), `trial_restore.py` restores one into a scratch server; `settings.py` is a node's
`backup` section, `request.py` the DCS request an agent takes, `tools.py` the programs' command lines.
`encryption.py`/`encrypted.py` seal objects at rest, `s3.py` keeps sets in a bucket, `repositories.py`
opens what a section names; `materialize.py` turns a chain back into a datadir (the restore test, and a
cluster's restore: `restore_order.py`, control/restore.py). Point-in-time recovery is still to come.
"""
