"""``login_client``: a test client logged in, whatever framework's client it is.

Each kind of test client (httpx and Starlette's ``TestClient``, Flask's, Django's) has an
adapter that recognises it, resolves the manager and the user id for it, and puts the
token (and a CSRF token) where that client sends them from. The adapters sit in a
registry, asked in turn, so supporting another client is registering an adapter, not
another branch here. An adapter recognises its client only if the client's library is
already imported (``instance_of``): nothing here imports a framework or an HTTP client.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, Protocol

from coatcheck.engine.manager import SessionManager
from coatcheck.testing.logins import login_async, login_sync

__all__ = [
    "ClientAdapter",
    "alogin_client",
    "instance_of",
    "login_client",
    "plain_user",
    "register_client",
]

Resolved = tuple[SessionManager, str | int, Mapping[str, Any] | None]
"""The manager, the user id and the session data of one login."""


class ClientAdapter(Protocol):
    """What ``login_client`` needs to know about one kind of test client."""

    def recognises(self, client: object) -> bool:
        """Is ``client`` of this kind?"""

    def resolve(
        self, client: Any, manager: SessionManager | None, user: Any, data: Mapping[str, Any] | None
    ) -> Resolved:
        """The manager (``manager``, or the one the client's app uses), the user id and
        the data to log in with."""

    def deliver(
        self,
        client: Any,
        manager: SessionManager,
        token: str,
        csrf_value: str | None,
        url: str | None,
        domain: str | None,
    ) -> None:
        """Put ``token`` (and ``csrf_value``, when the check is on) where ``client`` sends
        them from."""


_ADAPTERS: list[ClientAdapter] = []


def register_client(adapter: ClientAdapter) -> None:
    """Teach ``login_client`` another kind of test client. Asked before the built-in
    adapters, so an adapter for a subclass of a supported client takes precedence."""
    _ADAPTERS.insert(0, adapter)


def instance_of(client: object, module: str, *names: str) -> bool:
    """``isinstance`` against classes of ``module`` only if it is already imported: a client
    of a library nobody imported cannot be handed to us."""
    loaded = sys.modules.get(module)
    if loaded is None:
        return False
    classes = tuple(c for c in (getattr(loaded, n, None) for n in names) if isinstance(c, type))
    return bool(classes) and isinstance(client, classes)


def plain_user(
    manager: SessionManager | None, user: Any, data: Mapping[str, Any] | None
) -> Resolved:
    """The common case: the manager is given and the user is an id."""
    if manager is None:
        raise TypeError("pass the app's SessionManager")
    if not isinstance(user, (str, int)):
        raise TypeError(f"user must be a user id (str or int), got {type(user).__name__}")
    return manager, user, data


def _adapter(client: object) -> ClientAdapter:
    for adapter in _ADAPTERS:
        if adapter.recognises(client):
            return adapter
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
      the client's jar for its ``base_url`` (or ``url``), see ``coatcheck.testing`` about
      https; the CSRF token (when ``SessionConfig.csrf`` is on) into its default headers.
    - Flask's test client: ``manager`` may be None (the one ``init_app`` installed); the
      cookie is set for ``SERVER_NAME`` or ``localhost`` (or ``domain``), the CSRF token
      into ``client.environ_base``.
    - Django's ``Client`` / ``AsyncClient``: ``manager`` may be None
      (``coatcheck.django.get_manager()``); ``user`` is a user object or its primary key,
      and the session gets what ``django.contrib.auth.login`` writes, so ``request.user``
      is that user. The cookie is ``settings.SESSION_COOKIE_NAME``.
    """
    adapter = _adapter(client)
    manager, user_id, data = adapter.resolve(client, manager, user, data)
    token, csrf_value = login_sync(manager, user_id, data, remember)
    adapter.deliver(client, manager, token, csrf_value, url, domain)
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
    adapter = _adapter(client)
    manager, user_id, data = adapter.resolve(client, manager, user, data)
    token, csrf_value = await login_async(manager, user_id, data, remember)
    adapter.deliver(client, manager, token, csrf_value, url, domain)
    return token
