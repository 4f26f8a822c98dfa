"""The verbs that change the cluster's state in the DCS: `bootstrap`, `switchover`, `maintenance`.

Each refuses with a clear message while the DCS is unreachable: the agents act on what the DCS holds,
so nothing can be ordered without it (`list` still shows what the members say)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

from galera_pilot.cli.addressing import addressing_options, target_of
from galera_pilot.control.bootstrap import order_bootstrap, order_empty_start
from galera_pilot.control.target import ClusterTarget
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import DCSError, PilotError
from galera_pilot.routing.handover import keeper_refusal, run_switchover, wait_drained
from galera_pilot.routing.peers import fetch_status

T = TypeVar("T")


def changing(target: ClusterTarget, verb: str, action: Callable[[DCS], T]) -> T:
    """Run `action` on the target's DCS; a DCS that does not answer becomes the refusal to act."""
    target.snapshot()  # unreachable, or no such cluster: say so before anything else
    dcs = target.open_dcs()
    try:
        return action(dcs)
    except DCSError as error:
        raise PilotError(f"{verb} refused: it changes what the DCS holds, and the DCS {target.dcs_label} does not "
                         f"answer ({error}); nothing was ordered") from None
    finally:
        dcs.close()


@click.command()
@addressing_options(with_env=False)
@click.option("--member", required=True, help="the member whose datadir becomes the cluster's state")
@click.option("--force", is_flag=True, help="really order it (without: only show what it would discard)")
@click.option("--empty", is_flag=True,
              help="start a new cluster from nothing on MEMBER's empty datadir (a new cluster UUID)")
@click.pass_context
def bootstrap(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
              cluster: str | None, member: str, force: bool, empty: bool) -> None:
    """Order MEMBER to bootstrap after a full outage without waiting for the missing members.

    The agents never do this alone with less than what the recovery policy requires, nor below the
    cluster's high-water mark; a person may, and this command first shows what it would discard.
    With --empty (the data is gone from every node), MEMBER starts a new cluster from nothing.
    """
    target = target_of(ctx, directory, config, dcs, cluster)
    order = order_empty_start if empty else order_bootstrap
    click.echo(changing(target, "bootstrap", lambda store: order(store, member, force, click.echo)))


@click.command()
@addressing_options(with_env=False)
@click.option("--to", "to", default=None, help="the member that becomes the writer (default: the best other)")
@click.option("--timeout", default=30.0, show_default=True, help="seconds to wait for the new writer")
@click.pass_context
def switchover(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
               cluster: str | None, to: str | None, timeout: float) -> None:
    """Move the writer role gracefully: the writer stops answering /writer (HAProxy drains it), gives the
    lease up, and the chosen member takes it."""
    target = target_of(ctx, directory, config, dcs, cluster)
    click.echo(changing(target, "switchover", lambda store: run_switchover(store, to, timeout)))


@click.command()
@addressing_options(with_env=False)
@click.argument("mode", type=click.Choice(["on", "off"]))
@click.argument("member")
@click.option("--timeout", default=30.0, show_default=True, help="seconds to wait for the node to be drained")
@click.pass_context
def maintenance(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
                cluster: str | None, mode: str, member: str, timeout: float) -> None:
    """Drain MEMBER (on): its /read and /writer answer 503, so HAProxy routes around it and it may be
    restarted; off: it serves again once healthy."""
    target = target_of(ctx, directory, config, dcs, cluster)
    snapshot = target.snapshot()
    known = target.known.get(member)
    record = snapshot.members.get(member) or snapshot.roster.get(member)
    api_url = known.api_url if known else (record.api_url if record else "")
    if not api_url:
        names = sorted({*target.known, *snapshot.members, *snapshot.roster})
        raise PilotError(f"no member named {member!r} in {target.source} (members: {', '.join(names) or 'none'})")
    if mode == "on":
        # An agent that answers but does not read the DCS would never see the mark: refuse at once, with
        # the reason. (An agent that does not answer at all is out of the endpoints already: HAProxy's
        # checks fail too, so it counts as drained below.)
        document, _ = fetch_status(api_url)
        why = keeper_refusal(document) if document is not None else ""
        if why:
            raise PilotError(f"maintenance refused: {member} could not see the mark: {why}")
    changing(target, "maintenance", lambda store: store.set_maintenance(member, mode == "on"))
    if mode == "off":
        click.echo(f"{member}: maintenance off; it serves reads (and may be elected writer) once healthy")
        return
    try:
        took = wait_drained(api_url, timeout)
    except PilotError:
        raise PilotError(f"{member} still answers 200 on /read or /writer after {timeout:.0f} s") from None
    writer = target.snapshot().writer
    click.echo(f"{member}: drained in {took:.2f} s (/read and /writer answer 503); "
               f"the writer is {writer or 'nobody yet'}. It may be restarted now.")


COMMANDS = (bootstrap, switchover, maintenance)
