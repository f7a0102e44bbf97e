"""Django 5.2's ``SessionTestsMixin`` on every server-side coatcheck store (memory, SQLite,
Redis, PostgreSQL, Memcached), and Django's ``SessionMiddlewareTests`` under Django's and
under coatcheck's ``SessionMiddleware``.

The cookie store is not among them: a session carried in the cookie has nothing on the
server to delete or rename, which Django's mixin asserts (Django overrides those tests for
its own ``signed_cookies`` backend); tests/test_django.py runs it behind Django.

The classes here only bind a backend and a store; every test body is Django's, unchanged.
The session classes are ``SimpleTestCase``: Django refuses any query to its database in
them, which proves coatcheck never reads Django's ``Session`` table.
"""

from __future__ import annotations

from django.test import SimpleTestCase

from coatcheck.integrations.django import SessionMiddleware as CoatcheckSessionMiddleware
from coatcheck.integrations.django import SessionStore
from tests.django_contract import harness

django_tests = harness.load()
"""``sessions_tests.tests``; its classes are reached through it, never imported by name,
so that pytest collects only the classes below (it collects any TestCase in scope)."""


class MemorySessionTests(harness.StoreBound, django_tests.SessionTestsMixin, SimpleTestCase):
    backend = SessionStore
    store = "memory"


class SQLiteSessionTests(harness.StoreBound, django_tests.SessionTestsMixin, SimpleTestCase):
    backend = SessionStore
    store = "sqlite"


class RedisSessionTests(harness.StoreBound, django_tests.SessionTestsMixin, SimpleTestCase):
    backend = SessionStore
    store = "redis"


class PostgresSessionTests(harness.StoreBound, django_tests.SessionTestsMixin, SimpleTestCase):
    backend = SessionStore
    store = "postgres"


class MemcachedSessionTests(harness.StoreBound, django_tests.SessionTestsMixin, SimpleTestCase):
    backend = SessionStore
    store = "memcached"


class DjangoMiddlewareTests(harness.StoreBound, django_tests.SessionMiddlewareTests):
    """Django's ``SessionMiddleware`` with ``SESSION_ENGINE = "coatcheck.django"``."""

    store = "memory"


class CoatcheckMiddlewareTests(harness.StoreBound, django_tests.SessionMiddlewareTests):
    """The same tests with ``coatcheck.django.SessionMiddleware`` in its place (Django's
    tests build the middleware from their module's ``SessionMiddleware`` global)."""

    store = "memory"

    def setUp(self) -> None:
        self.addCleanup(
            harness.patched(django_tests, "SessionMiddleware", CoatcheckSessionMiddleware)
        )
        super().setUp()


CLASSES = (
    MemorySessionTests,
    SQLiteSessionTests,
    RedisSessionTests,
    PostgresSessionTests,
    MemcachedSessionTests,
    DjangoMiddlewareTests,
    CoatcheckMiddlewareTests,
)
harness.check_tables(django_tests, {cls.__name__: cls for cls in CLASSES})
