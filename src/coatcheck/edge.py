"""What every edge (ASGI, WSGI, Flask, ...) decides the same way, with no framework in sight.

An edge does three things besides calling the manager: it finds the token a request
presents, it tells the client what a commit changed, and it answers 503 when the store
fails. The rules for those live here, once, as plain functions over strings, so the async
and the sync edges cannot drift apart; each edge only converts its framework's header
representation (ASGI byte pairs, a WSGI environ, a werkzeug ``Headers``) to and from them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .config import SessionConfig
from .cookies import clear_cookie, read_cookie, set_cookie
from .manager import CommitResult

UNAVAILABLE_STATUS = 503
UNAVAILABLE_BODY = b"Session store unavailable; please retry shortly.\n"
UNAVAILABLE_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-type", "text/plain; charset=utf-8"),
    ("content-length", str(len(UNAVAILABLE_BODY))),
    ("retry-after", "5"),
    ("cache-control", "no-store"),
)
"""The 503 every edge sends when the store fails: short, plain, never a traceback, never
cached, and with a hint that retrying soon is the right move."""

TRANSPORT_HEADER = "x-session-transport"
"""A client without a token yet sends ``X-Session-Transport: bearer`` to receive its token
in a response header instead of a cookie."""


@dataclass(frozen=True, slots=True)
class RequestToken:
    """The token a request presented and how it travelled."""

    token: str | None
    bearer: bool
    """True when the client uses header transport: its new tokens go in the token header,
    never in a cookie."""
    user_agent: str | None


def bearer_credentials(authorization: str) -> str | None:
    """The credentials of an ``Authorization: Bearer ...`` value, or None for any other
    scheme (Basic, Digest, ...), which is not ours to read."""
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    return None


def wants_bearer(transport: str) -> bool:
    """Does an ``X-Session-Transport`` value ask for header transport?"""
    return transport.strip().lower() == "bearer"


def choose_token(
    cookie_header: str | None,
    bearer: str | None,
    wants_header: bool,
    user_agent: str | None,
    cookie_name: str,
) -> RequestToken:
    """Bearer wins over the cookie: it is explicit. A client that asks for header transport
    gets it only while it has no cookie token, so a browser cannot be switched over."""
    if bearer is not None:
        return RequestToken(bearer, True, user_agent)
    token = read_cookie(cookie_header, cookie_name) if cookie_header else None
    return RequestToken(token, wants_header and token is None, user_agent)


_TRANSPORT_BYTES = TRANSPORT_HEADER.encode("latin-1")


def read_header_list(
    headers: Iterable[tuple[bytes, bytes]], cookie_name: str, allow_bearer: bool
) -> RequestToken:
    """The token in an ASGI header list (lower-case byte names, possibly repeated).

    Several Cookie headers (HTTP/2 splits them) are joined; only the headers that matter
    are decoded, since this runs on every request.
    """
    cookie_parts: list[str] = []
    bearer: str | None = None
    wants_header = False
    user_agent: str | None = None
    for name, value in headers:
        if name == b"cookie":
            cookie_parts.append(value.decode("latin-1"))
        elif name == b"authorization" and allow_bearer:
            found = bearer_credentials(value.decode("latin-1"))
            if found is not None:
                bearer = found
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
        elif name == _TRANSPORT_BYTES and allow_bearer:
            wants_header = wants_bearer(value.decode("latin-1"))
    cookie = "; ".join(cookie_parts) if cookie_parts else None
    return choose_token(cookie, bearer, wants_header, user_agent, cookie_name)


def read_environ(environ: Mapping[str, Any], cookie_name: str, allow_bearer: bool) -> RequestToken:
    """The token in a WSGI environ (the server has already joined repeated headers)."""
    bearer: str | None = None
    wants_header = False
    if allow_bearer:
        authorization = environ.get("HTTP_AUTHORIZATION")
        if authorization:
            bearer = bearer_credentials(authorization)
        transport = environ.get("HTTP_X_SESSION_TRANSPORT")
        if transport:
            wants_header = wants_bearer(transport)
    return choose_token(
        environ.get("HTTP_COOKIE") or None,
        bearer,
        wants_header,
        environ.get("HTTP_USER_AGENT"),
        cookie_name,
    )


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
        return SessionHeaders((header,), force_no_store=True)
    if authenticated:
        return SessionHeaders((), force_no_store=False)
    return None


H = TypeVar("H", str, bytes)


def merge_headers(
    headers: Iterable[tuple[H, H]],
    update: SessionHeaders,
    cache_control: H,
    encode: Callable[[str], H],
) -> list[tuple[H, H]]:
    """Apply ``update`` to a response's header list, in the edge's own string type.

    ``cache_control`` is the lower-case name in that type (``b"cache-control"`` for ASGI,
    ``"cache-control"`` for WSGI) and ``encode`` turns this module's strings into it.
    """
    out = list(headers)
    if update.force_no_store:
        out = [(n, v) for n, v in out if n.lower() != cache_control]
        has_cache_control = False
    else:
        has_cache_control = any(n.lower() == cache_control for n, _ in out)
    out.extend((encode(n), encode(v)) for n, v in update.add)
    if not has_cache_control:
        out.append((cache_control, encode("no-store")))
    return out
