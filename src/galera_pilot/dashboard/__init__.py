"""Live views of a cluster: the terminal view (`list --watch`, `top`) and the web dashboard
(`galera-pilot dashboard`, started by `up`).

Both only read: the DCS snapshot (or, while it is unreachable, the members' REST APIs) and each agent's
/status. The pure parts (what changed, what a card shows, the charts' series) are kept apart from the
adapters that fetch, so they can be unit-tested without a cluster.
"""
