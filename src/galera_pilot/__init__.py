"""galera-pilot: supervises MariaDB Galera clusters the way Patroni supervises PostgreSQL."""

__version__ = "0.1.0"
