"""Deployments for the privacy tests: a session store, the privacy database beside it, a
frozen clock, the default registry and a manager that feeds its activity log.

Backends: SQLite (one file holds sessions and the privacy tables), PostgreSQL (a scratch
table and the privacy tables under its prefix, all dropped afterwards) and Redis sessions
with their privacy tables in PostgreSQL (what a Redis deployment configures with
``COATCHECK_PRIVACY_DB``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from coatcheck.core.client import ClientInfo
from coatcheck.core.config import SessionConfig
from coatcheck.engine.manager import SessionManager
from coatcheck.privacy import minimise
from coatcheck.privacy.database import Database, database_from_url
from coatcheck.privacy.registry import Deployment, PrivacyRegistry
from coatcheck.privacy.settings import PrivacySettings
from coatcheck.service.holders import default_registry
from coatcheck.stores.base import AnyStore
from coatcheck.stores.postgres import from_url as postgres_from_url
from coatcheck.stores.sqlite import SQLiteStore
from tests.conformance.factories.redis import redis_store
from tests.support.clock import FakeClock
from tests.support.postgres_server import admin_connect, scratch_table, store_url

SECRET = "tombstone-secret-for-tests-0123456789"
BACKENDS = ("sqlite", "postgres", "redis")


@dataclass
class World:
    store: AnyStore
    database: Database
    clock: FakeClock
    registry: PrivacyRegistry
    manager: SessionManager
    path: Path | None = None
    """The SQLite file, when the backend is SQLite."""

    def log_in(
        self, user: str, agent: str, ip: str, *, grant: tuple[str, ...] = (), **data: object
    ) -> str:
        """A login from a fresh device; ``grant`` names consent categories the visitor
        grants in the same request (one ledger row, with the user's id)."""
        session = self.manager.load_sync(None, ClientInfo.from_raw(agent, ip))
        session.update(data)
        if grant:
            session.consent.grant(*grant)
        session.login(user)
        token = self.manager.commit_sync(session).token
        assert token is not None
        return token


def _world(store: AnyStore, database: Database, path: Path | None = None) -> World:
    clock = FakeClock()
    config = SessionConfig()
    settings = PrivacySettings(tombstone_secret=SECRET)
    registry = default_registry(Deployment(store, config, clock, database, settings))
    manager = SessionManager(store, config, clock, events=registry.sinks)
    for holder in registry.holders:  # as ``coatcheck serve`` does: the ledger's sink, recall
        attach = getattr(holder, "attach", None)
        if callable(attach):
            attach(manager)
    minimise.install(manager)  # user agents kept as the edges keep them
    return World(store, database, clock, registry, manager, path)


def _drop_privacy_tables(prefix: str) -> None:
    admin = admin_connect()
    try:
        for name in ("activity", "tombstones", "consent_ledger"):
            admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(prefix + name)))
        function = sql.Identifier(prefix + "consent_ledger_refuse_update")
        admin.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(function))
    finally:
        admin.close()


@contextlib.contextmanager
def postgres_database() -> Iterator[Database]:
    """A privacy database in the shared server under a scratch prefix, dropped afterwards."""
    with scratch_table() as table:
        database = database_from_url(store_url(table))
        try:
            yield database
        finally:
            database.close()
            _drop_privacy_tables(database.prefix)


@contextlib.contextmanager
def world(backend: str, tmp_path: Path) -> Iterator[World]:
    if backend == "sqlite":
        path = tmp_path / "app.db"
        store = SQLiteStore(path)
        database = database_from_url(f"sqlite:///{path}")
        try:
            yield _world(store, database, path)
        finally:
            database.close()
            store.close_sync()
    elif backend == "sqlite-apart":  # the privacy tables in a file of their own
        path = tmp_path / "app.db"
        store = SQLiteStore(path)
        database = database_from_url(f"sqlite:///{tmp_path / 'privacy.db'}")
        try:
            yield _world(store, database, path)
        finally:
            database.close()
            store.close_sync()
    elif backend == "postgres":
        with scratch_table() as table:
            url = store_url(table, pool_min=2, pool_max=2)
            pg = postgres_from_url(url)
            database = database_from_url(url)
            try:
                yield _world(pg, database)
            finally:
                database.close()
                pg.close_sync()
                _drop_privacy_tables(database.prefix)
    elif backend == "redis":
        with redis_store(tmp_path) as redis, postgres_database() as database:
            yield _world(redis, database)
    else:
        raise ValueError(backend)
