"""Cluster-wide settings (`galera-pilot show-config` / `edit-config` / `reload`), pure rules only.

The record is cluster.py's ClusterSettings (DCS key `config`, written by dcs/settings.py). Its rules:

* `edits.py`: the `--set section.name=value` language, and the checks that need no server;
* `catalog.py`: a server variable's type and range (information_schema.SYSTEM_VARIABLES) and what a value
  must look like for it, in my.cnf and in `SET GLOBAL`;
* `merge.py`: a node's effective settings, its own file over the cluster's (local wins, as in Patroni);
* `follow.py`: what a running server must do to follow them: `SET GLOBAL` now, or a restart.
"""
