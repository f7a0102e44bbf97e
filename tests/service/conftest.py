"""Fixtures of the service tests: one ``coatcheck serve`` over a SQLite file per module,
its first admin key, and keys of other scopes made with ``coatcheck api-keys create``."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.service.server import ServiceProcess, coatcheck


@dataclass
class Running:
    server: ServiceProcess
    admin_key: str
    db: Path

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def store_url(self) -> str:
        return self.server.store_url

    def key(self, name: str, *scopes: str) -> str:
        args = [a for s in scopes for a in ("--scope", s)]
        return coatcheck("api-keys", "create", name, *args, "--store", self.store_url).strip()

    def session_rows(self) -> list[tuple[object, ...]]:
        """Every session row of the store, reserved records (API keys, JWT ring) aside:
        what "nothing was written" compares."""
        with sqlite3.connect(self.db) as conn:
            return conn.execute(
                "SELECT * FROM coatcheck_sessions WHERE handle NOT LIKE 'coatcheck:%' ORDER BY key"
            ).fetchall()


def start_running(directory: Path, env: dict[str, str] | None = None) -> Running:
    db = directory / "sessions.db"
    server = ServiceProcess(directory, f"sqlite:///{db}", env=env).start()
    key = server.printed_key()
    assert key is not None, server.output()
    return Running(server, key, db)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One service for the module: tests keep apart by using users of their own."""
    service = start_running(tmp_path_factory.mktemp("service"))
    yield service
    service.server.stop()


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """A service of the test's own (for figures that count everything)."""
    started: list[Running] = []

    def start(**env: str) -> Running:
        service = start_running(tmp_path / f"service-{len(started)}", env)
        started.append(service)
        return service

    yield start
    for service in started:
        service.server.stop()
