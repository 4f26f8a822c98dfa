"""The node agent: its cycle (ha), the pure decisions it takes, what it observes and the REST API it serves."""
