"""Shared test configuration.

Under CI=true a skipped test fails the run: a service-backed test that could not reach its
server must never pass silently. Skips stay visible locally too (``-ra`` in pytest options).
"""

from __future__ import annotations

import os

import pytest

from tests.support.clock import FakeClock


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
        if skipped:
            print(f"\nCI=true: {skipped} test(s) were skipped; failing the run.")
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
