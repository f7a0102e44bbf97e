"""Django's test ``Client`` / ``AsyncClient``.

The manager may be left out (``coatcheck.django.get_manager()``). ``user`` is a user object
or its primary key, and the session gets what ``django.contrib.auth.login`` writes, so
``request.user`` is that user; the cookie is ``settings.SESSION_COOKIE_NAME``, set as
Django's own ``force_login`` sets it. No CSRF token: ``coatcheck.django`` leaves CSRF to
Django's middleware, which Django's test client skips unless
``enforce_csrf_checks=True``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from coatcheck.engine.manager import SessionManager
from coatcheck.testing.clients import Resolved, instance_of

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

__all__ = ["DjangoClient"]


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


class DjangoClient:
    """The adapter for ``django.test.Client`` and ``AsyncClient`` (both ``ClientMixin``)."""

    def recognises(self, client: object) -> bool:
        return instance_of(client, "django.test.client", "ClientMixin")

    def resolve(
        self, client: Any, manager: SessionManager | None, user: Any, data: Mapping[str, Any] | None
    ) -> Resolved:
        if manager is None:
            from coatcheck.integrations.django import get_manager

            manager = get_manager()
        uid, data = _django_login(user, data)
        return manager, uid, data

    def deliver(
        self,
        client: Any,
        manager: SessionManager,
        token: str,
        csrf_value: str | None,
        url: str | None,
        domain: str | None,
    ) -> None:
        _set_django_cookie(client, token)
