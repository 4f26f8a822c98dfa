"""The running server's variables: their catalog rows, `SET GLOBAL`, and the provider options Galera knows.

A thin adapter: settings/catalog.py judges the rows and spells the values. `SET GLOBAL` is never
replicated by Galera, so each agent sets its own server's.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymysql.cursors import DictCursor

from galera_pilot.mariadb.mycnf import provider_option_map

COLUMNS = ("VARIABLE_NAME, VARIABLE_TYPE, VARIABLE_SCOPE, READ_ONLY, NUMERIC_MIN_VALUE, NUMERIC_MAX_VALUE, "
           "ENUM_VALUE_LIST, COMMAND_LINE_ARGUMENT")


def catalog_rows(connection, names: Iterable[str]) -> list[dict[str, object]]:
    """information_schema.SYSTEM_VARIABLES rows of those of `names` the server knows."""
    wanted = sorted({n.upper() for n in names})
    if not wanted:
        return []
    with connection.cursor(DictCursor) as cursor:
        cursor.execute(f"SELECT {COLUMNS} FROM information_schema.SYSTEM_VARIABLES WHERE VARIABLE_NAME IN "
                       f"({', '.join(['%s'] * len(wanted))})", wanted)
        return list(cursor.fetchall())


def set_global(connection, name: str, literal: str | int | float | None) -> None:
    """`SET GLOBAL name = literal` (DEFAULT for None). `name` must come from the server's own catalog (a
    known identifier: it cannot be a parameter); the value is passed as one."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"not a variable name: {name!r}")
    with connection.cursor() as cursor:
        if literal is None:
            cursor.execute(f"SET GLOBAL {name} = DEFAULT")
        else:
            cursor.execute(f"SET GLOBAL {name} = %s", (literal,))


def provider_options(connection) -> dict[str, str]:
    """Every option the loaded Galera provider knows, with its current value."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@GLOBAL.wsrep_provider_options")
        row = cursor.fetchone()
    return provider_option_map(str(row[0] or "")) if row else {}
