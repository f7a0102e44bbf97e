"""Helpers for the tests of apps that use coatcheck.

- ``FrozenClock``: a clock that moves only when the test says so. Hand it to the
  ``SessionManager`` (``SessionManager(store, clock=clock)``) and expire sessions with
  ``clock.advance(config.idle_timeout + 1)`` instead of sleeping.
- ``force_login(manager, user_id, data=...)``: a logged-in session created straight through
  the manager, as Django's ``Client.force_login`` does; returns its token (``aforce_login``
  for async tests).
- ``login_client(client, manager, user, data=...)``: the same, and the token put where the
  test client sends it from: an httpx ``Client`` / ``AsyncClient`` (Starlette's and
  FastAPI's ``TestClient`` are httpx clients), Flask's test client or Django's test
  ``Client`` / ``AsyncClient``. The client can then also POST: a CSRF token for the new
  session goes into its default headers, as a page would give one to its JavaScript.
- ``csrf_header(manager, token)``: that CSRF header, for tests that build requests
  themselves.

The session is a real one in the app's own store, with the real token rules (only the
SHA-256 of the token is stored, the login is timestamped, the user's index is updated),
so a test that uses these helpers tests the app, not a shortcut around it.

Nothing here imports a web framework or an HTTP client: each adapter recognises its client
only if that client's library is already imported, so ``import coatcheck.testing`` works
whatever the app is built with.

httpx and ``Secure`` cookies. coatcheck's default cookie is ``__Host-session``, which is
``Secure``, and httpx, like a browser, never sends a Secure cookie over plain http. Starlette's
``TestClient`` talks to ``http://testserver`` by default, so create it with
``TestClient(app, base_url="https://testserver")``: then the cookie set here, and every
cookie the app sets later (a new token at login, a cleared one at logout), travel as they
would in production (its ``websocket_connect`` joins relative paths to ``ws://``: pass
``"wss://testserver/path"``). ``login_client`` refuses an http base URL for a Secure
cookie rather than leave the client silently logged out. Flask's and Django's test clients
ignore ``Secure``, so they need nothing.

A login through the app itself (``session.login``) drops the session's CSRF secret, as it
must; a test that logs in again that way fetches a new token from the app.
"""

from __future__ import annotations

import http.cookiejar
import sys
import time
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from coatcheck.core.config import SessionConfig
from coatcheck.core.session import Session
from coatcheck.engine.manager import CommitResult, SessionManager
from coatcheck.security import csrf

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

__all__ = [
    "FrozenClock",
    "aforce_login",
    "alogin_client",
    "csrf_header",
    "force_login",
    "login_client",
]


class FrozenClock:
    """A clock (a callable returning epoch seconds) that stands still until moved.

    It starts at the real current time unless told otherwise: stores that also expire keys
    by wall-clock deadlines (Redis, Memcached) then keep the test's sessions for as long as
    the test runs, while coatcheck's own checks follow this clock.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (not backward: ``set`` says that explicitly).
        Returns the new time."""
        if seconds < 0:
            raise ValueError(f"advance() moves forward only; got {seconds!r} (use set())")
        self.now += seconds
        return self.now

    def set(self, t: float) -> None:
        """Jump to the epoch time ``t`` (backward too: clock-skew tests)."""
        self.now = float(t)

    def __repr__(self) -> str:
        return f"FrozenClock({self.now!r})"


# -- sessions created through the manager -----------------------------------------------------


def _prepare(
    manager: SessionManager,
    session: Session,
    user_id: str | int,
    data: Mapping[str, Any] | None,
    remember: bool,
) -> str | None:
    """State the login; returns a CSRF token for the session when the check is on."""
    session.login(user_id, remember=remember)
    if data:
        session.update(data)
    if not manager.config.csrf:
        return None
    # The CSRF secret is created now (login drops any earlier one) and stored with the
    # login, so the token masked here verifies once the commit is done.
    return session.csrf_token()


def _token(result: CommitResult) -> str:
    if result.token is None:  # a login always issues one; anything else is a bug upstream
        raise RuntimeError("the login committed without issuing a token")
    return result.token


def _login_sync(
    manager: SessionManager, user_id: str | int, data: Mapping[str, Any] | None, remember: bool
) -> tuple[str, str | None]:
    session = manager.load_sync(None)
    csrf_value = _prepare(manager, session, user_id, data, remember)
    return _token(manager.commit_sync(session)), csrf_value


async def _login_async(
    manager: SessionManager, user_id: str | int, data: Mapping[str, Any] | None, remember: bool
) -> tuple[str, str | None]:
    session = await manager.load(None)
    csrf_value = _prepare(manager, session, user_id, data, remember)
    return _token(await manager.commit(session)), csrf_value


def force_login(
    manager: SessionManager,
    user_id: str | int,
    *,
    data: Mapping[str, Any] | None = None,
    remember: bool = False,
) -> str:
    """Create a session logged in as ``user_id`` holding ``data``; return its token.

    Sent as the session cookie (or ``Authorization: Bearer``), the token makes any client
    that user, without a login form. ``remember`` gives a remember-me login. A cookie
    client's unsafe requests (POST, ...) also need a CSRF token: ``csrf_header``.
    """
    return _login_sync(manager, user_id, data, remember)[0]


