"""Every exception coatcheck raises, in one tree under ``CoatcheckError``.

Each class carries ``status``, the HTTP status an edge answers with when the error reaches
it (``None``: the application's own mistake, a 500 with the cause in the log), so every
edge maps a family to the same answer without a table of its own. Errors that tell the
client to come back later also carry ``retry_after`` (seconds), sent as ``Retry-After``.
Standard library only; every layer may import this module.
"""

from __future__ import annotations

from typing import ClassVar


class CoatcheckError(Exception):
    """Base class of every coatcheck error."""

    status: ClassVar[int | None] = None
    """The HTTP status an edge answers with; None for a programming error (500)."""

    retry_after: int | None = None
    """Seconds for ``Retry-After``, where waiting helps."""


# -- configuration ---------------------------------------------------------------------------
class ConfigError(CoatcheckError, ValueError):
    """A setting is invalid or weakens security without the named opt-out."""


class StoreURLError(ConfigError):
    """A store URL that names no known scheme, or holds an option the store cannot take.
    The message names the URL's scheme and the offending part, never its password."""


# -- the store -------------------------------------------------------------------------------
class StoreUnavailable(CoatcheckError):
    """The store could not be reached or could not complete an operation.

    Adapters answer 503 and stop: continuing with an empty session could later overwrite
    the real one once the store is back.
    """

    status = 503
    retry_after = 5
    """A store failover takes seconds, and clients that all retry at once prolong it."""


class UnsupportedOperation(CoatcheckError, NotImplementedError):
    """The store cannot do this by its nature (e.g. list the sessions of a cookie store)."""


class MissingCapability(UnsupportedOperation):
    """The engine was asked for something its store's type does not declare (a capability
    of ``coatcheck.stores.base``, such as ``UserIndex`` to list a user's sessions).

    No store method raises it: the engine asks for the capability by type before calling
    the store. ``capability`` names the capability class, ``operation`` what needed it.
    """

    def __init__(self, store: str, capability: str, operation: str, hint: str = "") -> None:
        super().__init__(
            f"{operation} needs a store with the {capability} capability "
            f"(coatcheck.stores.base.{capability}), and this {store} has none{hint}"
        )
        self.store = store
        self.capability = capability
        self.operation = operation


# -- the application's data ------------------------------------------------------------------
class SessionDataError(CoatcheckError, TypeError):
    """Session data cannot be stored (not JSON-serializable); the message names the key."""


class InvalidUserId(CoatcheckError, TypeError):
    """A user id that names nobody: ``None`` (an anonymous visitor's ``session.user_id``),
    a bool, an empty string or a value of another type. Raised by ``login``,
    ``list_user_sessions`` and ``revoke_user`` instead of filing it as the user "None";
    the message names what was passed."""


class ConsentError(CoatcheckError, ValueError):
    """A consent call names a category the policy does not know, refuses ``necessary``,
    or names a method that is not one of ``accept_all``, ``reject_all``, ``custom``,
    ``gpc`` and ``api``: the application's mistake (the session service answers a
    client's such request with 422 itself)."""


class SessionCommittedError(CoatcheckError, RuntimeError):
    """The session changed after it was committed (after the response started).

    Raised instead of dropping the change silently.
    """


class SessionTooLarge(SessionDataError):
    """The session's data would exceed ``max_data_bytes``; the message names the size."""

    status = 413

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"session data would be {size} bytes of JSON, over the limit of {limit} "
            "(SessionConfig.max_data_bytes); store large things elsewhere and keep a reference"
        )
        self.size = size
        self.limit = limit


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


# -- refusals of a request -------------------------------------------------------------------
class SessionLimitExceeded(CoatcheckError):
    """A login would exceed ``max_sessions_per_user`` with ``session_limit_action="deny"``.

    Edges answer 403; apps can ask first with ``len(manager.list_user_sessions(user_id))``.
    """

    status = 403


class SessionLocked(CoatcheckError):
    """Another request of the same session held its lock (``SessionConfig.lock_sessions``
    or a route marked locked) for longer than ``lock_timeout``; edges answer 409 Conflict
    with ``Retry-After``, and the request did not run."""

    status = 409

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(
            "another request of this session held its lock past lock_timeout; retry after "
            f"{retry_after} s"
        )
        self.retry_after = retry_after


class SessionConflict(CoatcheckError):
    """This request's write to the session was lost, and it says so instead of answering
    success: a concurrent request of the same client logged in or called ``regenerate()``
    (``reason="superseded"``: the browser already holds the newer token), or the session
    was revoked or purged while this request ran (``reason="gone"``).

    Edges answer 409 with no ``Set-Cookie`` at all: the token this request came with is
    not one it issued now, so clearing it could delete the newer login cookie the browser
    holds. The request may be retried: with the newer cookie the write lands; after a
    revocation the retry starts from a fresh session.
    """

    status = 409
    retry_after = 1
    """A retry a second later carries the cookie the concurrent response set."""

    def __init__(self, reason: str) -> None:
        why = (
            "a concurrent request logged in or regenerated this session's token"
            if reason == "superseded"
            else "the session ended (revoked or expired) while this request ran"
        )
        super().__init__(f"the session write was not stored: {why}; retry the request")
        self.reason = reason


class Throttled(CoatcheckError):
    """This client presented too many unknown tokens recently; edges answer 429."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many unknown session tokens; retry after {retry_after} s")
        self.retry_after = retry_after


class AuthenticationRequired(CoatcheckError):
    """The route needs a signed-in user, a recent authentication or a higher assurance
    level than the session has. ``problem`` says which (``coatcheck.security.reauth``); each
    framework's edge turns it into its own 401 (Flask's ``Unauthorized``, FastAPI's
    ``HTTPException``) from this one class."""

    status = 401

    def __init__(self, problem: object, message: str = "authentication required") -> None:
        super().__init__(message)
        self.problem = problem


# -- values that do not open -----------------------------------------------------------------
class InvalidCookie(CoatcheckError):
    """A client-side store could not open a value. Caught by ``load``, which starts a fresh
    session; ``reason`` goes into the rejection event."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsealError(CoatcheckError, ValueError):
    """A value that does not open. ``reason`` is one of ``malformed``, ``unknown_key``,
    ``invalid`` (authentication failed: tampered, truncated, or sealed elsewhere)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
