"""Living with a cluster: pause, rolling restarts and upgrades, automatic updates.

The rules are pure (roll.py, restart.py, upgrade.py, updates.py); driver.py is the one adapter: it drives
a roll through the DCS and the agents' REST APIs, for `galera-pilot restart` / `upgrade` and for the
writer's agent when it rolls an automatic update."""
