"""The `callbacks` section of a node's configuration: commands run when something happens to the node.

Patroni's set, plus Galera's: on_start, on_stop, on_restart, on_role_change (writer / reader),
on_state_change (the wsrep state), on_view_change (the cluster's membership), on_reload. Each is a
command, run as `COMMAND ACTION ROLE CLUSTER` without a shell (events/callbacks.py).
"""

from __future__ import annotations

import shlex

from pydantic import BaseModel, ConfigDict, Field, field_validator

ACTIONS = ("on_start", "on_stop", "on_restart", "on_role_change", "on_state_change", "on_view_change", "on_reload")


class CallbackSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on_start: list[str] | None = Field(None, description="mariadbd started (or was found running)")
    on_stop: list[str] | None = Field(None, description="mariadbd stopped")
    on_restart: list[str] | None = Field(None, description="mariadbd was restarted for a rolling restart")
    on_role_change: list[str] | None = Field(None, description="this node became the writer, or stopped being it")
    on_state_change: list[str] | None = Field(None, description="the wsrep state changed (Synced, Donor/Desynced, …)")
    on_view_change: list[str] | None = Field(None, description="the cluster's membership seen by this node changed")
    on_reload: list[str] | None = Field(None, description="the node's file was re-read (galera-pilot reload)")
    timeout: float = Field(30.0, gt=0, le=3600, description="seconds a callback may run before it is killed")

    @field_validator(*ACTIONS, mode="before")
    @classmethod
    def _command(cls, value: object) -> object:
        """A command line (split as a shell would, but never run by one) or a list of arguments."""
        if isinstance(value, str):
            try:
                value = shlex.split(value)
            except ValueError as error:
                raise ValueError(f"cannot split {value!r} into arguments: {error}") from None
        if isinstance(value, list) and not value:
            raise ValueError("an empty command; leave the field out for no callback")
        return value

    def command(self, action: str) -> list[str] | None:
        found: list[str] | None = getattr(self, action)
        return found
