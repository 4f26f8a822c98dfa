"""A server variable as information_schema.SYSTEM_VARIABLES describes it, and what a value must be for it.

The server itself is the reference (MariaDB 10.11: VARIABLE_TYPE, VARIABLE_SCOPE, READ_ONLY, the numeric
range, ENUM_VALUE_LIST), so a variable of a newer version or a plugin is known exactly when the running
server knows it. my.cnf takes numbers with a K/M/G/T suffix; `SET GLOBAL` does not, and refuses a quoted
number ("Incorrect argument type", measured), so a value has one spelling for each.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from galera_pilot.errors import ConfigError

SUFFIXES = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}
BOOLEAN_WORDS = {"ON": True, "OFF": False, "1": True, "0": False, "TRUE": True, "FALSE": False, "YES": True,
                 "NO": False}


@dataclass(frozen=True)
class Variable:
    """One row of information_schema.SYSTEM_VARIABLES."""

    name: str  # lower case
    type: str  # BIGINT UNSIGNED, INT, BOOLEAN, DOUBLE, ENUM, SET, FLAGSET, VARCHAR …
    scope: str = "GLOBAL"  # GLOBAL, SESSION (global and per session), SESSION ONLY
    read_only: bool = False  # YES: fixed once the server runs (only my.cnf and a restart change it)
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()  # ENUM / SET / FLAGSET names
    startup: bool = True  # settable in my.cnf (COMMAND_LINE_ARGUMENT is NULL for those that are not)

    @property
    def numeric(self) -> bool:
        return self.type.split()[0] in ("INT", "BIGINT", "DOUBLE")

    @property
    def dynamic(self) -> bool:
        """Whether `SET GLOBAL` changes it on a running server."""
        return not self.read_only and self.scope != "SESSION ONLY"

    @classmethod
    def from_row(cls, row: dict[str, object]) -> Variable:
        def number(key: str) -> float | None:
            value = row.get(key)
            return None if value is None else float(str(value))

        choices = str(row.get("ENUM_VALUE_LIST") or "")
        return cls(name=str(row["VARIABLE_NAME"]).lower(), type=str(row["VARIABLE_TYPE"]).upper(),
                   scope=str(row["VARIABLE_SCOPE"]).upper(), read_only=str(row["READ_ONLY"]).upper() == "YES",
                   minimum=number("NUMERIC_MIN_VALUE"), maximum=number("NUMERIC_MAX_VALUE"),
                   choices=tuple(c for c in choices.split(",") if c),
                   startup=row.get("COMMAND_LINE_ARGUMENT", "NONE") is not None)


def catalog_of(rows: list[dict[str, object]]) -> dict[str, Variable]:
    """information_schema.SYSTEM_VARIABLES rows as variables, by (lower-case) name."""
    return {variable.name: variable for variable in map(Variable.from_row, rows)}


def number_of(text: str) -> float:
    """'128M' -> 134217728; '2.5' -> 2.5. ValueError when it is not a number."""
    text = text.strip()
    scale = SUFFIXES.get(text[-1:].upper(), 1)
    body = text[:-1] if scale != 1 else text
    return float(body) * scale if "." in body else int(body) * scale


def check_value(variable: Variable, value: str) -> None:
    """Raise a ConfigError naming `mariadb.NAME` when `value` cannot be that variable's."""
    label = f"mariadb.{variable.name}"
    if variable.scope == "SESSION ONLY":
        raise ConfigError(f"{label}: a per-session variable; it cannot be set for the server")
    if not variable.startup:
        raise ConfigError(f"{label}: my.cnf cannot set it (the server knows no such startup option), so no "
                          "restart would keep it")
    kind = variable.type.split()[0]
    if variable.numeric:
        try:
            number = number_of(value)
        except ValueError:
            raise ConfigError(f"{label}: {value!r} is not a number ({variable.type.lower()})") from None
        if kind != "DOUBLE" and isinstance(number, float) and not number.is_integer():
            raise ConfigError(f"{label}: {value!r} is not a whole number ({variable.type.lower()})")
        if (variable.minimum is not None and number < variable.minimum) or \
                (variable.maximum is not None and number > variable.maximum):
            raise ConfigError(f"{label}: {value} is out of range ({_g(variable.minimum)} to {_g(variable.maximum)})")
    elif kind == "BOOLEAN":
        if value.upper() not in BOOLEAN_WORDS:
            raise ConfigError(f"{label}: {value!r} is not ON or OFF")
    elif kind == "ENUM":
        if value.upper() not in {c.upper() for c in variable.choices}:
            raise ConfigError(f"{label}: {value!r} is not one of {', '.join(variable.choices)}")
    elif kind == "SET":
        unknown = [v for v in value.split(",") if v.strip() and v.strip().upper() not in
                   {c.upper() for c in variable.choices}]
        if unknown:
            raise ConfigError(f"{label}: {unknown[0]!r} is not one of {', '.join(variable.choices)}")


