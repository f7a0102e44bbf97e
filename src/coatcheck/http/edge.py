"""What every edge (ASGI, WSGI, Flask, ...) decides the same way, with no framework in sight.

An edge does four things besides calling the manager: it finds the token a request
presents, it refuses forged cross-site requests (CSRF), it tells the client what a commit
changed, and it answers 503 when the store fails. The rules for those live here, once, as
plain functions over strings, so the async and the sync edges cannot drift apart; each
edge only converts its framework's header representation (ASGI byte pairs, a WSGI
environ, a werkzeug ``Headers``) to and from them.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from coatcheck.core.config import SessionConfig
from coatcheck.core.session import Session
from coatcheck.engine.manager import CommitResult, SessionManager
from coatcheck.errors import SessionLimitExceeded, StoreUnavailable, Throttled
from coatcheck.http.cookies import clear_cookie, read_cookie, set_cookie
from coatcheck.security import csrf

logger = logging.getLogger("coatcheck")

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


@dataclass(frozen=True, slots=True)
class Refusal:
    """A response an edge sends instead of the app's: the store failed (503), the client
    is throttled (429), a login is over the session limit (403)."""

    status: int
    phrase: str
    body: bytes
    headers: tuple[tuple[str, str], ...]

    @property
    def wsgi_status(self) -> str:
        return f"{self.status} {self.phrase}"


def _plain(status: int, phrase: str, text: str, *extra: tuple[str, str]) -> Refusal:
    body = text.encode()
    headers = (
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(body))),
        ("cache-control", "no-store"),
        *extra,
    )
    return Refusal(status, phrase, body, headers)


UNAVAILABLE = Refusal(503, "Service Unavailable", UNAVAILABLE_BODY, UNAVAILABLE_HEADERS)

REFUSED = (StoreUnavailable, Throttled, SessionLimitExceeded)
"""The engine errors an edge answers itself, with ``refusal(exc)``; anything else is the
app's to handle."""


def refused(exc: Exception, when: str) -> Refusal:
    """``refusal(exc)``, logged once for every edge: a store failure as a warning (an
    operator must look), a throttled or limited client as information."""
    if isinstance(exc, StoreUnavailable):
        logger.warning("session store unavailable on %s: %s", when, exc)
    else:
        logger.info("session request refused on %s: %s", when, exc)
    return refusal(exc)


def refusal(exc: Exception) -> Refusal:
    """The response for one of ``REFUSED``: short, plain, never cached, never a trace."""
    if isinstance(exc, Throttled):
        return _plain(
            429,
            "Too Many Requests",
            "Too many unknown session tokens from this address; slow down.\n",
            ("retry-after", str(exc.retry_after)),
        )
    if isinstance(exc, SessionLimitExceeded):
        return _plain(
            403,
            "Forbidden",
            "This account has too many active sessions; log out elsewhere first.\n",
        )
    return UNAVAILABLE


CLEAR_ALL = '"cache", "cookies", "storage"'
CLEAR_KEEP_COOKIES = '"cache", "storage"'
"""After a logout that leaves a new anonymous session (a flash message), clearing cookies
would drop the new cookie too."""

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


def _choose(
    cookie_header: str | None,
    bearer: str | None,
    wants_header: bool,
    user_agent: str | None,
    cookie_name: str,
) -> tuple[str | None, bool, str | None]:
    """(token, bearer, user agent). Bearer wins over the cookie: it is explicit. A client
    that asks for header transport gets it only while it has no cookie token, so a browser
    cannot be switched over."""
    if bearer is not None:
        return bearer, True, user_agent
    token = read_cookie(cookie_header, cookie_name) if cookie_header else None
    return token, wants_header and token is None, user_agent


_TRANSPORT_BYTES = TRANSPORT_HEADER.encode("latin-1")


def scan_header_list(
    headers: Iterable[tuple[bytes, bytes]], cookie_name: str, allow_bearer: bool
) -> tuple[str | None, bool, str | None]:
    """The token in an ASGI header list, as a plain tuple (token, bearer, user agent): what
    the ASGI middleware calls on every request, without building a RequestToken.

    Several Cookie headers (HTTP/2 splits them) are joined; only the headers that matter
    are decoded, in one pass over the list.
    """
    cookie: str | None = None
    bearer: str | None = None
    wants_header = False
    user_agent: str | None = None
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
    return _choose(cookie, bearer, wants_header, user_agent, cookie_name)


