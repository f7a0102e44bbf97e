"""Every ``/v1`` call against a real ``coatcheck serve``: what it answers when used right,
and, for every kind of bad input, a problem document with a 4xx status and nothing written.

Expected times are worked out from the defaults (idle 30 min, absolute 12 h, remember-me
30 days), never read back from the code under test.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.service.conftest import Running
from tests.support.user_agents import FIREFOX_LINUX

PROBLEM = "application/problem+json"
VIEW_FIELDS = {
    "handle",
    "user_id",
    "level",
    "data",
    "created_at",
    "last_seen_at",
    "expires_at",
    "absolute_at",
    "remember",
    "consent",
}
IDLE, ABSOLUTE, REMEMBER = 30 * 60, 12 * 3600, 30 * 24 * 3600


@pytest.fixture
def api(running: Running) -> Iterator[httpx.Client]:
    headers = {"authorization": f"Bearer {running.admin_key}"}
    with httpx.Client(base_url=running.url, headers=headers, timeout=10) as client:
        yield client


def problem(answer: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["type"] == f"urn:coatcheck:problem:{slug}"
    assert body["status"] == status and body["title"] and body["detail"]
    return body


def create(api: httpx.Client, **body: Any) -> dict[str, Any]:
    answer = api.post("/v1/sessions", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def introspect(api: httpx.Client, token: str, **extra: Any) -> dict[str, Any]:
    answer = api.post("/v1/sessions/introspect", json={"token": token, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


# -- used right -------------------------------------------------------------------------------
def test_create_an_anonymous_session(api: httpx.Client) -> None:
    made = create(api)
    assert len(made["token"]) == 43
    view = made["session"]
    assert set(view) == VIEW_FIELDS
    assert (view["user_id"], view["level"], view["data"], view["remember"]) == (None, 0, {}, False)
    assert view["last_seen_at"] == view["created_at"]
    assert view["expires_at"] == pytest.approx(view["created_at"] + IDLE)
    assert view["absolute_at"] == pytest.approx(view["created_at"] + ABSOLUTE)
    assert introspect(api, made["token"])["session"]["handle"] == view["handle"]


def test_create_a_signed_in_remembered_session_with_data_and_client(api: httpx.Client) -> None:
    client = {"ip": "203.0.113.77", "user_agent": FIREFOX_LINUX}
    made = create(
        api, user_id="carol", data={"cart": ["coat"]}, remember=True, level=2, client=client
    )
    view = made["session"]
    assert (view["user_id"], view["level"], view["data"], view["remember"]) == (
        "carol",
        2,
        {"cart": ["coat"]},
        True,
    )
    assert view["absolute_at"] == pytest.approx(view["created_at"] + REMEMBER)
    assert view["expires_at"] == view["absolute_at"]  # remember-me: no idle limit
    (device,) = api.get("/v1/users/carol/sessions").json()["sessions"]
    assert device == {
        "handle": view["handle"],
        "created_at": view["created_at"],
        "last_seen_at": view["last_seen_at"],
        "expires_at": view["expires_at"],
        "auth_at": view["created_at"],
        "remember": True,
        "user_agent": "Firefox 121 / Linux / desktop",  # reduced: family and major, OS, class
        "ip": "203.0.113.0",
    }


def test_introspect_answers_as_rfc_7662(running: Running, api: httpx.Client) -> None:
    made = create(api, user_id="dave", data={"n": 1})
    answer = introspect(api, made["token"])
    assert answer == {"active": True, "session": answer["session"]}  # no token: none rotated
    assert answer["session"]["data"] == {"n": 1}
    rows = running.session_rows()
    assert introspect(api, made["token"], touch=False)["active"] is True
    assert running.session_rows() == rows  # touch=false is a pure read
    for dead in ("A" * 43, "not a token", made["token"][:-1]):
        assert introspect(api, dead) == {"active": False}


def test_update_is_a_delta(api: httpx.Client) -> None:
    made = create(api, data={"keep": 1, "drop": 2})
    token = made["token"]
    answer = api.post(
        "/v1/sessions/update",
        json={"token": token, "set": {"new": [1, 2]}, "unset": ["drop", "absent"]},
    )
    assert answer.status_code == 200
    assert answer.json()["session"]["data"] == {"keep": 1, "new": [1, 2]}
    assert set(answer.json()) == {"session"}

    async def many() -> None:
        headers = dict(api.headers)
        async with httpx.AsyncClient(base_url=str(api.base_url), headers=headers) as client:
            answers = await asyncio.gather(
                *(
                    client.post("/v1/sessions/update", json={"token": token, "set": {f"k{n}": n}})
                    for n in range(20)
                )
            )
        assert all(a.status_code == 200 for a in answers)

    asyncio.run(many())  # twenty writers at once, each its own key: none is lost
    data = introspect(api, token)["session"]["data"]
    assert data == {"keep": 1, "new": [1, 2], **{f"k{n}": n for n in range(20)}}


def test_update_operations_are_applied_in_the_store(running: Running, api: httpx.Client) -> None:
    """Twenty callers add to one counter, one cart and one set at once: every addition
    lands (a read-modify-write ``set`` of the same keys would keep only some)."""
    token = create(api, data={"n": 1, "cart": ["hat"]})["token"]
    answer = api.post(
        "/v1/sessions/update",
        json={
            "token": token,
            "set": {"seen": True},
            "ops": [
                {"op": "incr", "key": "n", "by": 4},
                {"op": "incr", "key": "visits"},
                {"op": "append", "key": "cart", "value": {"sku": "mug", "qty": 2}},
                {"op": "add_to_set", "key": "tags", "value": "new"},
                {"op": "add_to_set", "key": "tags", "value": "new"},
            ],
        },
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["session"]["data"] == {
        "n": 5,
        "visits": 1,
        "cart": ["hat", {"sku": "mug", "qty": 2}],
        "tags": ["new"],
        "seen": True,
    }

    async def many() -> None:
        headers = dict(api.headers)
        async with httpx.AsyncClient(base_url=str(api.base_url), headers=headers) as client:
            answers = await asyncio.gather(
                *(
                    client.post(
                        "/v1/sessions/update",
                        json={
                            "token": token,
                            "ops": [
                                {"op": "incr", "key": "n", "by": 2},
                                {"op": "append", "key": "cart", "value": f"item{n}"},
                                {"op": "add_to_set", "key": "tags", "value": n % 3},
                            ],
                        },
                    )
                    for n in range(20)
                )
            )
        assert [a.status_code for a in answers] == [200] * 20

    asyncio.run(many())
    data = introspect(api, token)["session"]["data"]
    assert data["n"] == 5 + 20 * 2
    assert data["cart"][:2] == ["hat", {"sku": "mug", "qty": 2}]
    assert sorted(data["cart"][2:]) == sorted(f"item{n}" for n in range(20))
    assert data["tags"][0] == "new" and sorted(data["tags"][1:]) == [0, 1, 2]


def test_an_operation_on_a_value_of_another_type_is_a_422_naming_the_key(
    running: Running, api: httpx.Client
) -> None:
    token = create(api, data={"name": "ada", "n": 1})["token"]
    rows = running.session_rows()
    beyond = {"op": "incr", "key": "n", "by": 2**53 - 1}  # 1 + (2**53 - 1) leaves the range
    for op in (
        {"op": "incr", "key": "name"},
        {"op": "append", "key": "n", "value": 1},
        beyond,
    ):
        found = problem(
            api.post("/v1/sessions/update", json={"token": token, "ops": [op]}), 422, "invalid-body"
        )
        assert repr(op["key"]) in found["detail"] or op["key"] in found["detail"]
    both = api.post(
        "/v1/sessions/update",
        json={"token": token, "set": {"n": 7}, "ops": [{"op": "incr", "key": "n"}]},
    )
    assert "'n'" in problem(both, 422, "invalid-body")["detail"]
    assert running.session_rows() == rows
    assert introspect(api, token)["session"]["data"] == {"name": "ada", "n": 1}


def test_login_keeps_the_data_and_kills_the_old_token(api: httpx.Client) -> None:
    made = create(api, data={"cart": ["hat"]})
    answer = api.post(
        "/v1/sessions/login", json={"token": made["token"], "user_id": "erin", "level": 2}
    )
    assert answer.status_code == 200
    logged = answer.json()
    assert logged["token"] != made["token"]
    view = logged["session"]
    assert (view["user_id"], view["level"], view["data"]) == ("erin", 2, {"cart": ["hat"]})
    assert view["handle"] == made["session"]["handle"]
    assert view["absolute_at"] == pytest.approx(view["last_seen_at"] + ABSOLUTE)
    assert introspect(api, made["token"]) == {"active": False}
    # Another user on the same session: a new session, nothing of erin's carried over.
    other = api.post("/v1/sessions/login", json={"token": logged["token"], "user_id": "frank"})
    view = other.json()["session"]
    assert (view["user_id"], view["data"]) == ("frank", {})
    assert view["handle"] != made["session"]["handle"]


def test_regenerate_issues_a_new_token_for_the_same_session(api: httpx.Client) -> None:
    made = create(api, user_id="gina")
    answer = api.post("/v1/sessions/regenerate", json={"token": made["token"]}).json()
    assert answer["token"] != made["token"]
    assert answer["session"]["handle"] == made["session"]["handle"]
    assert introspect(api, made["token"]) == {"active": False}
    assert introspect(api, answer["token"])["active"] is True


def test_logout_ends_the_session(api: httpx.Client) -> None:
    made = create(api, user_id="hal")
    answer = api.post("/v1/sessions/logout", json={"token": made["token"]})
    assert (answer.status_code, answer.content) == (204, b"")
    assert introspect(api, made["token"]) == {"active": False}
    problem(
        api.post("/v1/sessions/logout", json={"token": made["token"]}), 404, "session-not-found"
    )


def test_users_sessions_are_listed_and_revoked(api: httpx.Client) -> None:
    tokens = [create(api, user_id="ivy")["token"] for _ in range(3)]
    listed = api.get("/v1/users/ivy/sessions").json()["sessions"]
    assert len(listed) == 3
    for device in listed:
        assert set(device) == {
            "handle",
            "created_at",
            "last_seen_at",
            "expires_at",
            "auth_at",
            "remember",
            "user_agent",
            "ip",
        }
    keep = introspect(api, tokens[0])["session"]["handle"]
    answer = api.delete("/v1/users/ivy/sessions", params={"except": keep})
    assert answer.json() == {"revoked": 2}
    assert [introspect(api, t)["active"] for t in tokens] == [True, False, False]
    assert api.delete("/v1/users/ivy/sessions").json() == {"revoked": 1}
    assert api.get("/v1/users/ivy/sessions").json() == {"sessions": []}


def test_a_session_is_revoked_by_handle(api: httpx.Client) -> None:
    made = create(api, user_id="jo")
    handle = made["session"]["handle"]
    assert api.delete(f"/v1/sessions/{handle}").status_code == 204
    assert introspect(api, made["token"]) == {"active": False}
    problem(api.delete(f"/v1/sessions/{handle}"), 404, "session-not-found")


# -- bad input: a problem, a 4xx, nothing written ------------------------------------------------
BAD_BODIES: list[tuple[str, Any]] = [
    ("/v1/sessions", {"user": "x"}),
    ("/v1/sessions", {"user_id": 5}),
    ("/v1/sessions", {"user_id": ""}),
    ("/v1/sessions", {"user_id": "x" * 257}),
    ("/v1/sessions", {"user_id": "a\u0000b"}),
    ("/v1/sessions", {"user_id": "u", "remember": "yes"}),
    ("/v1/sessions", {"user_id": "u", "remember": 1}),
    ("/v1/sessions", {"user_id": "u", "level": "2"}),
    ("/v1/sessions", {"user_id": "u", "level": True}),
    ("/v1/sessions", {"user_id": "u", "level": 0}),
    ("/v1/sessions", {"user_id": "u", "level": 2.5}),
    ("/v1/sessions", {"user_id": None}),
    ("/v1/sessions", {"user_id": "u", "client": {"ip": None}}),
    ("/v1/sessions/update", {"token": "t", "set": None}),
    ("/v1/sessions", {"level": 2}),
    ("/v1/sessions", {"remember": True}),
    ("/v1/sessions", {"data": []}),
    ("/v1/sessions", {"data": {"x": {"y": "\u0000"}}}),
    ("/v1/sessions", {"client": "x"}),
    ("/v1/sessions", {"client": {"ip": "1.2.3.4", "mac": "x"}}),
    ("/v1/sessions", [1, 2]),
    ("/v1/sessions", "text"),
    ("/v1/sessions/introspect", {}),
    ("/v1/sessions/introspect", {"token": 5}),
    ("/v1/sessions/introspect", {"token": "t", "touch": "no"}),
    ("/v1/sessions/introspect", {"token": "t", "extra": 1}),
    ("/v1/sessions/update", {"token": "t", "set": "x"}),
    ("/v1/sessions/update", {"token": "t", "unset": "x"}),
    ("/v1/sessions/update", {"token": "t", "unset": [1]}),
    ("/v1/sessions/update", {"token": "t", "ops": [{"op": "decr", "key": "n"}]}),
    ("/v1/sessions/update", {"token": "t", "ops": [{"op": "incr", "key": "n", "by": "1"}]}),
    ("/v1/sessions/update", {"token": "t", "ops": [{"op": "incr", "key": "n", "by": 2**53}]}),
    ("/v1/sessions/update", {"token": "t", "ops": [{"op": "incr", "key": "n", "by": 1.5}]}),
    ("/v1/sessions/update", {"token": "t", "ops": [{"op": "incr", "key": "", "by": 1}]}),
    ("/v1/sessions/update", {"token": "t", "ops": [{"op": "append", "key": "l"}]}),
    (
        "/v1/sessions/update",
        {"token": "t", "ops": [{"op": "append", "key": "l", "value": "\u0000"}]},
    ),
    (
        "/v1/sessions/update",
        {"token": "t", "ops": [{"op": "add_to_set", "key": "l", "value": [1]}]},
    ),
    ("/v1/sessions/update", {"token": "t", "ops": [{"op": "incr", "key": "n", "value": 1}]}),
    ("/v1/sessions/update", {"token": "t", "ops": [{"op": "incr", "key": "n"}] * 1001}),
    ("/v1/sessions/login", {"token": "t"}),
    ("/v1/sessions/login", {"token": "t", "user_id": "u", "remember": "true"}),
    ("/v1/sessions/regenerate", {"token": None}),
    ("/v1/sessions/logout", {"token": "t", "all": True}),
    ("/v1/sessions/token", {"token": "t", "ttl": 901}),
    ("/v1/sessions/token", {"token": "t", "ttl": 0}),
    ("/v1/sessions/token", {"token": "t", "ttl": 1.5}),
    ("/v1/sessions/token", {"token": "t", "audience": 3}),
]


@pytest.mark.parametrize(("path", "body"), BAD_BODIES)
def test_an_invalid_body_is_a_422_problem_and_writes_nothing(
    running: Running, api: httpx.Client, path: str, body: Any
) -> None:
    rows = running.session_rows()
    found = problem(api.post(path, json=body), 422, "invalid-body")
    assert running.session_rows() == rows
    # Errors name the field and the rule, never echo the value sent.
    assert all(set(error) == {"location", "message"} for error in found.get("errors", []))


RAW_BODIES: list[tuple[str, bytes, str]] = [
    ("/v1/sessions", b"{", "application/json"),
    ("/v1/sessions", b'{"user_id": "u",}', "application/json"),
    ("/v1/sessions", b'{"data": {"x": NaN}}', "application/json"),
    ("/v1/sessions", b'{"data": {"x": 1e999}}', "application/json"),
    ("/v1/sessions", b'{"data": {"x": "\\ud800"}}', "application/json"),
    ("/v1/sessions", b'{"data": {"\\udfff": 1}}', "application/json"),
    ("/v1/sessions", b'{"user_id": "\\ud800"}', "application/json"),
    ("/v1/sessions", b'{"data": {"x": ' + b"[" * 33 + b"]" * 33 + b"}}", "application/json"),
    ("/v1/sessions", b'{"data": {"x": ' + b"[" * 20000 + b"]" * 20000 + b"}}", "application/json"),
    ("/v1/sessions", b'{"data": {"x": 1' + b"0" * 5000 + b"}}", "application/json"),
    ("/v1/sessions", b'{"user_id": "u"}', "text/plain"),
    ("/v1/sessions", b"user_id=u", "application/x-www-form-urlencoded"),
    ("/v1/sessions/update", b'{"token": "t", "set": {"a": 1}, "unset": ["a"]}', "application/json"),
]


@pytest.mark.parametrize(("path", "raw", "content_type"), RAW_BODIES)
def test_a_body_that_is_not_valid_json_for_the_call_is_a_4xx_problem(
    running: Running, api: httpx.Client, path: str, raw: bytes, content_type: str
) -> None:
    rows = running.session_rows()
    answer = api.post(path, content=raw, headers={"content-type": content_type})
    assert 400 <= answer.status_code < 500, answer.text
    found = problem(answer, answer.status_code, "invalid-body")
    assert found["status"] in (400, 404, 422)
    assert running.session_rows() == rows


def test_an_overlapping_set_and_unset_is_refused_before_the_session_is_read(
    running: Running, api: httpx.Client
) -> None:
    token = create(api, data={"a": 0})["token"]
    rows = running.session_rows()
    body = {"token": token, "set": {"a": 1}, "unset": ["a"]}
    problem(api.post("/v1/sessions/update", json=body), 422, "invalid-body")
    assert running.session_rows() == rows


def test_huge_bodies_are_413_problems_and_write_nothing(
    running: Running, api: httpx.Client
) -> None:
    token = create(api)["token"]
    rows = running.session_rows()
    huge = {"token": token, "set": {"blob": "x" * 200_000}}
    problem(api.post("/v1/sessions/update", json=huge), 413, "body-too-large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"token": "' + token.encode() + b'", "set": {"blob": "'
        for _ in range(100):
            yield b"y" * 4096
        yield b'"}}'

    streamed = api.post(
        "/v1/sessions/update", content=chunks(), headers={"content-type": "application/json"}
    )
    problem(streamed, 413, "body-too-large")
    # Under the body limit but over the 64 KiB session limit: refused at the commit.
    over = {"token": token, "set": {"blob": "z" * (64 * 1024)}}
    problem(api.post("/v1/sessions/update", json=over), 413, "session-too-large")
    assert running.session_rows() == rows


def expire(running: Running, token: str) -> None:
    """Move the session's deadline into the past, as time passing would."""
    key = hashlib.sha256(token.encode()).hexdigest()
    with sqlite3.connect(running.db) as conn:
        changed = conn.execute(
            "UPDATE coatcheck_sessions SET expires_at = 1000 WHERE key = ?", (key,)
        ).rowcount
    assert changed == 1