async def aforce_login(
    manager: SessionManager,
    user_id: str | int,
    *,
    data: Mapping[str, Any] | None = None,
    remember: bool = False,
) -> str:
    """``force_login`` through the manager's async path (async stores, async tests)."""
    return (await _login_async(manager, user_id, data, remember))[0]


def csrf_header(manager: SessionManager, token: str) -> dict[str, str]:
    """``{"X-CSRF-Token": ...}`` (the name is ``SessionConfig.csrf_header``) for the
    session ``token`` names, as a page would hand it to its JavaScript: with it, a cookie
    client's POST, PUT, PATCH and DELETE pass coatcheck's CSRF check. It stays valid until
    the session logs in again or ends.

    Sessions made by ``force_login`` already hold their CSRF secret, so this writes
    nothing; for any other session the secret is created and stored now.
    """
    session = manager.load_sync(token)
    if session.is_new:
        raise ValueError("no live session has this token")
    had_secret = csrf.SECRET_KEY in session.meta
    value = session.csrf_token()
    if not had_secret:
        result = manager.commit_sync(session)
        if result.token is not None:  # a client-side store re-sealed the session
            raise ValueError(
                "this session had no CSRF secret and its cookie had to change to store "
                "one: log in with force_login, whose sessions hold one from the start"
            )
    return {manager.config.csrf_header: value}


# -- test clients -----------------------------------------------------------------------------


def _instance_of(client: object, module: str, *names: str) -> bool:
    """``isinstance`` against classes of ``module`` only if it is already imported: a client
    of a library nobody imported cannot be handed to us."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return False
    classes = tuple(c for c in (getattr(loaded, n, None) for n in names) if isinstance(c, type))
    return bool(classes) and isinstance(client, classes)


def _is_django(client: object) -> bool:
    return _instance_of(client, "django.test.client", "ClientMixin")


def _is_flask(client: object) -> bool:
    return _instance_of(client, "werkzeug.test", "Client")


def _is_httpx(client: object) -> bool:
    # Starlette's TestClient is built on httpx2 when that is installed, else on httpx.
    return any(_instance_of(client, m, "Client", "AsyncClient") for m in ("httpx", "httpx2"))


def _django_login(user: Any, data: Mapping[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The user id and the session data ``django.contrib.auth.login`` would have written,
    so that ``request.user`` is this user (Django checks the backend and the auth hash)."""
    from django.conf import settings
    from django.contrib.auth import (
        BACKEND_SESSION_KEY,
        HASH_SESSION_KEY,
        SESSION_KEY,
        get_user_model,
        load_backend,
    )

    if not hasattr(user, "get_session_auth_hash"):
        user = get_user_model()._default_manager.get(pk=user)
    account: AbstractBaseUser = user
    backend: str | None = getattr(account, "backend", None)
    if backend is None:
        backend = next(
            path
            for path in settings.AUTHENTICATION_BACKENDS
            if hasattr(load_backend(path), "get_user")
        )
    pk = account._meta.pk
    assert pk is not None
    uid = pk.value_to_string(account)
    auth = {
        SESSION_KEY: uid,
        BACKEND_SESSION_KEY: backend,
        HASH_SESSION_KEY: account.get_session_auth_hash(),
    }
    return uid, {**auth, **(data or {})}


def _resolve(
    client: object, manager: SessionManager | None, user: Any, data: Mapping[str, Any] | None
) -> tuple[SessionManager, str | int, Mapping[str, Any] | None]:
    """The manager, the user id and the data for this kind of client."""
    if _is_django(client):
        if manager is None:
            from coatcheck.integrations.django import get_manager

            manager = get_manager()
        uid, data = _django_login(user, data)
        return manager, uid, data
    if manager is None and _is_flask(client):
        from coatcheck.integrations.flask import EXTENSION_KEY

        app: Any = getattr(client, "application", None)
        interface = app.extensions.get(EXTENSION_KEY) if app is not None else None
        if interface is None:
            raise ValueError("this Flask app has no coatcheck session: call init_app() first")
        manager = interface.manager
    if manager is None:
        raise TypeError("pass the app's SessionManager")
    if not isinstance(user, (str, int)):
        raise TypeError(f"user must be a user id (str or int), got {type(user).__name__}")
    return manager, user, data


def _effective_host(request: urllib.request.Request) -> str:
    """The domain http.cookiejar files a host-only cookie under (``testserver`` becomes
    ``testserver.local``): its own rule, which it does not export as typed API."""
    host: str = getattr(http.cookiejar, "eff_request_host")(request)[1]  # noqa: B009
    return host