def read_header_list(
    headers: Iterable[tuple[bytes, bytes]], cookie_name: str, allow_bearer: bool
) -> RequestToken:
    """``scan_header_list`` as a RequestToken (``coatcheck.asgi.read_request``)."""
    return RequestToken(*scan_header_list(headers, cookie_name, allow_bearer))


def scan_environ(
    environ: Mapping[str, Any], cookie_name: str, allow_bearer: bool
) -> tuple[str | None, bool, str | None]:
    """The token in a WSGI environ (the server has already joined repeated headers), as a
    plain tuple (token, bearer, user agent)."""
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
        if result.ended and config.clear_site_data and not bearer:
            wipe = CLEAR_ALL if result.token is None else CLEAR_KEEP_COOKIES
            return SessionHeaders((header, ("clear-site-data", wipe)), force_no_store=True)
        return SessionHeaders((header,), force_no_store=True)
    if authenticated:
        return _NO_STORE_UNLESS_SET
    return None


_NO_STORE_UNLESS_SET = SessionHeaders((), force_no_store=False)


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


# -- CSRF ------------------------------------------------------------------------------------
# The decisions are ``coatcheck.security.csrf``'s; what every edge shares on top of them
# is here: which requests are checked, where their token is, and the 403 they get. An
# edge only gathers a
# CsrfRequest from its own header representation and, when the token may be in a form body,
# reads that body (and hands it on to the app unchanged).

FORBIDDEN_STATUS = 403

MAX_FORM_BODY = 1024 * 1024
"""Largest form body searched for the token field. A larger form (a file upload, say) must
send the token in the header; bounding the buffer keeps one request from holding an
unbounded body in memory before the app has even seen it."""

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def forbidden(rejection: csrf.Rejection) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """The body and headers of the 403 every edge sends for ``rejection``: short, plain,
    naming the reason so a developer sees at once what to fix, and never cached."""
    body = f"CSRF check failed: {rejection.message}\n".encode()
    headers = (
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", str(len(body))),
        ("cache-control", "no-store"),
    )
    return body, headers


@dataclass(frozen=True, slots=True)
class CsrfRequest:
    """What the CSRF check reads from an unsafe request, gathered by each edge."""

    origin: str | None
    sec_fetch_site: str | None
    host: str | None
    token: str | None
    """The token from the header (``SessionConfig.csrf_header``), if sent there."""
    content_type: str | None
    content_length: int | None


def content_length(value: str | None) -> int | None:
    """A Content-Length header's value, or None when absent or not a plain decimal
    (``str.isdigit`` alone also accepts digits like "²" that ``int`` refuses)."""
    if value is None:
        return None
    value = value.strip()
    return int(value) if value.isascii() and value.isdigit() else None


