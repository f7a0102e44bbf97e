"""The session's CSRF secret through the API, for clients in other languages (the Express
middleware): ``csrf: true`` on create and update gives a session its secret, and the
session view then carries ``csrf_token``, masked as the Python edges mask theirs, so a token
from either side verifies on the other. Against a real ``coatcheck serve`` and the demo it
serves at ``/`` over the same store."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.service.conftest import Running

COOKIE = "__Host-session"


@pytest.fixture(scope="module")
def api(running: Running) -> Iterator[httpx.Client]:
    """A client with a ``sessions`` key: what a backend such as Express holds."""
    headers = {"authorization": f"Bearer {running.key('csrf-client', 'sessions')}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=10) as client:
        yield client


def secret_of(masked: str) -> bytes:
    """Undo the mask by hand: 86 base64url characters are 64 bytes, a one-time pad and
    the secret XORed with it."""
    assert re.fullmatch(r"[A-Za-z0-9_-]{86}", masked), masked
    raw = base64.urlsafe_b64decode(masked + "==")
    assert len(raw) == 64
    return bytes(a ^ b for a, b in zip(raw[:32], raw[32:], strict=True))


def post(api: httpx.Client, path: str, **body: Any) -> dict[str, Any]:
    answer = api.post(path, json=body)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def test_a_session_has_no_csrf_token_until_a_caller_asks(api: httpx.Client) -> None:
    plain = post(api, "/v1/sessions", data={"n": 1})
    assert "csrf_token" not in plain["session"]
    updated = post(api, "/v1/sessions/update", token=plain["token"], set={"n": 2})
    assert "csrf_token" not in updated["session"]
    asked = post(api, "/v1/sessions/update", token=plain["token"], csrf=True)
    assert asked["session"]["data"] == {"n": 2}
    assert len(secret_of(asked["session"]["csrf_token"])) == 32


def test_every_answer_masks_the_same_secret_afresh(api: httpx.Client) -> None:
    made = post(api, "/v1/sessions", csrf=True)  # an anonymous session, only a secret
    first = made["session"]["csrf_token"]
    seen = [first]
    for _ in range(3):
        view = post(api, "/v1/sessions/introspect", token=made["token"])["session"]
        seen.append(view["csrf_token"])
    again = post(api, "/v1/sessions/update", token=made["token"], csrf=True)["session"]
    seen.append(again["csrf_token"])  # asking again keeps the secret
    assert len(set(seen)) == len(seen)  # never the same text twice
    assert {secret_of(token) for token in seen} == {secret_of(first)}


def test_login_drops_the_secret_as_at_every_edge(api: httpx.Client) -> None:
    made = post(api, "/v1/sessions", csrf=True, data={"cart": ["hat"]})
    logged = post(api, "/v1/sessions/login", token=made["token"], user_id="csrf-olga")
    assert "csrf_token" not in logged["session"]  # tokens from before the login are dead
    fresh = post(api, "/v1/sessions/update", token=logged["token"], csrf=True)["session"]
    assert secret_of(fresh["csrf_token"]) != secret_of(made["session"]["csrf_token"])


def test_csrf_takes_only_true_or_false(api: httpx.Client) -> None:
    made = post(api, "/v1/sessions")
    for bad in ("yes", 1, None):
        answer = api.post("/v1/sessions/update", json={"token": made["token"], "csrf": bad})
        assert answer.status_code == 422, answer.text
        answer = api.post("/v1/sessions", json={"csrf": bad})
        assert answer.status_code == 422, answer.text


def test_a_token_from_the_api_verifies_at_the_python_demo_and_back(
    running: Running, api: httpx.Client
) -> None:
    made = post(api, "/v1/sessions", csrf=True)
    token, masked = made["token"], made["session"]["csrf_token"]
    with httpx.Client(base_url=running.url, timeout=10) as browser:
        cookie = {"cookie": f"{COOKIE}={token}"}
        form = {"content-type": "application/x-www-form-urlencoded", **cookie}
        refused = browser.post("/cart/add", content="item=coat", headers=form)
        assert refused.status_code == 403  # the demo checks: no token, no write
        accepted = browser.post("/cart/add", content=f"item=coat&csrf_token={masked}", headers=form)
        assert accepted.status_code == 303, accepted.text
        page = browser.get("/", headers=cookie).text
    rendered = re.findall(r'name="csrf_token" value="([A-Za-z0-9_-]{86})"', page)
    assert rendered  # the demo's own forms carry tokens of the same secret
    assert {secret_of(t) for t in rendered} == {secret_of(masked)}
    view = post(api, "/v1/sessions/introspect", token=token, touch=False)["session"]
    assert view["data"]["cart"] == ["coat"]
