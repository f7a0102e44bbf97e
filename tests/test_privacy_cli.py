"""``coatcheck privacy export`` and ``erase``, and the retention part of ``coatcheck
purge``, against real SQLite files and a real Redis: one JSON document, an erasure that
needs ``--yes`` and a tombstone secret, one-line errors, purge's first line unchanged."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from coatcheck.cli import build_cli
from coatcheck.core.client import ClientInfo
from coatcheck.core.config import SessionConfig
from coatcheck.engine.manager import SessionManager
from coatcheck.privacy.database import database_from_url
from coatcheck.privacy.registry import Deployment
from coatcheck.privacy.settings import DAY, PrivacySettings
from coatcheck.service.holders import default_registry
from coatcheck.stores import from_url
from tests.support.clock import FakeClock
from tests.support.privacy import SECRET
from tests.support.redis_servers import delete_prefix, shared_redis_url, unique_prefix
from tests.support.user_agents import FIREFOX_LINUX, SAFARI_IPHONE

ENV = {"COATCHECK_TOMBSTONE_SECRET": SECRET}


@pytest.fixture
def cli() -> click.Group:
    return build_cli()


def run(cli: click.Group, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env={**ENV, **(env or {})})


def sign_in(
    store_url: str,
    user: str,
    agents: list[str],
    *,
    at: float,
    privacy_db: str | None = None,
    grant: tuple[str, ...] = (),
) -> list[str]:
    """Sign ``user`` in once per agent at time ``at``, through a manager that feeds the
    deployment's activity log and consent ledger, as the service's does; with ``grant``,
    each login grants those consent categories (one ledger row each)."""
    store = from_url(store_url)
    database = database_from_url(privacy_db or store_url)
    clock = FakeClock(at)
    config = SessionConfig()
    registry = default_registry(
        Deployment(store, config, clock, database, PrivacySettings(tombstone_secret=SECRET))
    )
    manager = SessionManager(store, config, clock, events=registry.sinks)
    for holder in registry.holders:  # the consent ledger: its sink and its recall
        attach = getattr(holder, "attach", None)
        if callable(attach):
            attach(manager)
    tokens = []
    try:
        for agent in agents:
            session = manager.load_sync(None, ClientInfo.from_raw(agent, "203.0.113.77"))
            session["note"] = f"{user}-note"
            if grant:
                session.consent.grant(*grant)
            session.login(user)
            token = manager.commit_sync(session).token
            assert token is not None
            tokens.append(token)
        for holder in registry.holders:
            getattr(holder, "flush", lambda: None)()
    finally:
        database.close()
        store.close_sync()
    return tokens


def live_user(store_url: str, token: str) -> str | None:
    store = from_url(store_url)
    try:
        return SessionManager(store).load_sync(token, None).user_id
    finally:
        store.close_sync()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sessions.db'}"


def days_around_now() -> set[str]:
    now = datetime.now(UTC)
    return {(now + timedelta(days=d)).strftime("%Y-%m-%d") for d in (-1, 0)}


def test_export_prints_one_json_document_of_the_user_alone(
    cli: click.Group, store_url: str
) -> None:
    sign_in(store_url, "alice", [FIREFOX_LINUX, SAFARI_IPHONE], at=time.time())
    sign_in(store_url, "bob", ["Bob/3"], at=time.time())
    result = run(cli, "privacy", "export", "--user", "alice", "--store", store_url)
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    sessions = document["holders"]["sessions"]["sessions"]
    # Kept reduced (minimisation; a bare manager, so the standard library's coarse form).
    assert sorted(s["user_agent"] for s in sessions) == [
        "Firefox / Linux / desktop",
        "Safari / iOS / mobile",
    ]
    assert [s["data"] for s in sessions] == [{"note": "alice-note"}] * 2
    events = document["holders"]["activity"]["events"]
    assert [e["event"] for e in events] == ["session.login", "session.login"]
    assert "bob" not in result.output


def test_erase_needs_yes_then_leaves_a_tombstone_and_dead_tokens(
    cli: click.Group, store_url: str
) -> None:
    tokens = sign_in(
        store_url, "alice", [FIREFOX_LINUX, SAFARI_IPHONE], at=time.time(), grant=("analytics",)
    )
    refused = run(cli, "privacy", "erase", "--user", "alice", "--store", store_url)
    assert refused.exit_code == 2
    assert "add --yes to confirm" in refused.output
    assert live_user(store_url, tokens[0]) == "alice"  # nothing was touched
    kept = json.loads(run(cli, "privacy", "export", "--user", "alice", "--store", store_url).output)
    assert [r["granted"] for r in kept["holders"]["consent"]["rows"]] == [["analytics"]] * 2

    result = run(cli, "privacy", "erase", "--user", "alice", "--yes", "--store", store_url)
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    day = line.rsplit("tombstone of ", 1)[1].removesuffix(" kept.")
    assert day in days_around_now()
    assert (
        line == f"Erased user alice (activity 2, consent 2, sessions 2); tombstone of {day} kept."
    )
    assert [live_user(store_url, t) for t in tokens] == [None, None]
    document = json.loads(
        run(cli, "privacy", "export", "--user", "alice", "--store", store_url).output
    )
    assert document["erased"] == {"on": day}
    assert document["holders"] == {
        "activity": {"events": []},
        "consent": {"rows": []},
        "sessions": {"sessions": []},
    }


def test_erase_without_a_tombstone_secret_is_one_line_and_deletes_nothing(
    cli: click.Group, store_url: str
) -> None:
    tokens = sign_in(store_url, "alice", [FIREFOX_LINUX], at=time.time())
    result = run(
        cli,
        "privacy",
        "erase",
        "--user",
        "alice",
        "--yes",
        "--store",
        store_url,
        env={"COATCHECK_TOMBSTONE_SECRET": ""},
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "set COATCHECK_TOMBSTONE_SECRET" in lines[0]
    assert live_user(store_url, tokens[0]) == "alice"


@pytest.fixture
def redis_url() -> Iterator[str]:
    url, prefix = shared_redis_url(), unique_prefix()
    yield f"{url}?prefix={prefix}"
    delete_prefix(url, prefix)


def test_a_redis_deployment_names_its_privacy_database(
    cli: click.Group, redis_url: str, tmp_path: Path
) -> None:
    privacy_db = f"sqlite:///{tmp_path / 'privacy.db'}"
    tokens = sign_in(
        redis_url,
        "alice",
        [FIREFOX_LINUX],
        at=time.time(),
        privacy_db=privacy_db,
        grant=("marketing",),
    )
    alone = run(cli, "privacy", "erase", "--user", "alice", "--yes", "--store", redis_url)
    assert alone.exit_code == 1
    assert "set COATCHECK_PRIVACY_DB" in alone.output
    assert live_user(redis_url, tokens[0]) == "alice"

    env = {"COATCHECK_PRIVACY_DB": privacy_db}
    exported = run(cli, "privacy", "export", "--user", "alice", "--store", redis_url, env=env)
    document = json.loads(exported.output)
    assert [e["event"] for e in document["holders"]["activity"]["events"]] == ["session.login"]
    erased = run(cli, "privacy", "erase", "--user", "alice", "--yes", "--store", redis_url, env=env)
    assert erased.exit_code == 0, erased.output
    # The consent ledger of a Redis deployment lives in its privacy database too.
    assert "(activity 1, consent 1, sessions 1)" in erased.output
    assert live_user(redis_url, tokens[0]) is None


def test_purge_keeps_its_first_line_and_reports_rows_past_retention(
    cli: click.Group, store_url: str
) -> None:
    # Four logins 400 days ago (history: 30 days) and one now: four rows are past it. Each
    # old login granted analytics: four consent rows, within their 2192 days.
    sign_in(
        store_url,
        "alice",
        ["A/1", "A/2", "A/3", "A/4"],
        at=time.time() - 400 * DAY,
        grant=("analytics",),
    )
    sign_in(store_url, "alice", ["A/5"], at=time.time())
    result = run(cli, "purge", "--store", store_url)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Purged 4 expired sessions.",
        "Purged 4 rows of activity past its retention period.",
        "Purged 0 rows of consent past its retention period.",
    ]
    again = run(cli, "purge", "--store", store_url)
    assert again.output.splitlines()[1] == "Purged 0 rows of activity past its retention period."


def test_a_bad_retention_setting_is_one_line(cli: click.Group, store_url: str) -> None:
    result = run(
        cli, "purge", "--store", store_url, env={"COATCHECK_RETENTION_SECURITY_EVENTS": "soon"}
    )
    assert result.exit_code == 1
    assert (
        result.output.strip() == "Error: COATCHECK_RETENTION_SECURITY_EVENTS='soon' is not a number"
    )
