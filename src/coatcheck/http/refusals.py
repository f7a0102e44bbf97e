"""The answers an edge sends instead of the app's when the engine refuses a request.

A failing store is a 503, a client throttled for guessing tokens a 429, a login over the
session limit a 403, a write lost to a concurrent login or a revocation a 409 (with no
``Set-Cookie``: the browser may already hold the newer token), a session whose lock stayed
held past ``lock_timeout`` a 409 too. Every edge (ASGI, WSGI,
Flask, Django) must answer them alike, and the status each deserves is already written on
the error class (``CoatcheckError.status``), so the answers are one table keyed by error
class rather than a ladder of ``isinstance`` tests per edge: adding a refusal is adding a
row. The answers are short, plain, never
cached and never a traceback.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from coatcheck.core.config import SessionConfig
from coatcheck.errors import (
    CoatcheckError,
    SessionConflict,
    SessionLimitExceeded,
    SessionLocked,
    SessionTooLarge,
    StoreUnavailable,
    Throttled,
)
from coatcheck.http.cookies import clear_cookie

logger = logging.getLogger("coatcheck")

__all__ = [
    "REFUSED",
    "UNAVAILABLE",
    "UNAVAILABLE_BODY",
    "Refusal",
    "plain",
    "refusal",
    "refused",
    "refused_at_load",
]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A response an edge sends instead of the app's: status, reason phrase (WSGI needs
    it), body and headers, in plain strings every edge converts to its own types."""

    status: int
    phrase: str
    body: bytes
    headers: tuple[tuple[str, str], ...]

    @property
    def wsgi_status(self) -> str:
        return f"{self.status} {self.phrase}"


def plain(status: int, phrase: str, text: str, retry_after: int | None = None) -> Refusal:
    """A short plain-text answer that no cache keeps, with ``Retry-After`` when given."""
    body = text.encode()
    headers: tuple[tuple[str, str], ...] = (
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(body))),
    )
    if retry_after is not None:
        headers += (("retry-after", str(retry_after)),)
    return Refusal(status, phrase, body, (*headers, ("cache-control", "no-store")))


@dataclass(frozen=True, slots=True)
class _Answer:
    """One row of the table: how an error class is answered. The status is not here: it
    is the error's own (``CoatcheckError.status``)."""

    phrase: str
    text: str
    log: str
    """What the edge logs, ``%s`` being the step (load, commit) and the error."""
    log_level: int
    """A store failure is a warning (an operator must look); a refused client is news."""
    retry_after: int | None = None
    """A fixed ``Retry-After`` for the whole class; None sends the error's own, if any."""


_ANSWERS: Final[Mapping[type, _Answer]] = {
    StoreUnavailable: _Answer(
        "Service Unavailable",
        "Session store unavailable; please retry shortly.\n",
        "session store unavailable on %s: %s",
        logging.WARNING,
    ),
    Throttled: _Answer(
        "Too Many Requests",
        "Too many unknown session tokens from this address; slow down.\n",
        "session request refused on %s: %s",
        logging.INFO,
    ),
    SessionLimitExceeded: _Answer(
        "Forbidden",
        "This account has too many active sessions; log out elsewhere first.\n",
        "session request refused on %s: %s",
        logging.INFO,
    ),
    SessionLocked: _Answer(
        "Conflict",
        "Another request of this session is still running; please retry shortly.\n",
        "session request refused on %s: %s",
        logging.INFO,
    ),
    SessionConflict: _Answer(
        "Conflict",
        "This request's change to the session was not stored, because the session changed "
        "at the same moment (a sign-in elsewhere in this browser, or the session ended); "
        "please retry.\n",
        "session write lost on %s: %s",
        logging.INFO,
    ),
    SessionTooLarge: _Answer(
        "Content Too Large",
        "The session would hold more data than the application allows.\n",
        "session data too large on %s: %s",
        logging.WARNING,
    ),
}

REFUSED: Final = (
    StoreUnavailable,
    Throttled,
    SessionLimitExceeded,
    SessionLocked,
    SessionConflict,
    SessionTooLarge,
)
"""The engine errors an edge catches and answers itself with ``refused(exc, when)``;
anything else is the app's to handle. ``SessionTooLarge`` is one: the store refuses a
write that would take the session past ``max_data_bytes`` atomically with it, so a
request can be refused for what concurrent requests stored (twenty writers of 60 KB under
different keys, each of which fits alone). That is the client's request refused, a 413
with no traceback, and nothing is lost: the stored session is as it was. Other
``SessionDataError`` errors (a value that is not JSON, an atomic operation's type clash) stay
the app's bug, a 500."""


def _answer(exc: CoatcheckError) -> _Answer:
    """The row of ``exc``'s class or of its nearest listed base; an error the table does
    not know is answered as a store failure, refusing being the safe default."""
    for cls in type(exc).__mro__:
        answer = _ANSWERS.get(cls)
        if answer is not None:
            return answer
    return _ANSWERS[StoreUnavailable]


def _respond(exc: CoatcheckError, answer: _Answer) -> Refusal:
    retry_after = answer.retry_after if answer.retry_after is not None else exc.retry_after
    return plain(exc.status or 503, answer.phrase, answer.text, retry_after)


def refusal(exc: CoatcheckError) -> Refusal:
    """The answer to ``exc``, by the table."""
    return _respond(exc, _answer(exc))


def refused(exc: CoatcheckError, when: str) -> Refusal:
    """``refusal(exc)``, logged once for every edge, naming the step that was refused."""
    answer = _answer(exc)
    logger.log(answer.log_level, answer.log, when, exc)
    return _respond(exc, answer)


def refused_at_load(exc: CoatcheckError, config: SessionConfig, *, bearer: bool) -> Refusal:
    """``refused(exc, "load")``. The throttle refuses only a token that opened nothing, so
    its 429 also tells the client to drop that token (an expired cookie, or an empty token
    header for a bearer client), as the commit of any dead token does: the next request
    comes without it and is served."""
    refusal = refused(exc, "load")
    if not isinstance(exc, Throttled):
        return refusal
    drop = (config.token_header.lower(), "") if bearer else ("set-cookie", clear_cookie(config))
    return dataclasses.replace(refusal, headers=(*refusal.headers, drop))


UNAVAILABLE: Final = refusal(StoreUnavailable("session store unavailable"))
"""The 503 an edge sends when the store failed, also where no error is at hand."""

UNAVAILABLE_BODY: Final = UNAVAILABLE.body
