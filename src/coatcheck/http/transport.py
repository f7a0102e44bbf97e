"""Which token a request carries, and how it travelled: the session cookie,
``Authorization: Bearer``, or no token yet but ``X-Session-Transport: bearer``.

Every edge asks this on every request, so the readers are plain functions over the edge's
own header representation (an ASGI byte list, a WSGI environ) that return plain tuples;
the rule that picks between the channels (``_choose``) is written once for both. How a
commit answers the client back (Set-Cookie or the token header) is ``coatcheck.http.headers``'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from coatcheck.http.cookies import read_cookie

__all__ = [
    "TRANSPORT_HEADER",
    "RequestToken",
    "bearer_credentials",
    "gpc_signal",
    "read_header_list",
    "scan_environ",
    "scan_header_list",
    "wants_bearer",
]

TRANSPORT_HEADER = "x-session-transport"
"""A client without a token yet sends ``X-Session-Transport: bearer`` to receive its token
in a response header instead of a cookie."""

_TRANSPORT_BYTES = TRANSPORT_HEADER.encode("latin-1")


@dataclass(frozen=True, slots=True)
class RequestToken:
    """The token a request presented and how it travelled."""

    token: str | None
    bearer: bool
    """True when the client uses header transport: its new tokens go in the token header,
    never in a cookie."""
    user_agent: str | None
    gpc: bool = False
    """The request carried ``Sec-GPC: 1`` (Global Privacy Control)."""


def gpc_signal(value: str | None) -> bool:
    """Does a ``Sec-GPC`` value signal a refusal? Only ``1`` does (the GPC specification:
    any other value, or none, is no signal)."""
    return value is not None and value.strip() == "1"


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


def _choose(
    cookie_header: str | None,
    bearer: str | None,
    wants_header: bool,
    user_agent: str | None,
    cookie_name: str,
    gpc: bool,
) -> tuple[str | None, bool, str | None, bool]:
    """(token, bearer, user agent, GPC). Bearer wins over the cookie: it is explicit. A client
    that asks for header transport gets it only while it has no cookie token, so a browser
    cannot be switched over."""
    if bearer is not None:
        return bearer, True, user_agent, gpc
    token = read_cookie(cookie_header, cookie_name) if cookie_header else None
    return token, wants_header and token is None, user_agent, gpc


def scan_header_list(
    headers: Iterable[tuple[bytes, bytes]], cookie_name: str, allow_bearer: bool
) -> tuple[str | None, bool, str | None, bool]:
    """The token in an ASGI header list, as a plain tuple (token, bearer, user agent, GPC
    signal): what
    the ASGI middleware calls on every request, without building a RequestToken.

    Several Cookie headers (HTTP/2 splits them) are joined; only the headers that matter
    are decoded, in one pass over the list.
    """
    cookie: str | None = None
    bearer: str | None = None
    wants_header = False
    user_agent: str | None = None
    gpc = False
    for name, value in headers:
        if name == b"cookie":
            text = value.decode("latin-1")
            cookie = text if cookie is None else f"{cookie}; {text}"
        elif name == b"user-agent":
            user_agent = value.decode("latin-1")
        elif name == b"authorization" and allow_bearer:
            found = bearer_credentials(value.decode("latin-1"))
            if found is not None:
                bearer = found
        elif name == _TRANSPORT_BYTES and allow_bearer:
            wants_header = wants_bearer(value.decode("latin-1"))
        elif name == b"sec-gpc":
            gpc = value.strip() == b"1"
    return _choose(cookie, bearer, wants_header, user_agent, cookie_name, gpc)


def read_header_list(
    headers: Iterable[tuple[bytes, bytes]], cookie_name: str, allow_bearer: bool
) -> RequestToken:
    """``scan_header_list`` as a RequestToken (``coatcheck.asgi.read_request``)."""
    return RequestToken(*scan_header_list(headers, cookie_name, allow_bearer))


def scan_environ(
    environ: Mapping[str, Any], cookie_name: str, allow_bearer: bool
) -> tuple[str | None, bool, str | None, bool]:
    """The token in a WSGI environ (the server has already joined repeated headers), as a
    plain tuple (token, bearer, user agent, GPC signal)."""
    bearer: str | None = None
    wants_header = False
    if allow_bearer:
        authorization = environ.get("HTTP_AUTHORIZATION")
        if authorization:
            bearer = bearer_credentials(authorization)
        transport = environ.get("HTTP_X_SESSION_TRANSPORT")
        if transport:
            wants_header = wants_bearer(transport)
    return _choose(
        environ.get("HTTP_COOKIE") or None,
        bearer,
        wants_header,
        environ.get("HTTP_USER_AGENT"),
        cookie_name,
        gpc_signal(environ.get("HTTP_SEC_GPC")),
    )
