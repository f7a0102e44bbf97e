"""``/v1/forward-auth`` asked directly, as a gateway asks it: the forwarded request's
cookie or bearer token decides; who it is comes back in headers; a rotated token comes back
as a standard Set-Cookie; passive requests are checked but write nothing."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import httpx
import jwt
import pytest

from tests.service.conftest import Running, start_running

COOKIE = "__Host-session"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """Every active request writes (touch interval 0); /poll is passive; JWTs for orders."""
    env = {
        "COATCHECK_TOUCH_INTERVAL": "0",
        "COATCHECK_PASSIVE_PATHS": "/poll, /status/feed",
        "COATCHECK_FORWARD_AUTH_JWT": "orders",
    }
    service = start_running(tmp_path_factory.mktemp("gate"), env)
    yield service
    service.server.stop()


@pytest.fixture(scope="module")
def rotating(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A new token on every active request (rotation interval of a microsecond)."""
    env = {"COATCHECK_ROTATION_INTERVAL": "0.000001"}
    service = start_running(tmp_path_factory.mktemp("rotating"), env)
    yield service
    service.server.stop()


def session(service: Running, **body: Any) -> tuple[str, dict[str, Any]]:
    headers = {"authorization": f"Bearer {service.admin_key}"}
    made = httpx.post(f"{service.url}/v1/sessions", json=body, headers=headers).json()
    return made["token"], made["session"]


def ask(service: Running, path: str = "/v1/forward-auth", **headers: str) -> httpx.Response:
    return httpx.get(f"{service.url}{path}", headers=headers)


def last_seen(service: Running, token: str) -> float:
    key = hashlib.sha256(token.encode()).hexdigest()
    with sqlite3.connect(service.db) as conn:
        (value,) = conn.execute(
            "SELECT last_seen_at FROM coatcheck_sessions WHERE key = ?", (key,)
        ).fetchone()
    return float(value)


def test_no_session_anonymous_or_dead_is_401(gate: Running) -> None:
    anonymous, _ = session(gate, data={"cart": []})
    for headers in (
        {},
        {"cookie": f"{COOKIE}={'A' * 43}"},
        {"cookie": f"{COOKIE}={anonymous}"},
        {"authorization": "Bearer nonsense"},
        {"cookie": "other=1"},
    ):
        answer = ask(gate, **headers)
        assert answer.status_code == 401
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["type"] == "urn:coatcheck:problem:unauthenticated"
        assert "x-coatcheck-user" not in answer.headers


def test_a_signed_in_cookie_or_bearer_passes_with_who_it_is(gate: Running) -> None:
    token, view = session(gate, user_id="olga", level=2)
    for headers in ({"cookie": f"a=b; {COOKIE}={token}"}, {"authorization": f"Bearer {token}"}):
        answer = ask(gate, **headers)
        assert answer.status_code == 200
        assert answer.headers["x-coatcheck-user"] == "olga"
        assert answer.headers["x-coatcheck-session"] == view["handle"]
        assert answer.headers["x-coatcheck-level"] == "2"
        assert answer.headers["cache-control"] == "no-store"
        assert "set-cookie" not in answer.headers  # nothing rotated: the cookie stands


def test_the_jwt_it_adds_verifies_with_the_jwks(gate: Running) -> None:
    token, view = session(gate, user_id="pia")
    answer = ask(gate, cookie=f"{COOKIE}={token}")
    keys = httpx.get(f"{gate.url}/.well-known/jwks.json").json()
    header = jwt.get_unverified_header(answer.headers["x-coatcheck-jwt"])
    (jwk,) = [k for k in keys["keys"] if k["kid"] == header["kid"]]
    claims = jwt.decode(
        answer.headers["x-coatcheck-jwt"],
        jwt.PyJWK(jwk).key,
        algorithms=["EdDSA"],
        audience="orders",
    )
    assert (claims["sub"], claims["sid"], claims["lvl"], claims["aud"]) == (
        "pia",
        view["handle"],
        1,
        "orders",
    )
    assert claims["exp"] - claims["iat"] in (300, 301)  # COATCHECK_JWT_TTL's default


