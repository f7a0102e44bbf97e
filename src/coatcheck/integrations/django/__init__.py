"""Django integration: ``SESSION_ENGINE = "coatcheck.django"``.

A Django session backend (Django's ``SessionBase`` contract, sync and the async methods of
Django 5) over any coatcheck store, adding what Django's backends lack: only the SHA-256
of each session key is stored, sessions end after an idle and an absolute timeout enforced
on the server, and a user's sessions can be listed and revoked. Settings::

    SESSION_ENGINE = "coatcheck.django"
    COATCHECK_STORE = "sqlite:////var/lib/app/sessions.db"    # or the COATCHECK_STORE env
    COATCHECK_CONFIG = {"idle_timeout": 1800, "absolute_timeout": 43200}  # SessionConfig

    MIDDLEWARE = [
        "coatcheck.django.StoreUnavailableMiddleware",   # first: 503 / 429 / 403, never 500
        "django.middleware.security.SecurityMiddleware",
        "coatcheck.django.SessionMiddleware",  # Django's, plus device info, no-store,
                                               # Clear-Site-Data at logout, rotation-safe
        ...
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        ...
    ]

    # The cookie is Django's; these give it coatcheck's secure defaults.
    SESSION_COOKIE_NAME = "__Host-session"
    SESSION_COOKIE_SECURE = True
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_EXPIRE_AT_BROWSER_CLOSE = True  # the server's deadlines decide the rest

``django.contrib.auth`` works unchanged: ``login()`` issues a new token (the old one stops
working at once) and keeps the anonymous data, ``logout()`` deletes the record, and
``update_session_auth_hash()`` keeps the current session valid under a new token; call
``revoke_other_sessions(request)`` after it to end the user's other sessions now.
``urlpatterns += browser_urls()`` serves ``coatcheck.js`` and its keep-alive (the browser
side: CSRF header, idle warning, tabs in step). ``manage.py clearsessions`` purges expired
records (add ``django.contrib.sessions`` to ``INSTALLED_APPS`` for the command).

Moving from another engine: set ``COATCHECK_MIGRATE_FROM =
"django.contrib.sessions.backends.db"`` (any Django engine path). A cookie that is not a
coatcheck token is read once with that engine; its data (logged-in user included) becomes
a coatcheck session at that request, the client gets the new token, and the old session is
deleted once the new one is saved. Remove the setting when the old sessions have expired.

CSRF: coatcheck's own CSRF check (``coatcheck.security.csrf``, on in the ASGI, WSGI and Flask
edges) is not applied here. Django has its own, and it must stay on: keep
``django.middleware.csrf.CsrfViewMiddleware`` in ``MIDDLEWARE`` and ``{% csrf_token %}`` in
forms. With ``CSRF_USE_SESSIONS = True`` its secret lives in this session backend (and
Django rotates it at ``login()``), which is what coatcheck does on the other edges.

Values must be JSON (as with Django's default serializer). Expiry: the cookie is Django's
(``SESSION_COOKIE_AGE``, ``SESSION_EXPIRE_AT_BROWSER_CLOSE``, ``set_expiry()``); on the
server a session ends at the earliest of coatcheck's idle and absolute deadlines and
Django's expiry (``set_expiry()``'s value, else ``SESSION_COOKIE_AGE``, from the last
write), so Django's expiry only shortens it, and ``set_expiry()`` to a time gone by ends it.
"""

from __future__ import annotations

from coatcheck.integrations.django.browser import browser_urls, gpc_urls
from coatcheck.integrations.django.conf import configure, get_manager, manager_from_settings
from coatcheck.integrations.django.locking import locked_session
from coatcheck.integrations.django.middleware import (
    SessionMiddleware,
    StoreUnavailableMiddleware,
    unavailable_response,
)
from coatcheck.integrations.django.store import AUTH_USER_KEY, SessionStore
from coatcheck.integrations.django.users import (
    arevoke_other_sessions,
    revoke_other_sessions,
    user_sessions,
)

__all__ = [
    "AUTH_USER_KEY",
    "SessionMiddleware",
    "SessionStore",
    "StoreUnavailableMiddleware",
    "arevoke_other_sessions",
    "browser_urls",
    "configure",
    "get_manager",
    "gpc_urls",
    "locked_session",
    "manager_from_settings",
    "revoke_other_sessions",
    "unavailable_response",
    "user_sessions",
]