TOKEN_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("/v1/sessions/update", {"set": {"x": 1}}),
    ("/v1/sessions/login", {"user_id": "mallory"}),
    ("/v1/sessions/regenerate", {}),
    ("/v1/sessions/logout", {}),
    ("/v1/sessions/token", {}),
]


@pytest.mark.parametrize(("path", "extra"), TOKEN_CALLS)
def test_expired_and_rotated_out_tokens_are_404_problems(
    running: Running, api: httpx.Client, path: str, extra: dict[str, Any]
) -> None:
    expired = create(api, user_id="kim")["token"]
    expire(running, expired)
    old = create(api, user_id="lee")["token"]
    new = api.post("/v1/sessions/regenerate", json={"token": old}).json()["token"]
    rows = running.session_rows()
    for token in (expired, old, "B" * 43, "short"):
        problem(api.post(path, json={"token": token, **extra}), 404, "session-not-found")
    assert running.session_rows() == rows
    assert introspect(api, new)["active"] is True


def test_a_jwt_needs_a_signed_in_session(running: Running, api: httpx.Client) -> None:
    token = create(api)["token"]
    rows = running.session_rows()
    problem(api.post("/v1/sessions/token", json={"token": token}), 409, "session-anonymous")
    assert running.session_rows() == rows


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/nothing"),
        ("GET", "/v1/sessions"),
        ("PUT", "/v1/sessions/introspect"),
        ("DELETE", "/v1/sessions/no:such"),
        ("GET", "/v1/users/%00/sessions"),
        ("DELETE", "/v1/users/u/sessions?except=not%20a%20handle"),
    ],
)
def test_unknown_calls_and_paths_are_problems(api: httpx.Client, method: str, path: str) -> None:
    answer = api.request(method, path)
    assert 400 <= answer.status_code < 500
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["status"] == answer.status_code


