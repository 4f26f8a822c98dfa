"""`remove`: take a member out of the cluster for good (control/removal.py); `reinit`: rebuild one by a full
SST from a donor (a one-member roll, lifecycle/driver.py)."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import click

from galera_pilot.cli.addressing import addressing_options, target_of
from galera_pilot.cli.steer import changing
from galera_pilot.control.removal import Remover, undo_removal
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError
from galera_pilot.lifecycle.driver import RollDriver, RollOptions
from galera_pilot.membership.rules import choose_donor, reinit_refusal


@click.command()
@addressing_options(with_env=False)
@click.argument("member")
@click.option("--yes", is_flag=True, help="do it without asking (a terminal asks otherwise)")
@click.option("--force", is_flag=True,
              help="remove it even when what remains has no majority in the Primary Component, or an even "
                   "number of votes and no arbitrator (it says what that risks)")
@click.option("--timeout", default=330.0, show_default=True, help="seconds to wait for its agent to stop it")
@click.option("--undo", is_flag=True, help="forget an earlier removal of MEMBER in the DCS (it may then join again)")
@click.pass_context
def remove(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
           member: str, yes: bool, force: bool, timeout: float, undo: bool) -> None:
    """Take MEMBER out of the cluster for good: its agent stops mariadbd cleanly (the quorum base shrinks),
    the roster, the proxies and full-outage recovery forget it, and it never comes back by itself.

    Refused for the writer (switch over first), a donor, a paused cluster or during a roll. A member whose
    host is gone is evicted from the view instead."""
    target = target_of(ctx, directory, config, dcs, cluster)
    target.use_tls()

    def carry_out(store: DCS) -> str:
        if undo:
            return undo_removal(store, store.snapshot(with_history=False), member)
        remover = Remover(target, store, f"{socket.gethostname()}:{os.getpid()}", click.echo)
        plan = remover.check(member, force)
        if not yes:
            if not sys.stdin.isatty():
                raise PilotError(f"remove {member} is for good: give --yes to confirm it without a terminal")
            how = "stop it" if plan.how == "stop" else "its host is gone: evict it"
            click.confirm(f"Remove {member} from the cluster for good ({how}; the cluster becomes "
                          f"{', '.join(plan.remaining)})?", abort=True)
        return remover.remove(plan, timeout)

    click.echo(changing(target, "remove", carry_out))


@click.command()
@addressing_options(with_env=False)
@click.argument("member")
@click.option("--donor", default=None, help="the Synced non-writer to copy from (default: a drained one, else the "
                                            "least busy)")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--restart-timeout", default=3600.0, show_default=True,
              help="seconds the full SST may take until MEMBER is Synced again")
@click.pass_context
def reinit(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
           member: str, donor: str | None, yes: bool, restart_timeout: float) -> None:
    """Rebuild MEMBER from a donor by a full SST: it is drained (the writer role moved off it first), its
    mariadbd stopped cleanly, its datadir moved aside and kept, and it rejoins with an empty one. Refused
    unless two other nodes are Synced. A halted rebuild goes on with `restart --resume`."""
    target = target_of(ctx, directory, config, dcs, cluster)

    def carry_out(store: DCS) -> str:
        snapshot = store.snapshot(with_history=False)
        refusal = reinit_refusal(snapshot, member)
        if refusal is not None:
            raise PilotError(f"reinit refused: {refusal.reason}")
        chosen = choose_donor(snapshot, member, donor)
        if chosen is None:
            raise PilotError(f"reinit refused: {donor} cannot donate (a donor must be Synced and not the writer)")
        click.echo(f"{member} will be rebuilt by a full SST from {chosen}; its datadir is moved aside and kept")
        if not yes and not click.confirm("go on?"):
            raise PilotError("nothing was rebuilt")
        driver = RollDriver(store, click.echo, RollOptions(members=(member,), allow_sst=True,
                                                           restart_timeout=restart_timeout, rebuild_from=chosen))
        return driver.run(driver.start((member,)))

    click.echo(changing(target, "reinit", carry_out))


COMMANDS = [remove, reinit]
