"""How the verbs print: tables through rich, JSON for scripts."""

from __future__ import annotations

import json
from datetime import datetime

import click
from rich.console import Console
from rich.table import Table

from galera_pilot.agent.high_water import held_most
from galera_pilot.cluster import REMOVED, Cluster
from galera_pilot.control.members import LIST_KEYS, Row
from galera_pilot.lifecycle.roll import describe

FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)


def print_rows(rows: list[Row], fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(LIST_KEYS, [[str(row[k]) for k in LIST_KEYS] for row in rows])


def print_table(columns: tuple[str, ...], rows: list[list[str]]) -> None:
    table = Table(*columns, box=None, pad_edge=False)
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


def print_high_water(snapshot: Cluster) -> None:
    if snapshot.high_water is not None:
        click.echo(f"high-water mark: {held_most(snapshot)}")


def print_lifecycle(snapshot: Cluster) -> None:
    """A pause, a rolling restart and a restore in progress, under the table: they change what every agent
    does."""
    if snapshot.pause is not None:
        since = datetime.fromtimestamp(snapshot.pause.at).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"PAUSED by {snapshot.pause.by} since {since}: the agents take no action (galera-pilot resume)")
    if snapshot.roll is not None:
        click.echo(describe(snapshot.roll, driven=snapshot.roll_driver is not None))
    for line in removal_lines(snapshot):
        click.echo(line)
    order = snapshot.restore
    if order is not None:
        how = ("every member stops (galera-pilot restore --abort withdraws it)" if order.phase == "stopping"
               else f"{order.member} restores it and starts a new cluster")
        click.echo(f"RESTORING backup {order.backup} onto {order.member}, asked by {order.by}: {how}; "
                   "galera-pilot restore resumes it if it was cut short")


def removal_lines(snapshot: Cluster) -> list[str]:
    """Members taken out by `galera-pilot remove` (no longer rows of the table), oldest first."""
    lines = []
    for removal in sorted(snapshot.removed.values(), key=lambda r: r.at):
        when = datetime.fromtimestamp(removal.at).strftime("%Y-%m-%d %H:%M:%S")
        state = "removed" if removal.phase == REMOVED else "being removed"
        lines.append(f"{removal.member}: {state} by {removal.by} at {when} (galera-pilot remove --undo "
                     f"{removal.member} takes it back)")
    return lines
