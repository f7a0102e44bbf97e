"""The one SessionManager a Django process uses, built from settings on first use.

Django builds a ``SessionStore`` per request and hands it nothing but the cookie value,
so the store, the timeouts and the clock must come from somewhere process-wide: here.

- ``COATCHECK_STORE``: a store URL (``sqlite:////var/lib/app/sessions.db``,
  ``redis://...``); falls back to the ``COATCHECK_STORE`` environment variable.
- ``COATCHECK_CONFIG``: a dict of ``SessionConfig`` fields (``{"idle_timeout": 900}``),
  applied over ``SessionConfig.from_env()``, so ``COATCHECK_IDLE_TIMEOUT=...`` in the
  environment works too and settings win where both are given.
- ``COATCHECK_CLOCK``: optional dotted path to a callable returning epoch seconds (tests).

``configure(manager)`` installs a ready-made manager instead (tests, or apps that add event
sinks); ``configure()`` goes back to settings. Changing any ``COATCHECK_*`` setting with
Django's ``override_settings`` drops the cached manager, so tests see the new values.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from coatcheck.core.config import SessionConfig
from coatcheck.engine.manager import Clock, SessionManager
from coatcheck.errors import ConfigError
from coatcheck.privacy import minimise
from coatcheck.stores import from_url

STORE_SETTING = "COATCHECK_STORE"
CONFIG_SETTING = "COATCHECK_CONFIG"
CLOCK_SETTING = "COATCHECK_CLOCK"
MIGRATE_SETTING = "COATCHECK_MIGRATE_FROM"

_lock = threading.Lock()
_manager: SessionManager | None = None


def get_manager() -> SessionManager:
    """The process's SessionManager (built from settings on first call, then cached).

    Use it for what Django has no API for: ``get_manager().list_user_sessions_sync(uid)``
    and ``get_manager().revoke_user_sync(uid)``.
    """
    global _manager
    manager = _manager
    if manager is None:
        with _lock:
            if _manager is None:
                _manager = minimise.install(manager_from_settings())
            manager = _manager
    return manager


def configure(manager: SessionManager | None = None) -> None:
    """Use ``manager`` from now on; with no argument, rebuild from settings on next use."""
    global _manager
    with _lock:
        _manager = minimise.install(manager) if manager is not None else None


def manager_from_settings() -> SessionManager:
    """Build a SessionManager from Django settings, falling back to the environment."""
    url = _setting(STORE_SETTING) or os.environ.get(STORE_SETTING)
    if not url:
        raise ImproperlyConfigured(
            f"coatcheck: set {STORE_SETTING} (a store URL such as "
            f"'sqlite:////var/lib/app/sessions.db') in settings or in the environment"
        )
    overrides: dict[str, Any] = dict(_setting(CONFIG_SETTING) or {})
    try:
        config = SessionConfig.from_env(**overrides)
        store = from_url(str(url))
    except (ConfigError, TypeError, ValueError) as exc:
        raise ImproperlyConfigured(f"coatcheck: {exc}") from exc
    clock_path = _setting(CLOCK_SETTING)
    clock: Clock | None = import_string(clock_path) if clock_path else None
    return SessionManager(store, config, clock=clock)


def migrate_from() -> str | None:
    """The Django session engine whose sessions move into coatcheck on their next request
    (``COATCHECK_MIGRATE_FROM = "django.contrib.sessions.backends.db"``), or None."""
    value = _setting(MIGRATE_SETTING)
    return str(value) if value else None


def _setting(name: str) -> Any:
    return getattr(settings, name, None)


def _reset_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in (STORE_SETTING, CONFIG_SETTING, CLOCK_SETTING):
        configure(None)


setting_changed.connect(_reset_on_change, dispatch_uid="coatcheck.django.conf.reset")
