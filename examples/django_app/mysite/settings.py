"""Settings of the example: Django's auth, with sessions kept by coatcheck.

Everything session-related is in the block marked "coatcheck"; the rest is the least a
Django project with django.contrib.auth needs.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",  # only for `manage.py clearsessions` (and migrating from db)
    "mysite",
]

MIDDLEWARE = [
    "coatcheck.django.StoreUnavailableMiddleware",  # first: a failing store gives a 503
    "django.middleware.security.SecurityMiddleware",
    "coatcheck.django.SessionMiddleware",  # Django's, plus the device for "your sessions"
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

USE_TZ = True
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

# -- coatcheck ---------------------------------------------------------------------------
SESSION_ENGINE = "coatcheck.django"
COATCHECK_STORE = os.environ.get("COATCHECK_STORE", f"sqlite:///{BASE_DIR / 'sessions.db'}")
COATCHECK_CONFIG = {"idle_timeout": 30 * 60, "absolute_timeout": 12 * 60 * 60}
# Moving an existing site over? Sessions of the old engine move in at their next request:
# COATCHECK_MIGRATE_FROM = "django.contrib.sessions.backends.db"

# The cookie is Django's: give it coatcheck's secure defaults. Browsers accept Secure and
# __Host- cookies from http://localhost and http://127.0.0.1, so this works in development.
SESSION_COOKIE_NAME = "__Host-session"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_EXPIRE_AT_BROWSER_CLOSE = True  # the server's idle and absolute deadlines rule
