"""Who may see the dashboard: an admin API key exchanged for an admin session.

The key is presented once, in the sign-in form; the browser then holds a session of its
own, under its own cookie (``__Host-coatcheck-admin``, SameSite=Strict, never a bearer
token), in the service's store but through a manager of its own: shorter timeouts (15
minutes idle, 8 hours at most) and ``client_change_action="reauthenticate"``, so a session
that comes back from another network must present its key again. The shop's cookie and
the admin's never stand for each other.

A session is an admin's only while three things hold, checked on every request: its user
is ``coatcheck-admin:<key name>``, its engine metadata names the same key (set at sign-in;
no API call and no application can set engine metadata, so a shop user who chose that
user id gains nothing), and that key still exists with the ``admin`` scope (a revoked key
ends its sessions at their next request, within ``COATCHECK_API_KEY_CACHE`` seconds).

Destructive actions (revoking sessions) need a recent authentication: within
``REAUTH_AFTER`` of sign-in or of the last time the key was entered again
(``security.reauth.recent_auth_problem``; a session the engine flagged with
``needs_reauthentication`` has no recent authentication at all). Entering the key again
is ``session.reauthenticate()``: a new token and a new ``auth_at``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from coatcheck.core.config import MINUTE, SessionConfig
from coatcheck.core.events import EventSink
from coatcheck.core.session import Session
from coatcheck.engine.manager import SessionManager
from coatcheck.security.reauth import recent_auth_problem
from coatcheck.service.apikeys import ApiKey, KeyChecker

COOKIE: Final = "__Host-coatcheck-admin"
PLAIN_COOKIE: Final = "coatcheck-admin"
"""The cookie's name when the service runs with ``COATCHECK_SECURE=false`` (a ``__Host-``
cookie must be Secure); it is then limited to ``/admin``."""
USER_PREFIX: Final = "coatcheck-admin:"
KEY_META: Final = "admin_key"
IDLE: Final = 15 * MINUTE
ABSOLUTE: Final = 8 * 60 * MINUTE
REAUTH_AFTER: Final = 5 * MINUTE
"""Destructive actions within this long of the last authentication need no key again."""


def admin_config(base: SessionConfig) -> SessionConfig:
    """The admin session's settings, from the service's own (its Secure flag, proxies and
    trusted origins carry over; everything about lifetime and transport is the admin's)."""
    secure = base.secure
    return base.replace(
        cookie_name=COOKIE if secure else PLAIN_COOKIE,
        path="/" if secure else "/admin",
        domain=None,
        same_site="strict",
        allow_bearer=False,
        idle_timeout=IDLE,
        absolute_timeout=ABSOLUTE,
        remember_timeout=ABSOLUTE,
        touch_interval=None,
        rotation_interval=None,
        max_sessions_per_user=None,
        client_change_action="reauthenticate",
        clear_site_data=False,  # "cookies" would also drop the shop's session
        csrf=True,
    )


def admin_manager(manager: SessionManager, sinks: Iterable[EventSink] = ()) -> SessionManager:
    """A manager over the service's store for admin sessions alone (its events go to
    ``sinks``, not to the service's metrics and analytics: an admin's visit is not a
    visitor's)."""
    config = admin_config(manager.config)
    return SessionManager(manager.store, config, clock=manager.clock, events=sinks)


def sign_in(session: Session, key: ApiKey) -> None:
    """Make ``session`` the session of ``key`` (a new token: no fixation)."""
    session.login(USER_PREFIX + key.name)
    session.set_meta(KEY_META, key.name)


def key_name(session: Session) -> str | None:
    """The name of the key the session was signed in with, if it is an admin session."""
    user = session.user_id
    name = session.meta.get(KEY_META)
    if user is None or not isinstance(name, str) or user != USER_PREFIX + name:
        return None
    return name


async def admin_of(session: Session, keys: KeyChecker) -> ApiKey | None:
    """The admin key behind ``session``, or None (not signed in, a key revoked or no
    longer ``admin``; such a session is ended)."""
    name = key_name(session)
    if name is None:
        return None
    key = await keys.named(name)
    if key is None or not key.grants("admin"):
        session.logout()
        return None
    return key


def needs_key_again(session: Session, now: float) -> bool:
    """Must the key be entered again before a destructive action?"""
    return recent_auth_problem(session, REAUTH_AFTER, now) is not None
