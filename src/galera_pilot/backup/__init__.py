"""Backups (issue 12): what a cluster keeps so that data survives mistakes replication copies everywhere.

pgBackRest's vocabulary: a repository holds backup sets; a full backup starts a chain, incrementals
extend it, each naming its parent. The pure rules come first (`catalog.py`: what a backup set is;
`schedule.py`: which backup is due; `retention.py`: which sets may go), then what a set records
(`manifest.py`) and a repository in a directory (`repository.py`: sets streamed in, hashed as they are
written, verified against their manifest). Taking and restoring backups are adapters still to come.
"""
