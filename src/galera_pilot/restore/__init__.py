"""Restoring a whole cluster from a backup (issue 12): `plan.py` decides what a restore would do (pure,
over one DCS snapshot and the set's chain); control/restore.py carries it out through the DCS, and the
agents do the work (agent/restored_datadir.py on the restoring node)."""
