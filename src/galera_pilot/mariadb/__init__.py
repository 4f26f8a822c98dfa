"""Adapters around MariaDB: datadir state, my.cnf, the mariadbd process, SQL."""
