"""The CSRF check of an edge, sans I/O: the edge feeds it what the request says and
performs the one piece of I/O it may ask for, reading the body.

The decisions are ``coatcheck.security.csrf``'s. What every edge shares on top of them is
here, once, in the style of h11's ``NEED_DATA``:

1. ``applies(method, bearer)``: is this request checked at all? Only unsafe methods
   (``csrf.is_unsafe``), never a request by header transport. Decided without reading a
   header, so the common safe request costs one set lookup.
2. ``start(session, path, scheme, request)``, with the ``CsrfRequest`` the edge gathered
   from its own header representation (``read_header_list`` for ASGI, ``read_environ``
   for WSGI): a verdict (a ``csrf.Rejection``, or None to let the request through), or
   ``NeedBody`` when the token can only be a field of the form body.
3. ``with_body(session, pending, body)`` for an edge that read the body (at most
   ``pending.limit`` bytes; None when it was longer), or ``with_field(session, value)``
   for one whose framework already parsed the form: the verdict.

A rejection becomes a 403 with ``refuse``, which also emits ``csrf.rejected``. So the
ASGI, WSGI and Flask edges only translate their request in and the answer out; which
requests are checked, where their token is and what they are told exist here alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from coatcheck.core.session import Session
from coatcheck.engine.manager import SessionManager
from coatcheck.http.forms import MAX_FORM_BODY, content_length, form_field, is_form
from coatcheck.http.refusals import Refusal, plain
from coatcheck.security import csrf

__all__ = ["CsrfCheck", "CsrfRequest", "NeedBody", "Verdict", "forbidden"]

FORBIDDEN_STATUS: Final = 403

Verdict = csrf.Rejection | None
"""A rejection, or None: the request passes."""


@dataclass(frozen=True, slots=True)
class CsrfRequest:
    """What the check reads from an unsafe request, gathered by each edge."""

    origin: str | None
    sec_fetch_site: str | None
    host: str | None
    token: str | None
    """The token from the header (``SessionConfig.csrf_header``), if sent there."""
    content_type: str | None
    content_length: int | None


@dataclass(frozen=True, slots=True)
class NeedBody:
    """No verdict yet: the token can only be a field of the form body. The edge reads at
    most ``limit`` bytes of it (handing the app the same body afterwards; a body declared
    longer is not read at all) and asks ``CsrfCheck.with_body``, passing None for a body
    over the limit. A framework that parses forms itself, within its own limits, asks
    ``with_field`` instead."""

    request: CsrfRequest
    limit: int = MAX_FORM_BODY


def forbidden(rejection: csrf.Rejection) -> Refusal:
    """The 403 every edge sends for ``rejection``: short, plain, naming the reason so a
    developer sees at once what to fix, and never cached."""
    return plain(FORBIDDEN_STATUS, "Forbidden", f"CSRF check failed: {rejection.message}\n")


class CsrfCheck:
    """One edge's CSRF settings, resolved once from the manager's ``SessionConfig`` plus
    the edge's exempt paths (webhooks and other endpoints that authenticate by other
    means), each with everything below it: ``"/webhooks"`` covers ``/webhooks/stripe``,
    not ``/webhooks-admin``.
    """

    __slots__ = (
        "_environ_key",
        "_wanted",
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
        self._wanted = {
            b"origin": "origin",
            b"sec-fetch-site": "sec_fetch_site",
            b"host": "host",
            self.header.encode("latin-1"): "token",
            b"content-type": "content_type",
            b"content-length": "content_length",
        }

    # -- 1. is the request checked? --------------------------------------------------------
    def applies(self, method: str, bearer: bool = False) -> bool:
        """Only unsafe methods, and never a request that travels by header transport
        (``Authorization: Bearer``, or a client asking for it without any cookie): a
        browser does not attach those headers to a forged request, so there is no ambient
        credential to abuse. An edge that learns the transport only with the session asks
        first without it; ``start`` looks at the session's own transport again."""
        if method in csrf.SAFE_METHODS:  # most requests: decided by one set lookup
            return False
        return self.enabled and not bearer and csrf.is_unsafe(method)

    def is_exempt(self, path: str) -> bool:
        """Is ``path`` one of the edge's exempt paths (the app's explicit choice)?"""
        return bool(self.exempt) and (path.startswith(self.exempt) or path in self.exempt_exact)

    # -- the edge's headers, in ---------------------------------------------------------------
    def read_header_list(self, headers: Iterable[tuple[bytes, bytes]]) -> CsrfRequest:
        """From an ASGI header list. Repeated headers are joined with ", " as HTTP says,
        so two ``Origin`` headers never pass as one origin."""
        wanted = self._wanted
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

    # -- 2. the verdict, or the body it needs ------------------------------------------------
    def start(
        self, session: Session, path: str, scheme: str, request: CsrfRequest
    ) -> Verdict | NeedBody:
        """The verdict on a request ``applies`` checks: ``Sec-Fetch-Site`` and ``Origin``
        first, then the header token; ``NeedBody`` for a form sent without one (no header,
        or an empty one)."""
        if session.via_bearer or self.is_exempt(path):
            return None
        rejection = csrf.check_origin(
            sec_fetch_site=request.sec_fetch_site,
            origin=request.origin,
            own=csrf.own_origin(scheme, request.host),
            trusted_origins=self.trusted,
        )
        if rejection is not None:
            return rejection
        token = request.token.strip() if request.token else None
        if not token and is_form(request.content_type):
            # No header, or an empty one (a front end that always sends it): the form's
            # field decides. An empty header is never a token of its own.
            return NeedBody(request)
        return self._verify(session, token)

    # -- 3. the verdict, given the body --------------------------------------------------------
    def with_body(self, session: Session, pending: NeedBody, body: bytes | None) -> Verdict:
        """The verdict once the edge read the body (None: longer than ``pending.limit``)."""
        if body is None:
            return csrf.Rejection.BODY_TOO_LARGE
        return self._verify(session, form_field(pending.request.content_type, body, self.field))

    def with_field(self, session: Session, value: object) -> Verdict:
        """The verdict from the token field of a form the framework already parsed
        (within its own size limits)."""
        return self._verify(session, value if isinstance(value, str) else None)

    def _verify(self, session: Session, token: str | None) -> Verdict:
        if token is None or token == "":
            return csrf.Rejection.MISSING_TOKEN
        if not csrf.check_token(session, token):
            return csrf.Rejection.INVALID_TOKEN
        return None

    # -- the answer, out ---------------------------------------------------------------------
    def refuse(
        self, session: Session, rejection: csrf.Rejection, method: str, path: str
    ) -> Refusal:
        """Emit ``csrf.rejected`` (naming the session by handle) and return the 403."""
        self.manager.emit(
            csrf.REJECTED,
            handle=session.handle,
            reason=rejection.value,
            method=method,
            path=path,
        )
        return forbidden(rejection)

    def same_origin(self, scheme: str, origin: str | None, host: str | None) -> bool:
        """Is a WebSocket handshake's ``Origin`` absent (not a browser), the app's own or
        trusted? ``scheme`` is that of the page that opened it (``http``/``https``)."""
        if origin is None:
            return True
        rejection = csrf.check_origin(
            sec_fetch_site=None,
            origin=origin,
            own=csrf.own_origin(scheme, host),
            trusted_origins=self.trusted,
        )
        return rejection is None
