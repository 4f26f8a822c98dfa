"""What happens to a node, told to others: Galera's own notifications (wsrep_notify_cmd) and the user's callbacks."""
