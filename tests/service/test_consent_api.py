"""Consent through the session service (a real ``coatcheck serve`` over a SQLite file):
``POST /v1/sessions/consent``, the consent inside the ``session`` view, the GPC flag of
``client``, the ledger beside the sessions, and ``/.well-known/gpc.json``."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.service.conftest import Running

NONE_YET = {
    "categories": {"necessary": True, "functional": False, "analytics": False, "marketing": False},
    "revision": 1,
    "at": None,
    "method": None,
    "gpc": False,
    "needs_prompt": True,
}


@pytest.fixture
def api(running: Running) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {running.admin_key}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=10) as client:
        yield client


def created(api: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = api.post("/v1/sessions", json={"data": {"n": 1}, **body})
    assert answer.status_code == 201, answer.text
    return answer.json()


def ledger_rows(running: Running, handle: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(running.db) as conn:
        query = (
            "SELECT method, granted, denied, withdrawn FROM coatcheck_consent_ledger "
            "WHERE handle = ? ORDER BY id"
        )
        return conn.execute(query, (handle,)).fetchall()


def test_the_view_shows_no_choice_then_the_choice(running: Running, api: httpx.Client) -> None:
    made = created(api)
    assert made["session"]["consent"] == NONE_YET
    answer = api.post(
        "/v1/sessions/consent",
        json={
            "token": made["token"],
            "grant": ["analytics"],
            "deny": ["marketing"],
            "method": "custom",
        },
    )
    assert answer.status_code == 200, answer.text
    consent = answer.json()["session"]["consent"]
    assert consent["categories"] == {
        "necessary": True,
        "functional": False,
        "analytics": True,
        "marketing": False,
    }
    assert (consent["method"], consent["gpc"], consent["needs_prompt"]) == ("custom", False, False)
    assert consent["at"] == pytest.approx(made["session"]["created_at"], abs=60)
    withdrawn = api.post(
        "/v1/sessions/consent",
        json={"token": made["token"], "deny": ["analytics"], "method": "api"},
    ).json()["session"]["consent"]
    assert withdrawn["categories"]["analytics"] is False
    introspected = api.post("/v1/sessions/introspect", json={"token": made["token"]}).json()
    assert introspected["session"]["consent"] == withdrawn
    assert ledger_rows(running, made["session"]["handle"]) == [
        ("custom", '["analytics"]', '["marketing"]', "[]"),
        ("api", "[]", '["analytics"]', '["analytics"]'),
    ]


def test_accept_all_after_the_clients_gpc_keeps_the_refusal(
    running: Running, api: httpx.Client
) -> None:
    made = created(api, client={"user_agent": "Mozilla/5.0 (X11; Linux x86_64)", "gpc": True})
    assert made["session"]["consent"]["method"] == "gpc"
    answer = api.post(
        "/v1/sessions/consent", json={"token": made["token"], "method": "accept_all"}
    ).json()
    categories = answer["session"]["consent"]["categories"]
    assert (categories["functional"], categories["analytics"], categories["marketing"]) == (
        True,
        False,
        False,
    )
    assert [row[0] for row in ledger_rows(running, made["session"]["handle"])] == [
        "gpc",
        "accept_all",
    ]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"grant": ["analytic"], "method": "custom"}, "unknown consent category 'analytic'"),
        ({"deny": ["necessary"], "method": "custom"}, "cannot be refused"),
        ({"grant": ["analytics"], "deny": ["analytics"], "method": "custom"}, "both granted"),
        ({"grant": ["analytics"], "method": "gpc"}, "grants nothing"),
    ],
)
def test_bad_choices_are_problems_and_change_nothing(
    api: httpx.Client, body: dict[str, Any], detail: str
) -> None:
    made = created(api)
    answer = api.post("/v1/sessions/consent", json={"token": made["token"], **body})
    assert answer.status_code == 422, answer.text
    assert detail in answer.json()["detail"]
    again = api.post("/v1/sessions/introspect", json={"token": made["token"]}).json()
    assert again["session"]["consent"] == NONE_YET


def test_an_unknown_token_is_not_found(api: httpx.Client) -> None:
    answer = api.post("/v1/sessions/consent", json={"token": "x" * 43, "method": "reject_all"})
    assert answer.status_code == 404


def test_gpc_json_is_served(running: Running) -> None:
    answer = httpx.get(f"{running.url}/.well-known/gpc.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"gpc": True, "lastUpdate": "2026-12-07"}
