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


class SessionTooLarge(SessionDataError):
    """The session's data would exceed ``max_data_bytes``; the message names the size."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"session data would be {size} bytes of JSON, over the limit of {limit} "
            "(SessionConfig.max_data_bytes); store large things elsewhere and keep a reference"
        )
        self.size = size
        self.limit = limit


class SessionLimitExceeded(CoatcheckError):
    """A login would exceed ``max_sessions_per_user`` with ``session_limit_action="deny"``.

    Edges answer 403; apps can ask first with ``manager.session_count(user_id)``.
    """


class Throttled(CoatcheckError):
    """This client presented too many unknown tokens recently; edges answer 429."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many unknown session tokens; retry after {retry_after} s")
        self.retry_after = retry_after


class UnsupportedOperation(CoatcheckError, NotImplementedError):
    """The store cannot do this by its nature (e.g. list the sessions of a cookie store)."""


class CookieTooLargeError(SessionDataError):
    """The sealed session would not fit in one cookie. ``size`` is name plus value, bytes."""

    def __init__(self, size: int, limit: int = 4096) -> None:
        super().__init__(
            f"the session cookie would be {size} bytes (name plus value), over the "
            f"{limit}-byte limit browsers keep; it is never truncated or split: keep less in "
            "the session, or use a server-side store"
        )
        self.size = size
        self.limit = limit


class InvalidCookie(CoatcheckError):
    """A client-side store could not open a value. Caught by ``load``, which starts a fresh
    session; ``reason`` goes into the rejection event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