def sql_value(variable: Variable, value: str | None) -> str | int | float | None:
    """What `SET GLOBAL name = %s` takes: a number unquoted, ON/OFF, the text otherwise; None: DEFAULT."""
    if value is None:
        return None
    if variable.numeric:
        return number_of(value)
    if variable.type.startswith("BOOLEAN"):
        return "ON" if BOOLEAN_WORDS.get(value.upper(), False) else "OFF"
    return value


def _g(number: float | None) -> str:
    if number is None:
        return "any"
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


@dataclass(frozen=True)
class Judgement:
    """What one server says of proposed settings (`POST /settings/check`, before `edit-config` stores them)."""

    errors: tuple[str, ...] = ()
    at_once: tuple[str, ...] = ()  # variables `SET GLOBAL` will apply on a running server
    restart: tuple[str, ...] = ()  # what needs a restart (read-only variables, provider options)


def option_problem(value: str, current: str) -> str:
    """Galera publishes no types: a value must at least look like the option's current one (a number, a
    duration like PT1S, a yes/no); "" when it does."""
    def shape(text: str) -> str:
        text = text.strip()
        if text.upper() in BOOLEAN_WORDS or text.lower() in ("yes", "no"):
            return "a yes or no"
        if re.fullmatch(r"P(T(\d+(\.\d+)?[HMS])+|\d+D(T(\d+(\.\d+)?[HMS])+)?)", text):
            return "a duration (PT1S, PT0.5S, PT1M)"
        try:
            number_of(text)
        except ValueError:
            return "text"
        return "a number"

    wanted = shape(current)
    return "" if wanted == "text" or shape(value) == wanted else f"{value!r} is not {wanted} (it is {current} now)"


def judge(variables: dict[str, str], options: dict[str, str], catalog: dict[str, Variable],
          known_options: dict[str, str], version: str) -> Judgement:
    """Check variables against the server's catalog and provider options against the loaded provider's
    (name -> current value)."""
    errors: list[str] = []
    at_once: list[str] = []
    restart: list[str] = []
    for name, value in sorted(variables.items()):
        variable = catalog.get(name)
        if variable is None:
            errors.append(f"mariadb.{name}: not a system variable of MariaDB {version} (an option that is no "
                          "variable goes in a node's mariadb.extra)")
            continue
        try:
            check_value(variable, value)
        except ConfigError as error:
            errors.append(str(error))
            continue
        (at_once if variable.dynamic else restart).append(name)
    for name, value in sorted(options.items()):
        if name not in known_options:
            errors.append(f"galera.{name}: not an option of the Galera provider this server runs")
        elif problem := option_problem(value, known_options[name]):
            errors.append(f"galera.{name}: {problem}")
        else:
            restart.append(name)
    return Judgement(tuple(errors), tuple(at_once), tuple(restart))
