"""API keys: ``coatcheck api-keys create | list | revoke`` against a real store, the scopes a
running service enforces, and how a node caches and compares them."""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable

import httpx
import pytest

from coatcheck.engine.operations import run_sync
from coatcheck.service import apikeys, reserved
from coatcheck.service.apikeys import KeyChecker
from coatcheck.stores import MemoryStore
from tests.service.conftest import Running
from tests.service.server import TEST_ENV, coatcheck
from tests.support.clock import FakeClock

PROBLEM = "application/problem+json"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "coatcheck.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **TEST_ENV},
        check=False,
    )


def test_create_prints_only_the_key_and_the_store_keeps_only_its_hash(running: Running) -> None:
    proc = cli(
        "api-keys", "create", "printer", "--scope", "introspect", "--store", running.store_url
    )
    assert proc.returncode == 0
    key = proc.stdout.removesuffix("\n")
    assert "\n" not in key and proc.stderr == ""
    assert key.startswith("cc_") and len(key) == 3 + 43  # 32 random bytes, base64url
    digest = hashlib.sha256(key.encode()).hexdigest()
    with sqlite3.connect(running.db) as conn:
        (data,) = conn.execute(
            "SELECT data FROM coatcheck_sessions WHERE key = ?",
            (reserved.reserved_key("api-keys"),),
        ).fetchone()
    assert digest in data
    assert key not in running.db.read_bytes().decode("latin-1")
    for name in ("sessions.db-wal",):
        wal = running.db.parent / name
        if wal.exists():
            assert key.encode() not in wal.read_bytes()


def test_the_key_can_be_captured_by_a_shell(running: Running) -> None:
    script = (
        f"KEY=$({sys.executable} -m coatcheck.cli api-keys create gw --scope introspect "
        f'--store "{running.store_url}") && '
        f'curl -s -o /dev/null -w "%{{http_code}}" -X POST {running.url}/v1/sessions/introspect '
        '-H "Authorization: Bearer $KEY" -H "Content-Type: application/json" '
        """-d '{"token": "x"}'"""
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **TEST_ENV},
        check=False,
    )
    assert proc.stdout == "200", proc.stderr


def test_list_shows_names_scopes_and_times_never_a_key(running: Running) -> None:
    key = running.key("lister", "sessions", "introspect")
    before = cli("api-keys", "list", "--store", running.store_url).stdout
    row = next(line for line in before.splitlines() if "lister" in line)
    assert "introspect, sessions" in row and "never" in row
    with httpx.Client(base_url=running.url, headers={"authorization": f"Bearer {key}"}) as c:
        assert c.post("/v1/sessions", json={}).status_code == 201
    after = cli("api-keys", "list", "--store", running.store_url).stdout
    row = next(line for line in after.splitlines() if "lister" in line)
    assert "never" not in row  # its last use is a time now
    assert key not in after and hashlib.sha256(key.encode()).hexdigest() not in after


def test_revoke_ends_a_key_and_mistakes_are_one_line(running: Running) -> None:
    key = running.key("doomed", "admin")
    with httpx.Client(base_url=running.url, headers={"authorization": f"Bearer {key}"}) as c:
        assert c.get("/v1/users/nobody/sessions").status_code == 200
        assert cli("api-keys", "revoke", "doomed", "--store", running.store_url).returncode == 0
        refused = c.get("/v1/users/nobody/sessions")
    assert refused.status_code == 401
    assert refused.headers["content-type"] == PROBLEM
    assert refused.json()["type"] == "urn:coatcheck:problem:bad-key"
    assert refused.headers["www-authenticate"] == 'Bearer realm="coatcheck"'
    again = cli("api-keys", "revoke", "doomed", "--store", running.store_url)
    assert (again.returncode, again.stderr.strip()) == (1, "Error: no key named 'doomed'")
    running.key("taken", "admin")
    taken = cli("api-keys", "create", "taken", "--scope", "admin", "--store", running.store_url)
    assert taken.returncode == 1
    assert taken.stderr.strip() == "Error: a key named 'taken' exists already; revoke it first"
    assert taken.stdout == ""
    bad = cli("api-keys", "create", "bad name", "--scope", "admin", "--store", running.store_url)
    assert bad.returncode == 1 and bad.stderr.startswith("Error: invalid key name 'bad name'")
    scope = cli("api-keys", "create", "x", "--scope", "root", "--store", running.store_url)
    assert scope.returncode == 2 and "'root' is not one of" in scope.stderr


SCOPED_CALLS: list[tuple[str, str, dict[str, object] | None]] = [
    ("POST", "/v1/sessions", {}),
    ("POST", "/v1/sessions/introspect", {"token": "t"}),
    ("POST", "/v1/sessions/update", {"token": "t"}),
    ("POST", "/v1/sessions/login", {"token": "t", "user_id": "u"}),
    ("POST", "/v1/sessions/regenerate", {"token": "t"}),
    ("POST", "/v1/sessions/logout", {"token": "t"}),
    ("POST", "/v1/sessions/token", {"token": "t"}),
    ("GET", "/v1/users/u/sessions", None),
    ("DELETE", "/v1/users/u/sessions", None),
    ("DELETE", "/v1/sessions/AAAAAAAAAAAAAAAA", None),
]
ALLOWED = {
    "introspect": {"/v1/sessions/introspect", "/v1/sessions/token"},
    "sessions": {
        "/v1/sessions",
        "/v1/sessions/introspect",
        "/v1/sessions/update",
        "/v1/sessions/login",
        "/v1/sessions/regenerate",
        "/v1/sessions/logout",
        "/v1/sessions/token",
    },
}