def test_a_client_presenting_unknown_tokens_is_throttled(
    running: Running, api: httpx.Client
) -> None:
    guesser = {"ip": "192.0.2.44"}
    for n in range(30):  # SessionConfig.unknown_token_limit: 30 a minute per address
        answer = introspect(api, f"{'H' * 42}{n % 10}", client=guesser)
        assert answer == {"active": False}
    found = problem(
        api.post("/v1/sessions/introspect", json={"token": "H" * 43, "client": guesser}),
        429,
        "throttled",
    )
    assert found["status"] == 429
    answer = api.post("/v1/sessions/introspect", json={"token": "H" * 43, "client": guesser})
    assert int(answer.headers["retry-after"]) > 0
    other = introspect(api, "H" * 43, client={"ip": "192.0.2.45"})  # another address is not
    assert other == {"active": False}


def test_no_call_takes_the_token_in_its_url(running: Running) -> None:
    document = httpx.get(f"{running.url}/openapi.json").json()
    parameters = [
        parameter["name"]
        for path in document["paths"].values()
        for operation in path.values()
        for parameter in operation.get("parameters", [])
    ]
    # the analytics summary takes a range and a route, never a token
    assert set(parameters) == {"user_id", "handle", "except", "since", "until", "route"}
    bodies = [
        operation["requestBody"]
        for path in document["paths"].values()
        for operation in path.values()
        if "requestBody" in operation
    ]
    assert len(bodies) == 8  # every call on a token takes it in its body


