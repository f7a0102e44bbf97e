"""Cross-site request forgery: a secret per session, tokens masked afresh for every render,
and the ``Origin`` / ``Sec-Fetch-Site`` rules that refuse a cross-site request before any
token is looked at.

Why each piece is here:

- The session cookie is an ambient credential: the browser attaches it to a form another
  site submits. SameSite=Lax keeps it off most cross-site POSTs in current browsers, but
  not off same-site ones (a sibling subdomain), nor in every browser, so OWASP asks for a
  synchronizer token as well. Its secret lives in the session's engine metadata, apart
  from the app's data (no key of the app can collide with it or leak it), and is created
  only when a page first renders a token.
- A token is ``pad || (pad XOR secret)`` with a fresh random pad: every render differs, so
  a page that reflects attacker-chosen text next to the token under HTTP compression
  (BREACH) never repeats the secret for the attacker to recover byte by byte. Every token
  of the session verifies, so several open tabs keep working.
- The secret changes at login (``Session.login`` drops it): a token planted or seen before
  login is worthless after it.
- Browsers name where a request came from. ``Sec-Fetch-Site: cross-site`` and an
  ``Origin`` that is not the app's own (``null`` included) are refused outright: cheaper
  than the token, and a second layer should a token leak. A missing ``Origin`` is allowed
  (older browsers, non-browser clients); the token still decides.
- Comparisons take constant time, and a malformed value is refused by its length and
  alphabet before any decoding, so a megabyte of garbage costs nothing.

The request's own origin is its scheme and ``Host`` header. Behind a proxy that ends TLS,
the app must learn that the request was https (uvicorn ``--proxy-headers``, werkzeug's
``ProxyFix``), or every browser's ``Origin: https://...`` looks foreign; listing the public
origin in ``SessionConfig.trusted_origins`` also works.

This module is framework-free (standard library only). The edges (``coatcheck.http.csrf_check``,
``asgi``, ``wsgi``, ``flask``) find the method, headers and token of a request and ask it.
"""

from __future__ import annotations

import enum
import hmac
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from coatcheck.core.session import Session

from coatcheck.core.csrf_secret import (
    SECRET_BYTES,
    SECRET_KEY,
    TOKEN_LENGTH,
    csrf_token,
    mask,
    stored_secret,
    unmask,
)
from coatcheck.core.origins import normalize_origin

__all__ = [
    "SECRET_BYTES",
    "SECRET_KEY",
    "TOKEN_LENGTH",
    "csrf_token",
    "mask",
    "normalize_origin",
    "unmask",
]

REJECTED = "csrf.rejected"
"""Event emitted for every refused request, with ``reason`` (a ``Rejection`` value)."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
"""Methods that must not change state (RFC 9110), so never checked: a GET that changes
state is a bug of the app that no token can fix."""

_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_ORIGIN_RE = re.compile(r"[a-z][a-z0-9+.-]*://[^\s/?#,@]+")


class Rejection(enum.Enum):
    """Why a request was refused: the value goes into the ``csrf.rejected`` event, the
    message into the 403 body."""

    CROSS_SITE = "cross_site"
    ORIGIN_MISMATCH = "origin_mismatch"
    MISSING_TOKEN = "missing_token"  # noqa: S105 (a reason code)
    INVALID_TOKEN = "invalid_token"  # noqa: S105 (a reason code)
    BODY_TOO_LARGE = "body_too_large"

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Rejection.CROSS_SITE: "cross-site request",
    Rejection.ORIGIN_MISMATCH: "origin mismatch",
    Rejection.MISSING_TOKEN: "missing token",
    Rejection.INVALID_TOKEN: "invalid token",
    Rejection.BODY_TOO_LARGE: (
        "form body too large to search for the token field; send the token in a header"
    ),
}


def is_unsafe(method: str) -> bool:
    """Does ``method`` need a CSRF check? Anything but GET, HEAD, OPTIONS and TRACE."""
    return method.upper() not in SAFE_METHODS


# -- the secret and its tokens ------------------------------------------------------------
def check_token(session: Session, presented: str | None) -> bool:
    """Does ``presented`` carry this session's secret? Constant time in the secret."""
    if not presented:
        return False
    secret = stored_secret(session)
    candidate = unmask(presented)
    if secret is None or candidate is None:
        return False
    return hmac.compare_digest(candidate, secret)


# -- where a request came from --------------------------------------------------------------
def own_origin(scheme: str, host: str | None) -> str | None:
    """The origin a browser writes for pages of this site: the request's own scheme and
    ``Host``. None without a Host (then no ``Origin`` matches but a trusted one)."""
    if not host:
        return None
    return normalize_origin(f"{scheme}://{host}")


def trusted(origins: Iterable[str]) -> frozenset[str]:
    """The normalized form of configured trusted origins (invalid ones are refused by
    ``SessionConfig``)."""
    return frozenset(o for o in map(normalize_origin, origins) if o is not None)


def check_origin(
    *,
    sec_fetch_site: str | None,
    origin: str | None,
    own: str | None,
    trusted_origins: frozenset[str] = frozenset(),
) -> Rejection | None:
    """The header checks of an unsafe request, before any token.

    ``Sec-Fetch-Site: cross-site`` is refused unless the ``Origin`` is a trusted one (a
    front-end on another site that the app names in ``trusted_origins``). An ``Origin``
    must be the request's own or a trusted one; ``Origin: null`` (sandboxed frames,
    cross-origin redirects) matches nothing. Without either header the token decides.
    """
    normalized = normalize_origin(origin) if origin is not None else None
    is_trusted = normalized is not None and normalized in trusted_origins
    cross_site = sec_fetch_site is not None and sec_fetch_site.strip().lower() == "cross-site"
    if cross_site and not is_trusted:
        return Rejection.CROSS_SITE
    if origin is not None and not is_trusted and (normalized is None or normalized != own):
        return Rejection.ORIGIN_MISMATCH
    return None
