"""``GET /v1/users/{user_id}/export`` and ``DELETE /v1/users/{user_id}`` on a real
``coatcheck serve`` over SQLite: admin only, the user's data and nobody else's, and after
the erasure an empty export with its tombstone, the user's tokens dead; the periodic
retention task of the app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from coatcheck.core.client import ClientInfo
from coatcheck.core.config import SessionConfig
from coatcheck.engine.manager import SessionManager
from coatcheck.privacy.database import database_from_url
from coatcheck.privacy.registry import Deployment
from coatcheck.privacy.settings import DAY, PrivacySettings
from coatcheck.service.app import create_app
from coatcheck.service.context import Service
from coatcheck.service.holders import default_registry
from coatcheck.service.metrics import Metrics
from coatcheck.service.settings import ServiceSettings
from coatcheck.stores.sqlite import SQLiteStore
from tests.service.conftest import Running
from tests.support.clock import FakeClock

PROBLEM = "application/problem+json"


@pytest.fixture
def api(running: Running) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {running.admin_key}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=10) as client:
        yield client


def create(api: httpx.Client, **body: Any) -> str:
    answer = api.post("/v1/sessions", json=body)
    assert answer.status_code == 201, answer.text
    token = answer.json()["token"]
    assert isinstance(token, str)
    return token


def active(api: httpx.Client, token: str) -> bool:
    answer = api.post("/v1/sessions/introspect", json={"token": token, "touch": False})
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["active"])


def test_export_and_erase_need_the_admin_scope(running: Running) -> None:
    sessions_key = running.key("rights-sessions", "sessions")
    for method, path in (("GET", "/v1/users/quinn/export"), ("DELETE", "/v1/users/quinn")):
        bare = httpx.request(method, f"{running.url}{path}")
        assert bare.status_code == 401
        weak = httpx.request(
            method, f"{running.url}{path}", headers={"authorization": f"Bearer {sessions_key}"}
        )
        assert weak.status_code == 403
        assert weak.headers["content-type"] == PROBLEM
        assert weak.json()["type"] == "urn:coatcheck:problem:missing-scope"


def grant(api: httpx.Client, token: str, *categories: str) -> None:
    answer = api.post(
        "/v1/sessions/consent", json={"token": token, "grant": list(categories), "method": "api"}
    )
    assert answer.status_code == 200, answer.text


def test_export_then_erase_over_http(api: httpx.Client) -> None:
    mine = [create(api, user_id="rights-ada", data={"note": "ada-note"}) for _ in range(2)]
    theirs = create(api, user_id="rights-grace", data={"note": "grace-note"})
    grant(api, mine[0], "analytics")  # one ledger row for Ada
    grant(api, theirs, "marketing")  # and one for Grace

    exported = api.get("/v1/users/rights-ada/export")
    assert exported.status_code == 200, exported.text
    document = exported.json()
    assert document["user_id"] == "rights-ada" and document["erased"] is None
    sessions = document["holders"]["sessions"]["sessions"]
    assert [s["data"] for s in sessions] == [{"note": "ada-note"}] * 2
    events = document["holders"]["activity"]["events"]
    assert [e["event"] for e in events] == ["session.login"] * 2
    rows = document["holders"]["consent"]["rows"]
    assert [(r["user_id"], r["method"], r["granted"]) for r in rows] == [
        ("rights-ada", "api", ["analytics"])
    ]
    assert "grace" not in exported.text and "marketing" not in exported.text

    erased = api.delete("/v1/users/rights-ada")
    assert erased.status_code == 200, erased.text
    body = erased.json()
    now = datetime.now(UTC)
    assert body["erased_on"] in {(now - timedelta(days=d)).strftime("%Y-%m-%d") for d in (0, 1)}
    assert body == {
        "user_id": "rights-ada",
        "erased_on": body["erased_on"],
        "removed": {"activity": 2, "consent": 1, "page_views": 0, "sessions": 2},
    }
    assert [active(api, t) for t in mine] == [False, False]
    assert active(api, theirs)
    after = api.get("/v1/users/rights-ada/export").json()
    assert after["erased"] == {"on": body["erased_on"]}
    assert after["holders"] == {
        "activity": {"events": []},
        "consent": {"rows": []},
        "page_views": {"rows": []},
        "sessions": {"sessions": []},
    }
    grace = api.get("/v1/users/rights-grace/export").json()
    assert [r["granted"] for r in grace["holders"]["consent"]["rows"]] == [["marketing"]]


def test_user_ids_follow_the_rules_of_the_other_user_calls(api: httpx.Client) -> None:
    astral = "\U0001f600"
    assert api.get(f"/v1/users/{astral * 128}/export").status_code == 200
    for method in ("GET", "DELETE"):
        path = f"/v1/users/{astral * 129}" + ("/export" if method == "GET" else "")
        refused = api.request(method, path)
        assert refused.status_code == 422
        assert refused.headers["content-type"] == PROBLEM


def test_an_erasure_without_a_tombstone_secret_is_a_503_problem(fresh: Any, tmp_path: Path) -> None:
    service: Running = fresh(COATCHECK_TOMBSTONE_SECRET="")
    headers = {"authorization": f"Bearer {service.admin_key}"}
    with httpx.Client(base_url=service.url, headers=headers, timeout=10) as api:
        token = create(api, user_id="rights-kept")
        refused = api.delete("/v1/users/rights-kept")
        assert refused.status_code == 503
        assert refused.json()["type"] == "urn:coatcheck:problem:privacy-unavailable"
        assert "COATCHECK_TOMBSTONE_SECRET" in refused.json()["detail"]
        assert active(api, token)


def test_the_app_runs_retention_at_start_and_every_interval(tmp_path: Path) -> None:
    """In-process, over a SQLite file: a login 40 days old is in the history until the
    app's retention task, started by its lifespan, deletes it."""
    db = tmp_path / "service.db"
    store = SQLiteStore(db)
    database = database_from_url(f"sqlite:///{db}")
    clock = FakeClock(time.time())
    config = SessionConfig()
    settings = PrivacySettings(tombstone_secret="s" * 16, retention_interval=3600)
    registry = default_registry(Deployment(store, config, clock, database, settings))
    manager = SessionManager(store, config, clock, events=registry.sinks)
    old = manager.load_sync(None, ClientInfo.from_raw("Old/1", "203.0.113.1"))
    old.login("rights-old")
    manager.commit_sync(old)
    clock.advance(40 * DAY)  # past the 30 days of the login history
    metrics = Metrics()
    service = Service.build(manager, ServiceSettings(), metrics, privacy=registry)
    app = create_app(manager, service)
    with TestClient(app, base_url="https://testserver"):
        task = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # waiting for the first run, not timing it
            task = service_app_retention(app)
            if task is not None and task.runs >= 1:
                break
            time.sleep(0.05)
        assert task is not None and task.runs >= 1
    activity = next(h for h in registry.holders if h.name == "activity")
    assert activity.events_of("rights-old") == []  # type: ignore[attr-defined]
    database.close()


def service_app_retention(app: Any) -> Any:
    """The retention task of the FastAPI app under the service's ASGI layers."""
    inner = app
    while not hasattr(inner, "state"):
        inner = inner.app
    return inner.state.coatcheck_retention


async def test_a_retention_interval_of_zero_runs_no_task(tmp_path: Path) -> None:
    from coatcheck.service.retention import RetentionTask

    store = SQLiteStore(tmp_path / "none.db")
    settings = PrivacySettings(retention_interval=0)
    deployment = Deployment(store, SessionConfig(), FakeClock(), None, settings)
    registry = default_registry(deployment)
    task = RetentionTask(SessionManager(store), registry)
    task.start()
    assert task._task is None
    await task.stop()
    store.close_sync()