def test_a_user_id_is_measured_as_javascript_measures_it(api: httpx.Client) -> None:
    """256 characters at most, in UTF-16 units: 129 astral characters are 129 code points
    but 258 units, too long for a Node client, so too long here."""
    astral = "\U0001f600"  # one code point, two UTF-16 units
    assert api.get(f"/v1/users/{astral * 128}/sessions").status_code == 200
    refused = api.get(f"/v1/users/{astral * 129}/sessions")
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("reason", ["superseded", "gone"])
def test_a_lost_write_is_a_409_session_conflict_problem(reason: str) -> None:
    """A write that found the session revoked, or its token replaced by a concurrent
    login, while the call ran (the engine's SessionConflict, proved on every store in
    tests/conformance/test_login_races.py) is the same 409 the library's edges send."""
    from coatcheck.errors import SessionConflict
    from coatcheck.service import problems

    problem = problems.from_engine(SessionConflict(reason))
    assert problem.kind is problems.SESSION_CONFLICT
    assert (problem.kind.status, problem.kind.type) == (
        409,
        "urn:coatcheck:problem:session-conflict",
    )
    assert problem.headers["retry-after"] == "1"
    assert "retry" in problem.detail


def test_concurrent_writers_of_different_keys_cannot_pass_the_size_limit(
    running: Running, api: httpx.Client
) -> None:
    """Twenty updates of 60 KB under different keys at once: one fits in the 64 KiB, the
    others are 413 problems (the store checks the limit with each write, so it holds
    however the requests interleave), and the session keeps the one that fitted."""
    from concurrent.futures import ThreadPoolExecutor

    token = create(api, data={"n": 1})["token"]

    def update(i: int) -> httpx.Response:
        return api.post(
            "/v1/sessions/update", json={"token": token, "set": {f"k{i}": "v" * 60_000}}
        )

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(update, range(20)))
    assert sorted(a.status_code for a in answers) == [200] + [413] * 19
    for answer in answers:
        if answer.status_code == 413:
            problem(answer, 413, "session-too-large")
    data = introspect(api, token)["session"]["data"]
    assert len(data) == 2 and data["n"] == 1
