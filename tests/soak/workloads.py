"""The soak's clients, each a thread through a managed endpoint that reconnects after any error and
records every operation with its outcome (ops.py).

- BankClient: a transfer between two accounts under SELECT ... FOR UPDATE, and a row with the transfer's
  unique id in the same transaction (the checker looks each acknowledged id up on every node);
- AppendClient: `UPDATE lists SET v = CONCAT(v, ',x')` with a value no other append uses;
- Reader: reads list 0 through the reader endpoint (wsrep_sync_wait off), for the stale-read figure.

An error before COMMIT was sent, or an error the server answered with, is a failure (the transaction is
rolled back); a connection that broke while the commit was in flight is an unknown outcome.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time

import pymysql

from galera_pilot.credentials import Credentials
from galera_pilot.tls.contexts import mysql_context
from tests.soak.ops import FAIL, OK, UNKNOWN, Op, Recorder

ACCOUNTS = 10
INITIAL = 1000
LISTS = 4
READ_TAIL = 200  # values of list 0 a read keeps (checker.stale_reads)
CLIENT_ERRORS = (2003, 2006, 2013, 2014, 2055)  # the client's own: no answer from the server

SCHEMA = [
    "CREATE DATABASE IF NOT EXISTS soak",
    "CREATE TABLE IF NOT EXISTS soak.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS soak.transfers (id VARCHAR(40) PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL, "
    "amount INT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS soak.lists (id INT PRIMARY KEY, v MEDIUMTEXT NOT NULL)",
]


def connect(host: str, port: int, credentials: Credentials) -> pymysql.connections.Connection:
    """Short timeouts: a stopped server must cost a client seconds, not the default half-minute."""
    context = mysql_context()
    return pymysql.connect(host=host, port=port, user=credentials.admin_user, password=credentials.admin_password,
                           connect_timeout=2, read_timeout=4, write_timeout=4, autocommit=True,
                           ssl=context, ssl_disabled=context is None)


def create_schema(connection: pymysql.connections.Connection) -> None:
    with connection.cursor() as cursor:
        for statement in SCHEMA:
            cursor.execute(statement)
        cursor.executemany("INSERT IGNORE INTO soak.accounts VALUES (%s, %s)",
                           [(a, INITIAL) for a in range(ACCOUNTS)])
        cursor.executemany("INSERT IGNORE INTO soak.lists VALUES (%s, '')", [(n,) for n in range(LISTS)])


def _code(error: Exception) -> int:
    return int(error.args[0]) if error.args and isinstance(error.args[0], int) else 0


def _describe(error: Exception) -> str:
    return f"{_code(error) or type(error).__name__} {error.args[-1] if error.args else ''}"[:200]


class Client(threading.Thread):
    def __init__(self, name: str, host: str, port: int, credentials: Credentials, recorder: Recorder,
                 seed: int) -> None:
        super().__init__(name=name, daemon=True)
        self.host, self.port, self.credentials = host, port, credentials
        self.recorder = recorder
        self.random = random.Random(seed)
        self.stop_event = threading.Event()
        self.count = 0
        self._connection: pymysql.connections.Connection | None = None

    def run(self) -> None:
        while not self.stop_event.is_set():
            if self._connection is None:
                try:
                    self._connection = connect(self.host, self.port, self.credentials)
                except Exception:
                    time.sleep(0.1)
                    continue
            self.count += 1
            try:
                self.operation(self._connection)
            except Exception:  # the operation recorded it; a fresh connection next time
                self._drop()
                time.sleep(0.05)
        self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
        self._connection = None

    def operation(self, connection: pymysql.connections.Connection) -> None:
        raise NotImplementedError


class BankClient(Client):
    def operation(self, connection: pymysql.connections.Connection) -> None:
        src, dst = self.random.sample(range(ACCOUNTS), 2)
        amount = self.random.randint(1, 20)
        key = f"{self.name}-{self.count}"
        start = time.time()
        committing = False
        try:
            with connection.cursor() as cursor:
                cursor.execute("BEGIN")
                cursor.execute("SELECT id, balance FROM soak.accounts WHERE id IN (%s, %s) FOR UPDATE", (src, dst))
                balances = dict(cursor.fetchall())
                if balances.get(src, 0) >= amount:
                    cursor.execute("UPDATE soak.accounts SET balance = balance - %s WHERE id = %s", (amount, src))
                    cursor.execute("UPDATE soak.accounts SET balance = balance + %s WHERE id = %s", (amount, dst))
                    cursor.execute("INSERT INTO soak.transfers VALUES (%s, %s, %s, %s)", (key, src, dst, amount))
                else:
                    amount = 0  # nothing to move: still a transaction, recorded as a transfer of 0
                    cursor.execute("INSERT INTO soak.transfers VALUES (%s, %s, %s, 0)", (key, src, dst))
                committing = True
                cursor.execute("COMMIT")
            self.recorder.add(Op("transfer", self.name, start, time.time(), OK, key, src * 1000 + dst))
        except Exception as error:
            # The server's own answer means a rollback; no answer to the COMMIT leaves it unknown.
            answered = isinstance(error, pymysql.MySQLError) and _code(error) not in CLIENT_ERRORS
            outcome = UNKNOWN if committing and not answered else FAIL
            self.recorder.add(Op("transfer", self.name, start, time.time(), outcome, key, src * 1000 + dst,
                                 error=_describe(error)))
            raise


class AppendClient(Client):
    def operation(self, connection: pymysql.connections.Connection) -> None:
        target = self.random.randrange(LISTS)
        value = f"{self.name}.{self.count}"
        start = time.time()
        try:
            with connection.cursor() as cursor:
                cursor.execute("UPDATE soak.lists SET v = CONCAT(v, ',', %s) WHERE id = %s", (value, target))
            self.recorder.add(Op("append", self.name, start, time.time(), OK, value, target))
        except Exception as error:
            # autocommit: the statement is the commit, so a broken connection leaves its outcome unknown
            answered = isinstance(error, pymysql.MySQLError) and _code(error) not in CLIENT_ERRORS
            self.recorder.add(Op("append", self.name, start, time.time(), FAIL if answered else UNKNOWN, value,
                                 target, error=_describe(error)))
            raise


class Reader(Client):
    def operation(self, connection: pymysql.connections.Connection) -> None:
        start = time.time()
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT v FROM soak.lists WHERE id = 0")
                row = cursor.fetchone()
            # The list's tail only: the whole list grows by thousands of values a minute, and the stale-read
            # figure asks only whether the newest acknowledged value is there (checker.stale_reads).
            tail = str(row[0]).rsplit(",", READ_TAIL)[-READ_TAIL:] if row else []
            self.recorder.add(Op("read", self.name, start, time.time(), OK, seen=",".join(tail)))
        except Exception as error:
            self.recorder.add(Op("read", self.name, start, time.time(), FAIL, error=_describe(error)))
            raise
        time.sleep(0.05)
