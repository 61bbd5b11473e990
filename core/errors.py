"""The root of every error Tollgate raises on purpose."""

from __future__ import annotations


class TollgateError(Exception):
    """Base class for errors that carry a message meant for a person to read."""


class ConfigError(TollgateError):
    """The configuration is invalid; the message names the field and the reason."""


class DatabaseError(TollgateError):
    """The database could not be reached or migrated."""