def _set_httpx_cookie(client: Any, config: SessionConfig, token: str, url: str | None) -> None:
    base = url if url is not None else str(client.base_url)
    request = urllib.request.Request(base or "http://invalid/")  # noqa: S310 (parsed only)
    if not base or not request.host:
        raise ValueError("the client has no base_url: pass url= (the app's origin)")
    if config.secure and request.type != "https":
        raise ValueError(
            f"the session cookie {config.cookie_name!r} is Secure and httpx never sends a "
            f"Secure cookie to {base!r}: use an https base URL, e.g. "
            "TestClient(app, base_url='https://testserver')"
        )
    # File the cookie under the very (domain, path, name) the jar uses for the app's own
    # Set-Cookie, so a later rotation or logout replaces it instead of sitting beside it.
    if config.domain:
        domain, specified = "." + config.domain.lstrip("."), True
    else:
        domain, specified = _effective_host(request), False
    cookie = http.cookiejar.Cookie(
        version=0,
        name=config.cookie_name,
        value=token,
        port=None,
        port_specified=False,
        domain=domain,
        domain_specified=specified,
        domain_initial_dot=domain.startswith("."),
        path=config.path,
        path_specified=True,
        secure=config.secure,
        expires=None,
        discard=True,
        comment=None,
        comment_url=None,
        rest={"HttpOnly": ""} if config.http_only else {},
    )
    client.cookies.jar.set_cookie(cookie)


def _set_flask_cookie(client: Any, config: SessionConfig, token: str, domain: str | None) -> None:
    if domain is None:
        # The host Flask's test client sends requests to: SERVER_NAME, else "localhost".
        app: Any = getattr(client, "application", None)
        server_name = app.config.get("SERVER_NAME") if app is not None else None
        domain = str(server_name).partition(":")[0] if server_name else "localhost"
    client.set_cookie(config.cookie_name, token, domain=domain, path=config.path)


def _set_django_cookie(client: Any, token: str) -> None:
    from django.conf import settings

    name = settings.SESSION_COOKIE_NAME
    client.cookies[name] = token
    client.cookies[name].update(  # what Django's own force_login sets
        {
            "max-age": None,
            "path": "/",
            "domain": settings.SESSION_COOKIE_DOMAIN,
            "secure": settings.SESSION_COOKIE_SECURE or None,
            "expires": None,
        }
    )


def _deliver(
    client: Any,
    manager: SessionManager,
    token: str,
    csrf_value: str | None,
    url: str | None,
    domain: str | None,
) -> None:
    config = manager.config
    if _is_django(client):
        # coatcheck.django leaves CSRF to Django's middleware (which Django's test client
        # skips unless enforce_csrf_checks=True): only the cookie is needed.
        _set_django_cookie(client, token)
    elif _is_flask(client):
        _set_flask_cookie(client, config, token, domain)
        if csrf_value is not None:
            environ_key = "HTTP_" + config.csrf_header.upper().replace("-", "_")
            client.environ_base[environ_key] = csrf_value
    elif _is_httpx(client):
        _set_httpx_cookie(client, config, token, url)
        if csrf_value is not None:
            client.headers[config.csrf_header] = csrf_value
    else:
        raise TypeError(
            f"unsupported test client {type(client).__name__}: expected an httpx Client or "
            "AsyncClient (Starlette's TestClient), Flask's test client or Django's Client"
        )


def login_client(
    client: Any,
    manager: SessionManager | None,
    user: Any,
    *,
    data: Mapping[str, Any] | None = None,
    remember: bool = False,
    url: str | None = None,
    domain: str | None = None,
) -> str:
    """Log ``client`` in as ``user`` with ``data`` in its session; returns the token.

    - httpx ``Client`` / ``AsyncClient`` / Starlette ``TestClient``: the cookie goes into
      the client's jar for its ``base_url`` (or ``url``), see the module docstring about
      https; the CSRF token (when ``SessionConfig.csrf`` is on) into its default headers.
    - Flask's test client: ``manager`` may be None (the one ``init_app`` installed); the
      cookie is set for ``SERVER_NAME`` or ``localhost`` (or ``domain``), the CSRF token
      into ``client.environ_base``.
    - Django's ``Client`` / ``AsyncClient``: ``manager`` may be None
      (``coatcheck.django.get_manager()``); ``user`` is a user object or its primary key,
      and the session gets what ``django.contrib.auth.login`` writes, so ``request.user``
      is that user. The cookie is ``settings.SESSION_COOKIE_NAME``.
    """
    manager, user_id, data = _resolve(client, manager, user, data)
    token, csrf_value = _login_sync(manager, user_id, data, remember)
    _deliver(client, manager, token, csrf_value, url, domain)
    return token


async def alogin_client(
    client: Any,
    manager: SessionManager | None,
    user: Any,
    *,
    data: Mapping[str, Any] | None = None,
    remember: bool = False,
    url: str | None = None,
    domain: str | None = None,
) -> str:
    """``login_client`` with the session created through the manager's async path.

    For a Django client given a primary key, the user is still loaded synchronously (the
    ORM's sync API): pass the user object from async tests.
    """
    manager, user_id, data = _resolve(client, manager, user, data)
    token, csrf_value = await _login_async(manager, user_id, data, remember)
    _deliver(client, manager, token, csrf_value, url, domain)
    return token
