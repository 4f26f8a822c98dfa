"""The managed arbitrator: garbd (Debian's galera-arbitrator-4) under a galera-pilot agent.

A Galera member that holds no data: it votes in every quorum (so two data nodes plus an arbitrator
survive the loss of either), is never a donor and can never bootstrap, because it has nothing to start
a cluster from. Its agent (agent/arbitrator.py) starts garbd once a Primary Component exists, restarts
it when it exits, keeps its work dir (gvwstate.dat: the same gcomm identity across restarts) and
publishes a report under `arbitrators/<name>` that `list`, `remove` and full-outage recovery count.
"""
