"""Django's test environment for Django's test classes, and the strict xfail marks.

Django's own runner would call ``setup_test_environment()`` and create the test database
around the whole run; here that is one fixture for this package, so the rest of the suite
(tests/test_django.py among it) keeps Django's plain settings and its own database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.django_contract import harness

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="package", autouse=True)
def django_test_environment() -> Iterator[None]:
    from django.test.utils import (
        setup_databases,
        setup_test_environment,
        teardown_databases,
        teardown_test_environment,
    )

    setup_test_environment()
    try:
        databases = setup_databases(verbosity=0, interactive=False)
        try:
            yield
        finally:
            teardown_databases(databases, verbosity=0)
    finally:
        teardown_test_environment()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        cls = getattr(item, "cls", None)
        if cls is None or not item.path.is_relative_to(HERE):
            continue
        reason = harness.expected_failure(cls, item.name)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
