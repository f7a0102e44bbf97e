"""Django's settings for the whole test run, configured once per process.

Django can be configured only once, and two suites use it: tests/test_django.py (a real
app over HTTP) and tests/django_contract/ (Django's own session tests). Both call
``setup()``; the first call configures, later ones only check that the apps they need are
installed. The settings here are the ones both share (Django's defaults otherwise, which
Django's own tests assume); each suite applies its own on top with ``override_settings``.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import django
from django.conf import settings

APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
]


def _database_dir() -> Path:
    """File databases: a server thread and the test thread must see the same one, and
    Django's test database (tests/django_contract/) must really close when it is torn
    down (Django never closes an in-memory SQLite connection, which would leave this
    thread on the test database and a server thread on the real one)."""
    directory = Path(tempfile.mkdtemp(prefix="coatcheck-django-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


def _settings(extra_apps: Sequence[str]) -> dict[str, Any]:
    directory = _database_dir()
    return {
        "DEBUG": False,
        "SECRET_KEY": "coatcheck-tests-only",
        "ALLOWED_HOSTS": ["127.0.0.1", "testserver"],
        "INSTALLED_APPS": [*APPS, *extra_apps],
        "DATABASES": {
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(directory / "django.db"),
                "TEST": {"NAME": str(directory / "test.db")},
            }
        },
        "PASSWORD_HASHERS": ["django.contrib.auth.hashers.MD5PasswordHasher"],
        "SESSION_ENGINE": "coatcheck.django",
        "USE_TZ": True,
    }


def setup(extra_apps: Sequence[str] = ()) -> None:
    """Configure Django (first call) and make sure ``extra_apps`` are installed."""
    if not settings.configured:
        settings.configure(**_settings(extra_apps))
        django.setup()
        return
    missing = [app for app in extra_apps if app not in settings.INSTALLED_APPS]
    if missing:
        raise RuntimeError(
            f"Django was configured without {missing}: call "
            f"tests.support.django_settings.setup({list(extra_apps)!r}) first"
        )