@pytest.mark.parametrize("user_id", ["zoë", "a\nX-Coatcheck-Level: 9", "100%", "名前", "tab\there"])
def test_any_user_id_travels_percent_encoded_and_never_breaks_a_header(
    gate: Running, user_id: str
) -> None:
    token, _ = session(gate, user_id=user_id)
    answer = ask(gate, cookie=f"{COOKIE}={token}")
    assert answer.status_code == 200
    sent = answer.headers["x-coatcheck-user"]
    assert sent.isascii() and "\n" not in sent and "\t" not in sent
    assert unquote(sent) == user_id
    assert answer.headers["x-coatcheck-level"] == "1"


def test_passive_requests_are_checked_but_write_nothing(gate: Running) -> None:
    token, _ = session(gate, user_id="quinn")
    cookie = f"{COOKIE}={token}"
    before = last_seen(gate, token)
    passive = [
        {"x-coatcheck-passive": "1", "x-forwarded-uri": "/anything"},
        {"x-forwarded-uri": "/poll"},
        {"x-forwarded-uri": "/poll/inbox?since=5"},
        {"x-original-uri": "/status/feed/1"},
    ]
    for headers in passive:
        answer = ask(gate, cookie=cookie, **headers)
        assert answer.status_code == 200 and answer.headers["x-coatcheck-user"] == "quinn"
    envoy = ask(gate, "/v1/forward-auth/poll/inbox", cookie=cookie)  # Envoy appends the path
    assert envoy.status_code == 200
    assert last_seen(gate, token) == before
    for headers in ({"x-forwarded-uri": "/polling"}, {"x-forwarded-uri": "/"}, {}):
        assert ask(gate, cookie=cookie, **headers).status_code == 200
        assert last_seen(gate, token) > before  # an active request slides the deadline
        before = last_seen(gate, token)
    assert ask(gate, cookie=cookie, **{"x-coatcheck-passive": "0"}).status_code == 200
    assert last_seen(gate, token) > before


def test_a_rotated_token_comes_back_as_a_standard_set_cookie(rotating: Running) -> None:
    token, _ = session(rotating, user_id="rae")
    answer = ask(rotating, cookie=f"{COOKIE}={token}")
    assert answer.status_code == 200
    (set_cookie,) = answer.headers.get_list("set-cookie")
    name, _, rest = set_cookie.partition("=")
    new_token, *attributes = rest.split("; ")
    assert name == COOKIE and new_token != token and len(new_token) == 43
    assert set(attributes) == {"Path=/", "Secure", "HttpOnly", "SameSite=Lax"}
    nxt = ask(rotating, cookie=f"{COOKIE}={new_token}")
    assert nxt.status_code == 200 and nxt.headers["x-coatcheck-user"] == "rae"
    # A bearer client gets its new token in the token header instead of a cookie.
    newest = nxt.headers["set-cookie"].split(";")[0].split("=", 1)[1]
    bearer = ask(rotating, authorization=f"Bearer {newest}")
    assert "set-cookie" not in bearer.headers
    assert len(bearer.headers["x-session-token"]) == 43
    # A passive request is not committed, so it never rotates.
    latest = bearer.headers["x-session-token"]
    passive = ask(rotating, authorization=f"Bearer {latest}", **{"x-coatcheck-passive": "1"})
    assert passive.status_code == 200 and "x-session-token" not in passive.headers


def test_a_client_guessing_tokens_is_throttled_by_its_own_address(gate: Running) -> None:
    token, _ = session(gate, user_id="sam")
    guesser = {"x-real-ip": "198.51.100.7"}
    for n in range(30):
        assert ask(gate, cookie=f"{COOKIE}={'G' * 42}{n % 10}", **guesser).status_code == 401
    guess = f"{COOKIE}={'H' * 43}"
    blocked = ask(gate, cookie=guess, **guesser)
    assert blocked.status_code == 401 and int(blocked.headers["retry-after"]) > 0
    # A valid token is never throttled, not even from the guessing address.
    assert ask(gate, cookie=f"{COOKIE}={token}", **guesser).status_code == 200
    # Another address behind the same gateway is not throttled: the gateway's own is
    # never used.
    other = ask(gate, cookie=guess, **{"x-forwarded-for": "203.0.113.9, 10.0.0.1"})
    assert other.status_code == 401 and "retry-after" not in other.headers
    same_hop = ask(gate, cookie=guess, **{"x-forwarded-for": "10.0.0.2, 198.51.100.7"})
    # The last hop is the gateway's record of the client.
    assert same_hop.status_code == 401 and int(same_hop.headers["retry-after"]) > 0
