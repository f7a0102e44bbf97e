"""What binds Django's session tests to coatcheck: the fetched module, the stores, and
the two tables of tests that are run but expected to fail.

Django's ``SessionTestsMixin`` takes its backend from a ``backend`` attribute; here that is
``coatcheck.django.SessionStore``, and the store behind it comes from settings
(``COATCHECK_STORE``), as in a real project. Each test class binds one store for its whole
run (``StoreBound``), with a fresh file, key prefix or table removed afterwards.

Every test of Django's suite is run. The ones listed below are marked strict xfail: they
must fail, and a pass fails the run, so neither table can keep an entry that no longer
applies. ``ACCEPTED`` lists the tests that contradict coatcheck by design (strict mode, or
reading Django's own ``Session`` model); ``KNOWN_BROKEN`` lists bugs in coatcheck's
Django backend that are still to be fixed: an entry leaves it once the fix lands (the
strict xfail makes the fix's run fail until it does).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
from django.test import override_settings

from tests.django_contract import sdist
from tests.support import django_settings

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# -- the tables: "test_name" (every class) or "ClassName.test_name" (that class only) --------
STRICT = "strict mode: a client-chosen key is never adopted"
MODEL = "reads Django's own Session model (coatcheck keeps sessions in its store)"

ACCEPTED: dict[str, str] = {
    "test_session_key_valid_string_saved": (
        f"{STRICT}: it sets _session_key = '12345678' and expects session_key to keep it; "
        "only tokens coatcheck minted are valid keys, so it reads as None"
    ),
    "test_empty_session_saved": (
        f"{MODEL}: it asserts through Session.objects.get(session_key=...), and coatcheck "
        "writes no row to django_session; what else it checks, tests/test_django.py::"
        "test_an_emptied_session_keeps_its_key_and_its_cookie checks through the store"
    ),
}
"""Failures by design: each is listed in README.md with its reason, word for word
(tests/test_django_docs.py compares the two)."""


KNOWN_BROKEN: dict[str, str] = {}
"""BUGS TO FIX, not accepted skips: coatcheck's Django backend breaks Django's contract
here. Remove an entry with the fix that makes its test pass."""


# -- loading Django's test module ------------------------------------------------------------
def load() -> ModuleType:
    """``sessions_tests.tests`` of the installed Django, fetched if need be, with Django
    configured for it. Under CI a failed fetch fails the run; locally it skips."""
    try:
        root = sdist.fetch()
    except sdist.FetchError as exc:
        if CI:
            raise
        pytest.skip(f"Django's session tests are unavailable: {exc}", allow_module_level=True)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    django_settings.setup([sdist.PACKAGE])
    module = importlib.import_module(f"{sdist.PACKAGE}.tests")
    assert Path(module.__file__ or "").resolve().is_relative_to(root), module.__file__
    return module


def check_tables(module: ModuleType, classes: dict[str, type]) -> None:
    """Every entry names a test Django's module has, in a class of ours: a renamed or
    removed test must not leave a stale line behind."""
    names = {n for n in dir(module.SessionTestsMixin) if n.startswith("test_")}
    names |= {n for n in dir(module.SessionMiddlewareTests) if n.startswith("test_")}
    for table in (ACCEPTED, KNOWN_BROKEN):
        for entry in table:
            owner, _, test = entry.rpartition(".")
            assert test in names, f"{entry!r}: Django's sessions_tests has no {test}"
            assert not owner or (owner in classes and hasattr(classes[owner], test)), (
                f"{entry!r}: no such test class here"
            )
    both = set(ACCEPTED) & set(KNOWN_BROKEN)
    assert not both, f"in both tables: {both}"


def expected_failure(cls: type, test: str) -> str | None:
    """The reason ``cls.test`` is expected to fail, or None when it must pass."""
    for table, label in ((ACCEPTED, "accepted"), (KNOWN_BROKEN, "KNOWN BROKEN (bug to fix)")):
        reason = table.get(f"{cls.__name__}.{test}", table.get(test))
        if reason is not None:
            return f"{label}: {reason}"
    return None


# -- the stores --------------------------------------------------------------------------------
@contextlib.contextmanager
def memory_url() -> Iterator[str]:
    yield "memory://"


@contextlib.contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="coatcheck-djsessions-") as directory:
        yield f"sqlite:///{Path(directory) / 'sessions.db'}"


@contextlib.contextmanager
def redis_url() -> Iterator[str]:
    from tests.support.redis_servers import delete_prefix, shared_redis_url, unique_prefix

    url, prefix = shared_redis_url(), unique_prefix()
    try:
        yield f"{url}?prefix={prefix}"
    finally:
        delete_prefix(url, prefix)


@contextlib.contextmanager
def postgres_url() -> Iterator[str]:
    from tests.support.postgres_server import scratch_table, store_url

    with scratch_table() as table:
        yield store_url(table)


@contextlib.contextmanager
def memcached_url() -> Iterator[str]:
    """A private memcached (started once per test process) under a fresh key prefix;
    nothing to remove afterwards: no other class reads that prefix, and items expire."""
    from tests.support.memcached_server import fresh_prefix, shared_memcached

    yield f"{shared_memcached().url}?prefix={fresh_prefix()}"


STORES: dict[str, Callable[[], contextlib.AbstractContextManager[str]]] = {
    "memory": memory_url,
    "sqlite": sqlite_url,
    "redis": redis_url,
    "postgres": postgres_url,
    "memcached": memcached_url,
}


def _close_store() -> None:
    from coatcheck.integrations.django import get_manager

    get_manager().store.close_sync()


class StoreBound:
    """Put first in a test class's bases: ``COATCHECK_STORE`` is a fresh ``store`` (a key
    of ``STORES``) for the class's whole run, closed and removed after it."""

    store: ClassVar[str]

    @classmethod
    def setUpClass(cls) -> None:
        stack = contextlib.ExitStack()
        cls.addClassCleanup(stack.close)  # type: ignore[attr-defined]
        url = stack.enter_context(STORES[cls.store]())
        stack.enter_context(override_settings(COATCHECK_STORE=url))
        stack.callback(_close_store)
        super().setUpClass()  # type: ignore[misc]


def patched(module: ModuleType, name: str, value: Any) -> Callable[[], None]:
    """Replace ``module.name`` (a global Django's tests read) until the returned undo."""
    original = getattr(module, name)
    setattr(module, name, value)
    return lambda: setattr(module, name, original)
