"""What a response must carry after a commit: the new token (Set-Cookie, or the token
header for a bearer client), ``Clear-Site-Data`` after a logout, ``no-store``, and the
stored session's deadline in ``X-Session-Expires``.

Decided once here as plain strings and merged into the edge's own header list by
``merge_headers``, so the ASGI and the sync edges cannot drift apart on which responses
carry a credential and must never be cached. The cookie syntax itself is
``coatcheck.http.cookies``'.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from coatcheck.core.config import SessionConfig
from coatcheck.engine.results import CommitResult
from coatcheck.http.cookies import clear_cookie, set_cookie

__all__ = [
    "CLEAR_ALL",
    "CLEAR_KEEP_COOKIES",
    "EXPIRES_HEADER",
    "SessionHeaders",
    "deadline_value",
    "expires_value",
    "header_changes",
    "merge_headers",
    "session_headers",
]

CLEAR_ALL = '"cache", "cookies", "storage"'
CLEAR_KEEP_COOKIES = '"cache", "storage"'
"""After a logout that leaves a new anonymous session (a flash message), clearing cookies
would drop the new cookie too."""

EXPIRES_HEADER = "x-session-expires"
"""The deadline in force of the stored session (the idle deadline, or the absolute one when
it comes first), as whole epoch seconds rounded up. ``coatcheck.js`` reads it from the
responses of its own requests to warn before the session ends: the browser learns the
deadline without any cookie readable by scripts."""


@dataclass(frozen=True, slots=True)
class SessionHeaders:
    """What a response must carry after a commit.

    ``add`` are the credential headers (Set-Cookie, or the token header for bearer
    clients). ``force_no_store`` replaces any Cache-Control the app chose with
    ``no-store``, because the response carries a credential that no cache may keep;
    otherwise ``no-store`` is added only when the app set no Cache-Control of its own.
    """

    add: tuple[tuple[str, str], ...]
    force_no_store: bool


_NO_STORE_UNLESS_SET = SessionHeaders((), force_no_store=False)


def session_headers(
    config: SessionConfig, result: CommitResult, *, bearer: bool, authenticated: bool
) -> SessionHeaders | None:
    """The response headers a commit requires, or None when the response needs none.

    - A new token goes to a bearer client in ``config.token_header`` and to anyone else
      in a Set-Cookie; a cleared token is an expired cookie (or an empty token header).
    - A response that changes the token, or that belongs to an authenticated session,
      must not be stored by a shared cache: personalised pages leak otherwise.
    """
    if result.changes_token:
        if bearer:
            header = (config.token_header.lower(), result.token or "")
        elif result.token is not None:
            header = ("set-cookie", set_cookie(config, result.token, result.max_age))
        else:
            header = ("set-cookie", clear_cookie(config))
        if result.ended and config.clear_site_data and not bearer:
            wipe = CLEAR_ALL if result.token is None else CLEAR_KEEP_COOKIES
            return SessionHeaders((header, ("clear-site-data", wipe)), force_no_store=True)
        return SessionHeaders((header,), force_no_store=True)
    if authenticated:
        return _NO_STORE_UNLESS_SET
    return None


def expires_value(result: CommitResult, handle: str | None, expires_at: float | None) -> str | None:
    """The ``X-Session-Expires`` value after a commit: only for a session that is stored
    (it has a handle and a deadline, and the commit did not clear it), else None."""
    if handle is None or expires_at is None or result.clear:
        return None
    return str(math.ceil(expires_at))  # deadline_value, without a call on every response


def deadline_value(expires_at: float) -> str:
    """A deadline as ``X-Session-Expires`` writes it: whole epoch seconds, rounded up, so a
    client that acts at that second never finds the session still alive."""
    return str(math.ceil(expires_at))


H = TypeVar("H", str, bytes)


def header_changes(
    update: SessionHeaders | None, expires: str | None, has_cache_control: Callable[[], bool]
) -> tuple[bool, list[tuple[str, str]]]:
    """What ``update`` and ``expires`` (``expires_value``) do to a response's headers:
    whether the app's own Cache-Control goes, and the headers to add, in order. The one
    rule behind ``merge_headers``, for an edge that edits a header object in place
    (Flask). ``has_cache_control`` is asked only when the answer matters."""
    add: list[tuple[str, str]] = []
    if expires is not None:
        add.append((EXPIRES_HEADER, expires))
    if update is None:
        return False, add
    add.extend(update.add)
    if update.force_no_store or not has_cache_control():
        add.append(("Cache-Control", "no-store"))
    return update.force_no_store, add


def merge_headers(
    headers: Iterable[tuple[H, H]],
    update: SessionHeaders | None,
    cache_control: H,
    encode: Callable[[str], H],
    expires: str | None = None,
) -> list[tuple[H, H]]:
    """Apply ``update`` and ``expires`` (``expires_value``) to a response's header list,
    in the edge's own string type (``header_changes`` says what changes).

    ``cache_control`` is the lower-case name in that type (``b"cache-control"`` for ASGI,
    ``"cache-control"`` for WSGI) and ``encode`` turns this module's strings into it.
    """
    out = list(headers)
    drop, add = header_changes(
        update, expires, lambda: any(n.lower() == cache_control for n, _ in out)
    )
    if drop:
        out = [(n, v) for n, v in out if n.lower() != cache_control]
    out.extend((encode(n), encode(v)) for n, v in add)
    return out
