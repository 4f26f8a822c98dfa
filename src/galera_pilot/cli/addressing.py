"""The options that say which cluster a verb works on, accepted before the verb (`galera-pilot -c FILE
list`, like patronictl) and after it (`galera-pilot list --dir DIR`); see control/target.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from click.core import ParameterSource

from galera_pilot.config import dcs_url_carries_password, redact_dcs_url

if TYPE_CHECKING:
    from galera_pilot.control.target import ClusterTarget

F = TypeVar("F", bound=Callable[..., Any])


def no_password_in_argv(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Any user can read another's command line (ps): an etcd password must come from the environment."""
    if (value is not None and dcs_url_carries_password(value)
            and ctx.get_parameter_source(param.name or "") == ParameterSource.COMMANDLINE):
        raise click.BadParameter(f"{redact_dcs_url(value)}: a password on the command line is visible to every "
                                 "user of this machine (ps); set GALERA_PILOT_DCS to the URL instead", ctx, param)
    return value


@dataclass(frozen=True)
class Addressing:
    directory: Path | None = None
    config: Path | None = None
    dcs: str | None = None
    cluster: str | None = None
    from_env: frozenset[str] = frozenset()


def addressing_options(with_env: bool) -> Callable[[F], F]:
    """--dir, -c/--config, --dcs and --cluster; the group's read the environment too."""
    def env(name: str) -> str | None:
        return name if with_env else None

    def decorate(function: F) -> F:
        for option in reversed([
            click.option("--dir", "directory", type=click.Path(path_type=Path), default=None,
                         help="an embedded cluster's folder (made by `up`)"),
            click.option("-c", "--config", "config", type=click.Path(path_type=Path), default=None,
                         envvar=env("GALERA_PILOT_CONFIG"),
                         help="a control, node or proxy configuration naming the cluster [env: GALERA_PILOT_CONFIG]"),
            click.option("--dcs", "dcs", default=None, metavar="URL", envvar=env("GALERA_PILOT_DCS"),
                         callback=no_password_in_argv,
                         help="the coordination store, e.g. etcd://HOST:PORT[,HOST:PORT...]; a URL with a password "
                              "only in GALERA_PILOT_DCS"),
            click.option("--cluster", "cluster", default=None, metavar="NAME", envvar=env("GALERA_PILOT_CLUSTER"),
                         help="the cluster's name in the DCS (with --dcs; default: galera)"),
        ]):
            function = option(function)
        return function
    return decorate


def group_addressing(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
                     cluster: str | None) -> Addressing:
    from_env = frozenset(
        flag for flag, param in (("-c/--config", "config"), ("--dcs", "dcs"), ("--cluster", "cluster"))
        if ctx.get_parameter_source(param) == ParameterSource.ENVIRONMENT)
    return Addressing(directory, config, dcs, cluster, from_env)


def target_of(ctx: click.Context, directory: Path | None, config: Path | None, dcs: str | None,
              cluster: str | None) -> ClusterTarget:
    """The cluster a verb works on: its own options win over the group's."""
    from galera_pilot.control.target import resolve  # not at import: the agent and proxy commands never need it

    group = ctx.find_object(Addressing) or Addressing()
    mine = {"--dir": directory, "-c/--config": config, "--dcs": dcs, "--cluster": cluster}
    from_env = frozenset(flag for flag in group.from_env if mine.get(flag) is None)
    return resolve(directory or group.directory, config or group.config, dcs or group.dcs, cluster or group.cluster,
                   from_env=from_env)
