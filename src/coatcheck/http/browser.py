"""The two endpoints of the browser side, decided once for every edge: the ``coatcheck.js``
asset and the keep-alive that its "stay signed in" button calls.

Each framework's route (``coatcheck.starlette.browser_routes``, the Flask blueprint, the
Django URL patterns) only translates its request in and an ``Answer`` out, so the content
type, the validators and what a keep-alive may do are the same on every edge.

- The script is package data (``coatcheck/static/coatcheck.js``), read once. It is served
  ``no-cache`` with a strong ``ETag``: a browser revalidates on every page and gets a
  bodiless 304 until the package is upgraded, so a new version is never hidden behind a
  cache lifetime, and no shared cache keeps a copy it does not check.
- The keep-alive is passive-safe: it extends only a signed-in session that is stored and
  valid, and only on ``POST`` (which the CSRF check guards); it changes no data and no
  token and never starts a session. ``GET`` only reports: the edge's ``X-Session-Expires``
  header carries the deadline, and the request touches the session no more than any page
  view would. Anyone not signed in gets 401 ``{"error": "login_required"}``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from typing import Final

from coatcheck.core.session import Session
from coatcheck.security import reauth

__all__ = [
    "KEEP_ALIVE_PATH",
    "PREFIX",
    "SCRIPT_CONTENT_TYPE",
    "SCRIPT_PATH",
    "Answer",
    "etag_matches",
    "keep_alive",
    "script",
    "script_answer",
]

PREFIX: Final = "/coatcheck"
"""Where the routes go unless the app chooses another prefix."""
SCRIPT_NAME: Final = "coatcheck.js"
KEEP_ALIVE_NAME: Final = "keep-alive"
SCRIPT_PATH: Final = f"{PREFIX}/{SCRIPT_NAME}"
KEEP_ALIVE_PATH: Final = f"{PREFIX}/{KEEP_ALIVE_NAME}"
"""``coatcheck.js`` calls this path unless the page names another one
(``data-coatcheck-keep-alive``)."""

SCRIPT_CONTENT_TYPE: Final = "text/javascript; charset=utf-8"
"""RFC 9239's type for JavaScript; browsers run module scripts only with a JavaScript type."""

_PHRASES = {200: "OK", 204: "No Content", 304: "Not Modified", 401: "Unauthorized"}


@dataclass(frozen=True, slots=True)
class Answer:
    """A response in plain strings, which every edge converts to its own types."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]

    @property
    def wsgi_status(self) -> str:
        return f"{self.status} {_PHRASES[self.status]}"


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    etag: str


@functools.cache
def script() -> Asset:
    """``coatcheck.js`` as shipped in the package, with its strong ETag (a digest of the
    bytes, so two processes of one release agree and a release changes it)."""
    body = resources.files("coatcheck").joinpath("static", SCRIPT_NAME).read_bytes()
    digest = base64.urlsafe_b64encode(hashlib.sha256(body).digest()[:18]).decode("ascii")
    return Asset(body, f'"{digest}"')


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Does an ``If-None-Match`` header name ``etag``? Weak comparison (RFC 9110 13.1.2):
    ``W/`` prefixes are ignored, ``*`` matches, the header may list several."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def script_answer(if_none_match: str | None = None) -> Answer:
    """200 with the script, or 304 when the browser's copy is current."""
    asset = script()
    validators = (
        ("cache-control", "no-cache"),
        ("etag", asset.etag),
    )
    if etag_matches(if_none_match, asset.etag):
        return Answer(304, b"", validators)
    return Answer(
        200,
        asset.body,
        (
            ("content-type", SCRIPT_CONTENT_TYPE),
            ("content-length", str(len(asset.body))),
            ("x-content-type-options", "nosniff"),
            *validators,
        ),
    )


_LOGIN_REQUIRED = json.dumps({"error": reauth.LOGIN_REQUIRED}).encode()


def keep_alive(session: Session, method: str) -> Answer:
    """The keep-alive's answer for ``session``: 204 for a signed-in session (on ``POST``
    its idle deadline is extended at this commit), 401 for anyone else, who gains no
    session by asking. Never cached."""
    if session.user_id is None:
        headers = (
            ("content-type", "application/json"),
            ("content-length", str(len(_LOGIN_REQUIRED))),
            ("cache-control", "no-store"),
        )
        return Answer(401, _LOGIN_REQUIRED, headers)
    if method.upper() == "POST":
        session.keep_alive()
    return Answer(204, b"", (("cache-control", "no-store"),))
