"""The configuration verbs: `show-config`, `edit-config` and `reload` (control/settings.py does the work)."""

from __future__ import annotations

import getpass
import socket
import time
from datetime import datetime
from pathlib import Path

import click
import yaml

from galera_pilot.cli.addressing import addressing_options, target_of
from galera_pilot.cli.steer import changing
from galera_pilot.cluster import ClusterSettings
from galera_pilot.control.settings import Followed, propose, reload_members, store, wait_followed
from galera_pilot.dcs.base import DCS
from galera_pilot.dcs.settings import read_settings
from galera_pilot.errors import ConfigError, PilotError
from galera_pilot.lifecycle.updates import UpdatePolicy
from galera_pilot.settings.edits import SECTIONS, edited, parse_assignment, parse_removal, replaced


def document_of(settings: ClusterSettings | None) -> str:
    sections = {name: dict(getattr(settings, name)) if settings else {} for name in SECTIONS}
    return yaml.safe_dump(sections, sort_keys=True, default_flow_style=False)


@click.command("show-config")
@addressing_options(with_env=False)
@click.pass_context
def show_config(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
                cluster: str | None) -> None:
    """Print the cluster-wide settings (each node's own file wins over them) and who still lacks some."""
    target = target_of(ctx, directory, config, dcs, cluster)
    snapshot = target.snapshot()
    settings = snapshot.settings
    if settings is None:
        click.echo("# no cluster-wide settings yet (galera-pilot edit-config --set SECTION.NAME=VALUE)")
    else:
        when = datetime.fromtimestamp(settings.at).strftime("%Y-%m-%d %H:%M:%S")
        click.echo(f"# revision {settings.revision}, by {settings.by} at {when}")
    click.echo(document_of(settings), nl=False)
    for name, member in sorted(snapshot.members.items()):
        notes = []
        if settings is not None and member.running and member.settings_revision < settings.revision:
            notes.append(f"still on revision {member.settings_revision}")
        if member.pending_restart:
            notes.append(f"pending restart: {', '.join(member.pending_restart)}")
        if member.settings_error:
            notes.append(member.settings_error)
        if member.settings_overridden:
            notes.append(f"its own file sets {', '.join(member.settings_overridden)}")
        if notes:
            click.echo(f"# {name}: {'; '.join(notes)}")


@click.command("edit-config")
@addressing_options(with_env=False)
@click.option("--set", "assignments", multiple=True, metavar="SECTION.NAME=VALUE",
              help="set one setting (mariadb.max_connections=500, galera.gcs.fc_limit=64, timing.loop_wait=2, "
                   "updates.policy=minor)")
@click.option("--unset", "removals", multiple=True, metavar="SECTION.NAME", help="remove one setting")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.option("--timeout", default=30.0, show_default=True, help="seconds to wait for every agent to follow")
@click.pass_context
def edit_config(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
                cluster: str | None, assignments: tuple[str, ...], removals: tuple[str, ...], yes: bool,
                timeout: float) -> None:
    """Change the cluster-wide settings: with --set/--unset, or in $EDITOR without them. They are checked
    against a running server first; dynamic variables are applied at once on every node, the rest waits
    for `galera-pilot restart --pending`."""
    sets = [parse_assignment(text) for text in assignments]
    unsets = [parse_removal(text) for text in removals]
    by = f"{getpass.getuser()}@{socket.gethostname()}"
    target = target_of(ctx, directory, config, dcs, cluster)

    def edit(store_: DCS) -> str:
        if sets or unsets:
            proposal = propose(store_, lambda old: edited(old, sets, unsets, by, time.time()))
        else:
            old, _ = read_settings(store_)
            text = click.edit(document_of(old), extension=".yaml")
            if text is None:
                return "no change (the editor was closed without saving); nothing was stored"
            try:
                document = yaml.safe_load(text) or {}
            except yaml.YAMLError as error:
                raise ConfigError(f"the edited settings are not valid YAML: {error}; nothing was stored") from None
            if not isinstance(document, dict):
                raise ConfigError("the edited settings must be a mapping of sections; nothing was stored")
            proposal = propose(store_, lambda old: replaced(old, document, by, time.time()))
        if not proposal.lines:
            return "no change; nothing was stored"
        click.echo("\n".join(proposal.lines))
        if proposal.at_once:
            click.echo(f"applied at once on every running node (SET GLOBAL): {', '.join(proposal.at_once)}")
        if proposal.restart:
            click.echo(f"take effect at each node's next restart (galera-pilot restart --pending): "
                       f"{', '.join(proposal.restart)}")
        if proposal.new.timing != (proposal.old.timing if proposal.old else {}):
            click.echo("timing: every agent takes it at its next cycle")
        if proposal.new.updates != (proposal.old.updates if proposal.old else {}):
            click.echo(f"automatic updates: {describe_policy(proposal.new.updates)}")
        if not yes and not click.confirm("store these settings?"):
            raise PilotError("nothing was stored")
        store(store_, proposal)
        if store_.get("pause") is not None:
            return (f"stored revision {proposal.new.revision}; the cluster is paused, so the agents apply it once "
                    "it is resumed (galera-pilot resume)")
        return followed_text(wait_followed(store_, proposal.new.revision, timeout))

    click.echo(changing(target, "edit-config", edit))


def describe_policy(section: dict) -> str:
    policy = UpdatePolicy.of(section)
    if policy.policy == "never":
        return "off"
    when = f"started only between {policy.window}" if policy.policy == "scheduled" else "started at once"
    return f"the writer's agent rolls a minor update once it is installed on every host ({when})"


def followed_text(followed: Followed) -> str:
    lines = [f"stored revision {followed.revision}"]
    pending = []
    for name, member in sorted(followed.members.items()):
        state = "follows it"
        if member.settings_error:
            state += f"; {member.settings_error}"
        if member.settings_overridden:
            state += f"; its own file sets {', '.join(member.settings_overridden)} (local wins)"
        if member.pending_restart:
            state += f"; pending restart: {', '.join(member.pending_restart)}"
            pending.append(name)
        lines.append(f"  {name}: {state}")
    lines += [f"  {name}: has not reported it yet (it follows at its next cycle)" for name in followed.silent]
    if pending:
        lines.append(f"galera-pilot restart --pending restarts {', '.join(pending)} one at a time")
    return "\n".join(lines)


@click.command()
@addressing_options(with_env=False)
@click.argument("members", nargs=-1)
@click.pass_context
def reload(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None, cluster: str | None,
           members: tuple[str, ...]) -> None:
    """Have MEMBERS' agents (default: all) re-read their configuration file; a change that needs an agent
    restart is refused and named."""
    target = target_of(ctx, directory, config, dcs, cluster)
    results = reload_members(target.snapshot(), members)
    for name, _ok, text in results:
        click.echo(f"{name}: {text}")
    if not all(ok for _, ok, _ in results):
        raise PilotError("some members did not reload (see above)")


COMMANDS = (show_config, edit_config, reload)
