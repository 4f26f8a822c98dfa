"""Errors a user can act on.

Anything raised as a `PilotError` is printed by the CLI as one clear message without a stack trace;
every other exception is a bug and keeps its traceback.
"""


class PilotError(Exception):
    """A problem with the user's input or environment, explained in the message."""


class ConfigError(PilotError):
    """A configuration file is missing, unreadable or invalid; the message names the field."""


class DCSError(PilotError):
    """The coordination store cannot be reached or answered with an error."""
