"""Backups (issue 12): what a cluster keeps so that data survives mistakes replication copies everywhere.

pgBackRest's vocabulary: a repository holds backup sets; a full backup starts a chain, incrementals
extend it, each naming its parent. The pure rules come first (`catalog.py`: what a backup set is;
`schedule.py`: which backup is due; `retention.py`: which sets may go). Taking, storing and restoring
backups are adapters still to be built on them.
"""