def _mime(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


_PARAM_RE = re.compile(r';\s*([^\s;=]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')


def _header_params(value: str) -> dict[str, str]:
    """The ``name=value`` parameters of a header such as Content-Type or
    Content-Disposition (quoted strings unescaped; the first of repeated names wins)."""
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(value):
        raw = match.group(2)
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(match.group(1).lower(), raw)
    return params


def form_field(content_type: str | None, body: bytes, name: str) -> str | None:
    """The value of the plain (non-file) form field ``name`` in a urlencoded or multipart
    body, or None. Tolerant of any bytes: a malformed body simply has no such field."""
    mime = _mime(content_type)
    if mime == "application/x-www-form-urlencoded":
        text = body.decode("latin-1")
        for key, value in urllib.parse.parse_qsl(text, keep_blank_values=True, encoding="latin-1"):
            if key == name:
                return value
        return None
    if mime != "multipart/form-data":
        return None
    boundary = _header_params(content_type or "").get("boundary")
    if not boundary:
        return None
    for part in body.split(b"--" + boundary.encode("latin-1"))[1:]:
        if part.startswith(b"--"):
            break  # the closing delimiter
        head, found, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not found:
            continue
        for line in head.split(b"\r\n"):
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() != "content-disposition":
                continue
            params = _header_params(value)
            if params.get("name") == name and "filename" not in params:
                return content.removesuffix(b"\r\n").decode("latin-1")
    return None


class CsrfGuard:
    """One edge's CSRF settings, resolved once: is a request checked, where is its
    token, does it pass. Built from the manager's ``SessionConfig`` plus the edge's
    exempt paths (webhooks and other endpoints that authenticate by other means), each
    with everything below it: ``"/webhooks"`` covers ``/webhooks/stripe``, not
    ``/webhooks-admin``.
    """

    __slots__ = (
        "_environ_key",
        "enabled",
        "exempt",
        "exempt_exact",
        "field",
        "header",
        "manager",
        "trusted",
    )

    def __init__(self, manager: SessionManager, exempt: Iterable[str] = ()) -> None:
        config = manager.config
        self.manager = manager
        self.enabled = config.csrf
        self.header = config.csrf_header.lower()
        self.field = config.csrf_field
        self.trusted = csrf.trusted(config.trusted_origins)
        # By path segment: "/webhooks" exempts "/webhooks" and "/webhooks/...", never
        # "/webhooks-admin" (a plain string prefix would).
        entries = tuple(exempt)
        self.exempt = tuple(p if p.endswith("/") else p + "/" for p in entries)
        self.exempt_exact = frozenset(p for p in entries if not p.endswith("/"))
        self._environ_key = "HTTP_" + config.csrf_header.upper().replace("-", "_")

    def applies(self, method: str, path: str, bearer: bool) -> bool:
        """Is this request checked? Only unsafe methods, and never a request that travels
        by header transport (``Authorization: Bearer``, or a client asking for it without
        any cookie): a browser does not attach those headers to a forged request, so there
        is no ambient credential to abuse. Exempt path prefixes are the app's explicit
        choice."""
        if method in csrf.SAFE_METHODS:  # most requests: decided by one set lookup
            return False
        return (
            self.enabled
            and not bearer
            and csrf.is_unsafe(method)
            and not (self.exempt and (path.startswith(self.exempt) or path in self.exempt_exact))
        )

    def read_header_list(self, headers: Iterable[tuple[bytes, bytes]]) -> CsrfRequest:
        """From an ASGI header list. Repeated headers are joined with ", " as HTTP says,
        so two ``Origin`` headers never pass as one origin."""
        wanted = {
            b"origin": "origin",
            b"sec-fetch-site": "sec_fetch_site",
            b"host": "host",
            self.header.encode("latin-1"): "token",
            b"content-type": "content_type",
            b"content-length": "content_length",
        }
        found: dict[str, str] = {}
        for name, value in headers:
            field_name = wanted.get(name)
            if field_name is not None:
                text = value.decode("latin-1")
                found[field_name] = f"{found[field_name]}, {text}" if field_name in found else text
        return CsrfRequest(
            origin=found.get("origin"),
            sec_fetch_site=found.get("sec_fetch_site"),
            host=found.get("host"),
            token=found.get("token"),
            content_type=found.get("content_type"),
            content_length=content_length(found.get("content_length")),
        )

    def read_environ(self, environ: Mapping[str, Any]) -> CsrfRequest:
        """From a WSGI environ (the server has joined repeated headers already)."""
        host = environ.get("HTTP_HOST")
        if not host and environ.get("SERVER_NAME"):
            host = f"{environ['SERVER_NAME']}:{environ.get('SERVER_PORT', '')}".rstrip(":")
        return CsrfRequest(
            origin=environ.get("HTTP_ORIGIN"),
            sec_fetch_site=environ.get("HTTP_SEC_FETCH_SITE"),
            host=host,
            token=environ.get(self._environ_key),
            content_type=environ.get("CONTENT_TYPE"),
            content_length=content_length(environ.get("CONTENT_LENGTH")),
        )

    def screen(self, scheme: str, request: CsrfRequest) -> csrf.Rejection | None:
        """The checks that need no token: ``Sec-Fetch-Site`` and ``Origin``."""
        return csrf.check_origin(
            sec_fetch_site=request.sec_fetch_site,
            origin=request.origin,
            own=csrf.own_origin(scheme, request.host),
            trusted_origins=self.trusted,
        )

    def wants_body(self, request: CsrfRequest) -> bool:
        """Must the edge read the body to find the token? Only for a form without a
        header token."""
        return request.token is None and _mime(request.content_type) in _FORM_TYPES

    def body_token(self, request: CsrfRequest, body: bytes) -> str | None:
        return form_field(request.content_type, body, self.field)

    def verify(self, session: Session, token: str | None) -> csrf.Rejection | None:
        if token is None or token == "":
            return csrf.Rejection.MISSING_TOKEN
        if not csrf.check_token(session, token):
            return csrf.Rejection.INVALID_TOKEN
        return None

    def rejected(
        self, session: Session, rejection: csrf.Rejection, method: str, path: str
    ) -> tuple[bytes, tuple[tuple[str, str], ...]]:
        """Emit ``csrf.rejected`` (naming the session by handle) and return the 403."""
        self.manager.emit(
            csrf.REJECTED,
            handle=session.handle,
            reason=rejection.value,
            method=method,
            path=path,
        )
        return forbidden(rejection)
