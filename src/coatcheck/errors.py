"""Exceptions coatcheck raises, grouped so an edge can map each family to one answer."""

from __future__ import annotations


class CoatcheckError(Exception):
    """Base class of every coatcheck error."""


class ConfigError(CoatcheckError, ValueError):
    """A setting is invalid or weakens security without the named opt-out."""


class StoreUnavailable(CoatcheckError):
    """The store could not be reached or could not complete an operation.

    Adapters answer 503 and stop: continuing with an empty session could later overwrite
    the real one once the store is back.
    """


class SessionDataError(CoatcheckError, TypeError):
    """Session data cannot be stored (not JSON-serializable); the message names the key."""


class SessionCommittedError(CoatcheckError, RuntimeError):
    """The session changed after it was committed (after the response started).

    Raised instead of dropping the change silently.
    """
