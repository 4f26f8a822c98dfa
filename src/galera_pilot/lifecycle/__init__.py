"""Living with a cluster: pause, rolling restarts (pure rules here; the driver is control/roll.py)."""
