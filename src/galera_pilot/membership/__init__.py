"""Membership changes a person asks for: taking a node out for good (`remove`) and rebuilding one from a
donor (`reinit`), and which member takes a job for the cluster (backup_node.py: a backup). rules.py holds the
pure judgements over a DCS snapshot; the control room carries them out."""