@pytest.mark.parametrize("scope", ["introspect", "sessions", "admin"])
def test_each_scope_opens_exactly_its_calls(running: Running, scope: str) -> None:
    key = running.key(f"scope-{scope}", scope)
    refused, allowed = set(), set()
    with httpx.Client(base_url=running.url, headers={"authorization": f"Bearer {key}"}) as c:
        for method, path, body in SCOPED_CALLS:
            answer = c.request(method, path, json=body)
            assert answer.status_code < 500
            if answer.status_code == 403:
                assert answer.json()["type"] == "urn:coatcheck:problem:missing-scope"
                refused.add(path)
            else:
                allowed.add(path)
    paths = {path for _, path, _ in SCOPED_CALLS}
    expected = ALLOWED.get(scope, paths)
    assert allowed == expected
    assert refused == paths - expected


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer  x y",
        "Basic dXNlcjpwYXNz",
        "Bearer cc_" + "A" * 43,
        "Bearer " + "x" * 5000,
    ],
)
def test_a_missing_or_wrong_key_is_a_401_problem(
    running: Running, authorization: str | None
) -> None:
    headers = {"authorization": authorization} if authorization is not None else {}
    rows = running.session_rows()
    answer = httpx.post(f"{running.url}/v1/sessions", json={"user_id": "x"}, headers=headers)
    assert answer.status_code == 401
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"] == "urn:coatcheck:problem:bad-key"
    assert running.session_rows() == rows


def test_purge_and_user_revocation_never_reach_the_keys(running: Running) -> None:
    key = running.key("survivor", "admin")
    coatcheck("purge", "--store", running.store_url)
    with httpx.Client(base_url=running.url, headers={"authorization": f"Bearer {key}"}) as c:
        # The reserved record's handle is not a session handle: no call by handle reaches it.
        assert c.delete("/v1/sessions/coatcheck:api-keys").status_code == 404
        assert c.delete("/v1/sessions/coatcheck%3Aapi-keys").status_code == 404
        assert c.get("/v1/users/u/sessions").status_code == 200


# -- one node's view, against a real (in-memory) store and a clock the test moves -----------
@pytest.fixture
def store_and_clock() -> tuple[MemoryStore, FakeClock]:
    return MemoryStore(), FakeClock()


async def test_a_node_sees_a_new_key_at_once_and_a_revocation_within_its_cache(
    store_and_clock: tuple[MemoryStore, FakeClock],
) -> None:
    store, clock = store_and_clock
    checker = KeyChecker(store, clock, cache_seconds=5.0)
    assert await checker.authenticate("cc_nothing") is None
    clock.advance(1.0)  # a miss rereads the keys at most once a second
    key = run_sync(apikeys.create("k", ["admin"], clock()), store)
    found = await checker.authenticate(key)
    assert found is not None and found.name == "k"
    run_sync(apikeys.revoke("k", clock()), store)
    clock.advance(4.9)
    assert await checker.authenticate(key) is not None  # still cached
    clock.advance(0.1)
    assert await checker.authenticate(key) is None


async def test_last_use_is_written_at_most_once_a_minute(
    store_and_clock: tuple[MemoryStore, FakeClock],
) -> None:
    store, clock = store_and_clock
    key = run_sync(apikeys.create("k", ["sessions"], clock()), store)
    start = clock()
    checker = KeyChecker(store, clock, cache_seconds=0.0)
    await checker.authenticate(key)
    clock.advance(59.0)
    await checker.authenticate(key)
    (listed,) = run_sync(apikeys.listing(), store)
    assert listed.last_used_at == start
    clock.advance(1.0)
    await checker.authenticate(key)
    (listed,) = run_sync(apikeys.listing(), store)
    assert listed.last_used_at == start + 60.0


def test_a_presented_key_is_compared_with_every_stored_hash(
    monkeypatch: pytest.MonkeyPatch, store_and_clock: tuple[MemoryStore, FakeClock]
) -> None:
    store, clock = store_and_clock
    made = [run_sync(apikeys.create(f"k{n}", ["admin"], clock()), store) for n in range(5)]
    keys = run_sync(apikeys.listing(), store)
    calls: list[int] = []
    real: Callable[[bytes, bytes], bool] = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(apikeys.hmac, "compare_digest", counting)
    for presented in (made[0], made[4], "cc_" + "B" * 43):
        calls.clear()
        apikeys.match(keys, presented)
        assert len(calls) == 5  # the first key, the last, or none: the same work
    found = apikeys.match(keys, made[2])
    assert found is not None and found.name == "k2"


def test_scopes_grant_what_the_issue_says() -> None:
    def key(*scopes: str) -> apikeys.ApiKey:
        return apikeys.ApiKey("k", frozenset(scopes), 0.0, None, "")

    assert [key("introspect").grants(s) for s in apikeys.SCOPES] == [True, False, False]
    assert [key("sessions").grants(s) for s in apikeys.SCOPES] == [True, True, False]
    assert [key("admin").grants(s) for s in apikeys.SCOPES] == [True, True, True]
