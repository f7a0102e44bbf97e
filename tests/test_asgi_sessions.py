"""The Foundation's behaviour, each point proven through real HTTP to a uvicorn server.

Numbers in test names refer to the Foundation issue's list of behaviours.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from coatcheck import LoggingSink, MemorySink, SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.stores import SQLiteStore
from tests.support.browser import Browser, parse_set_cookie
from tests.support.clock import FakeClock
from tests.support.server import serve
from tests.support.shop import create_shop
from tests.support.user_agents import CHROME_WINDOWS, FIREFOX_LINUX, SAFARI_IPHONE

COOKIE = "__Host-session"


@dataclass
class Shop:
    url: str
    manager: SessionManager
    store: SQLiteStore
    clock: FakeClock
    sink: MemorySink
    db: Path

    def browser(self) -> Browser:
        return Browser(self.url)

    def rows(self) -> list[tuple[object, ...]]:
        """The stored sessions; none at all while the store was never written (the app
        has not even created its table yet). The marker a login leaves under its old key
        for ``rotation_grace`` (no data, no user; tests/conformance/test_login_races.py)
        is not a session."""
        if not self.db.exists():
            return []
        with sqlite3.connect(self.db) as conn:
            if not conn.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'coatcheck_sessions'"
            ).fetchone():
                return []
            return conn.execute(
                "SELECT key, handle, user_id, data, last_seen_at, expires_at "
                "FROM coatcheck_sessions WHERE meta NOT LIKE '%\"superseded_at\"%' "
                "ORDER BY created_at"
            ).fetchall()


@pytest.fixture
def shop(tmp_path: Path, clock: FakeClock) -> Iterator[Shop]:
    db = tmp_path / "sessions.db"
    store = SQLiteStore(db)
    sink = MemorySink()
    manager = SessionManager(store, SessionConfig(), clock=clock, events=[sink, LoggingSink()])
    with serve(create_shop(manager)) as url:
        yield Shop(url, manager, store, clock, sink, db)
    store.close_sync()


def set_cookies(response: httpx.Response) -> list[tuple[str, str, dict[str, str]]]:
    return [parse_set_cookie(v) for v in response.headers.get_list("set-cookie")]


def token_of(response: httpx.Response) -> str:
    ((name, value, _),) = set_cookies(response)
    assert name == COOKIE
    return value


# 1 -----------------------------------------------------------------------------------------
def test_1_tokens_are_256_bit_and_never_stored_logged_or_emitted(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with shop.browser() as b:
        token = token_of(b.render())  # a page with a form: its CSRF secret starts the session
        b.post("/set", json={"n": 1})
        login = b.post("/login?user=alice")
        second = token_of(login)
        b.post("/regenerate")
        third = b.cookies[COOKIE]
        b.post("/logout")
    seen = [token, second, third]
    for t in seen:
        assert tokens.is_well_formed(t)
        # 43 base64url characters = 258 bits of text for 256 bits from secrets.
        assert len(t) == 43
    assert len(set(seen)) == 3
    # Store: rows are filed under SHA-256, and the raw bytes of every database file
    # (including the WAL) hold no token.
    raw = b"".join(p.read_bytes() for p in shop.db.parent.glob("sessions.db*"))
    for t in seen:
        assert t.encode() not in raw
    # Server-side log lines (everything but the test's own HTTP client) and events never
    # carry the token or its hash.
    server_lines = [
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    ]
    text = "\n".join(server_lines) + repr(shop.sink.events)
    for t in seen:
        assert t not in text
        assert hashlib.sha256(t.encode()).hexdigest() not in text
    assert "session.login" in text  # the sink did log


def test_1_store_rows_are_keyed_by_sha256(shop: Shop) -> None:
    with shop.browser() as b:
        token = token_of(b.render())
        b.post("/set", json={"n": 1})
    (row,) = shop.rows()
    assert row[0] == hashlib.sha256(token.encode()).hexdigest()


# 2 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "presented",
    [
        tokens.new_token(),  # unknown, well formed
        "short",
        "x" * 20_000,  # oversized
        "../../etc/passwd",
        "\u20acuro-sign-not-ascii",
        "",
        '"quoted"',
    ],
)
def test_2_strict_mode_never_adopts_a_client_value(shop: Shop, presented: str) -> None:
    headers = {"Cookie": f"{COOKIE}={presented}".encode()}
    with httpx.Client(base_url=shop.url) as client:
        read = client.get("/read", headers=headers)
        assert read.status_code == 200
        assert read.json()["is_new"] is True
        assert read.json()["data"] == {}
        # A write with this cookie cannot carry a valid CSRF token: it is refused, and
        # stores nothing either.
        forged = client.post("/set", json={"n": 1}, headers=headers)
        assert forged.status_code == 403
        assert shop.rows() == []
        # The first write of a session is the render of a form (its CSRF secret).
        write = client.get("/csrf", headers=headers)
    assert write.status_code == 200
    issued = token_of(write)
    assert issued != presented
    assert tokens.is_well_formed(issued)
    assert [r[0] for r in shop.rows()] == [tokens.storage_key(issued)]


def test_2_tampered_and_expired_tokens_give_a_fresh_session(shop: Shop) -> None:
    with shop.browser() as b:
        token = token_of(b.render())
        b.post("/set", json={"secret": "mine"})
    tampered = ("A" if token[0] != "A" else "B") + token[1:]
    with httpx.Client(base_url=shop.url) as client:
        r = client.get("/read", headers={"Cookie": f"{COOKIE}={tampered}"})
        assert r.json() == {**r.json(), "is_new": True, "data": {}}
        shop.clock.advance(SessionConfig().idle_timeout + 1)
        r = client.get("/read", headers={"Cookie": f"{COOKIE}={token}"})
        assert r.status_code == 200
        assert r.json()["is_new"] is True
    assert "session.expired" in shop.sink.names()
    assert "session.rejected" in shop.sink.names()


def raw_request(url: str, head: bytes) -> int:
    """Send raw header bytes (which an HTTP client library would refuse to send) and
    return the status code."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /read HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + head + b"\r\n\r\n")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return int(reply.split(b" ", 2)[1])


@pytest.mark.parametrize(
    "header",
    [
        b"; ; ;",
        COOKIE.encode(),
        f"{COOKIE}=={tokens.new_token()}".encode(),
        f"{COOKIE}={tokens.new_token()}; {COOKIE}={tokens.new_token()}".encode(),
        b"a=b; " * 500 + b"c=d",
        b"\xff\xfe\x80" + COOKIE.encode() + b"=\xe9\xe9",
        COOKIE.encode() + b"=" + tokens.new_token().encode() + b"\x00",
        b"Authorization: Bearer " + b"\xff" * 50,
    ],
)
def test_2_garbage_headers_never_give_500(shop: Shop, header: bytes) -> None:
    line = header if header.startswith(b"Authorization") else b"Cookie: " + header
    status = raw_request(shop.url, line)
    assert status in (200, 400), status  # 400 when the HTTP server itself refuses it
    assert shop.rows() == []


# 3 -----------------------------------------------------------------------------------------
def test_3_untouched_requests_write_nothing_and_set_no_cookie(shop: Shop) -> None:
    with shop.browser() as b:
        assert set_cookies(b.get("/noop")) == []
        assert set_cookies(b.get("/read")) == []  # a new session that stays empty
        assert shop.rows() == []
        b.post("/set", json={"n": 1})
        before = shop.rows()
        shop.clock.advance(10)  # well inside the touch interval
        for path in ("/noop", "/read", "/noop"):
            r = b.get(path)
            assert set_cookies(r) == []
        assert shop.rows() == before


# 4 -----------------------------------------------------------------------------------------
def test_4_login_issues_new_token_keeps_data_and_kills_old_token(shop: Shop) -> None:
    with shop.browser() as b:
        anonymous = token_of(b.render())
        b.post("/cart/add?item=hat")
        b.post("/cart/add?item=scarf")
        shop.clock.advance(5)
        login = b.post("/login?user=alice")
        authenticated = token_of(login)
        assert authenticated != anonymous
        body = login.json()
        assert body["user_id"] == "alice"
        assert body["data"] == {"cart": ["hat", "scarf"]}
        assert body["auth_at"] == shop.clock.now
        assert b.get("/read").json()["data"] == {"cart": ["hat", "scarf"]}
    with httpx.Client(base_url=shop.url) as attacker:
        r = attacker.get("/read", headers={"Cookie": f"{COOKIE}={anonymous}"})
        assert r.json()["is_new"] is True
        assert r.json()["user_id"] is None
    (row,) = shop.rows()
    assert row[2] == "alice"


def test_4_logging_in_as_another_user_drops_the_previous_users_data(shop: Shop) -> None:
    with shop.browser() as b:
        b.post("/login?user=alice")
        b.post("/set", json={"alice_secret": 1})
        r = b.post("/login?user=bob")
        assert r.json()["user_id"] == "bob"
        assert r.json()["data"] == {}
        assert b.get("/read").json()["data"] == {}


# 5 -----------------------------------------------------------------------------------------
def test_5_logout_deletes_the_record_and_expires_the_cookie(shop: Shop) -> None:
    with shop.browser() as b:
        b.post("/login?user=alice")
        token = b.cookies[COOKIE]
        r = b.post("/logout")
        ((name, _value, attrs),) = set_cookies(r)
        assert (name, attrs["max-age"]) == (COOKIE, "0")
        assert "expires" in attrs
        assert COOKIE not in b.cookies
    assert shop.rows() == []
    with httpx.Client(base_url=shop.url) as replay:
        r = replay.get("/read", headers={"Cookie": f"{COOKIE}={token}"})
        assert r.json()["is_new"] is True
        assert r.json()["user_id"] is None
    assert "session.logout" in shop.sink.names()


def test_5_data_written_after_logout_starts_a_new_anonymous_session(shop: Shop) -> None:
    with shop.browser() as b:
        b.post("/login?user=alice")
        old = b.cookies[COOKIE]
        r = b.post("/logout?flash=bye")
        new = token_of(r)
        assert new != old
        assert b.get("/read").json() == {**b.get("/read").json(), "user_id": None}
        assert b.get("/read").json()["data"] == {"flash": "bye"}
    ((_, _, user, _, _, _),) = shop.rows()
    assert user is None


# 6 -----------------------------------------------------------------------------------------
def test_6_idle_timeout_is_enforced_on_the_server(shop: Shop) -> None:
    idle = SessionConfig().idle_timeout
    with shop.browser() as b:
        b.post("/set", json={"n": 1})
        shop.clock.advance(idle - 1)
        assert b.get("/read").json()["data"] == {"n": 1}  # touched: deadline extended
        shop.clock.advance(idle - 1)
        assert b.get("/read").json()["data"] == {"n": 1}
        shop.clock.advance(idle + 1)
        assert b.get("/read").json()["is_new"] is True


def test_6_read_only_traffic_touches_at_most_once_per_interval(shop: Shop) -> None:
    config = SessionConfig()
    with shop.browser() as b:
        b.post("/set", json={"n": 1})
        created = shop.rows()[0]
        for _ in range(5):
            shop.clock.advance(config.effective_touch_interval / 10)
            b.get("/read")
        assert shop.rows()[0] == created  # no write inside the interval
        shop.clock.advance(config.effective_touch_interval)
        b.get("/read")
        touched = shop.rows()[0]
        assert touched[4] == shop.clock.now  # last_seen_at
        assert touched[5] == shop.clock.now + config.idle_timeout  # expires_at moved
        b.get("/read")
        assert shop.rows()[0] == touched


def test_6_absolute_timeout_ends_even_a_busy_session(shop: Shop) -> None:
    config = SessionConfig()
    with shop.browser() as b:
        b.post("/login?user=alice")
        elapsed = 0.0
        while elapsed + 600 < config.absolute_timeout:
            shop.clock.advance(600)
            elapsed += 600
            assert b.post("/set", json={"t": elapsed}).json()["user_id"] == "alice"
        shop.clock.advance(config.absolute_timeout - elapsed)
        r = b.get("/read")
        assert r.json()["is_new"] is True
        assert r.json()["user_id"] is None


# 7 -----------------------------------------------------------------------------------------
async def test_7_fifty_concurrent_requests_lose_no_key(shop: Shop) -> None:
    with shop.browser() as b:
        token = token_of(b.render())
        b.post("/set", json={"base": 0})
        headers = {"Cookie": f"{COOKIE}={token}", "X-CSRF-Token": b.csrf_token()}
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(base_url=shop.url, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post(f"/together?key=k{i}", headers=headers) for i in range(50))
        )
    assert [r.status_code for r in responses] == [200] * 50
    with httpx.Client(base_url=shop.url) as client:
        data = client.get("/read", headers=headers).json()["data"]
    assert data == {"base": 0, **{f"k{i}": f"k{i}" for i in range(50)}}


# 8 -----------------------------------------------------------------------------------------
def test_8_list_and_revoke_a_users_sessions(shop: Shop) -> None:
    agents = [FIREFOX_LINUX, CHROME_WINDOWS, SAFARI_IPHONE]
    phones = [Browser(shop.url, headers={"User-Agent": agent}) for agent in agents]
    try:
        for phone in phones:
            phone.post("/login?user=alice")
            shop.clock.advance(1)
        listed = phones[0].get("/sessions").json()
        # Kept reduced (browser family and major, OS family, device class), never whole.
        assert [s["user_agent"] for s in listed] == [
            "Firefox 121 / Linux / desktop",
            "Chrome 120 / Windows / desktop",
            "Mobile Safari 17 / iOS / mobile",
        ]
        for s in listed:
            assert s["ip"] == "127.0.0.0"  # last octet zeroed
            assert set(s) == {
                "handle",
                "user_id",
                "created_at",
                "last_seen_at",
                "expires_at",
                "auth_at",
                "remember",
                "user_agent",
                "ip",
            }
            assert s["handle"] not in phones[0].cookies.values()
        # Revoke one.
        assert phones[0].post(f"/revoke?handle={listed[1]['handle']}").json() == {"revoked": True}
        assert phones[1].get("/read").json()["user_id"] is None
        assert phones[2].get("/read").json()["user_id"] == "alice"
        # All but the current one.
        assert phones[0].post("/revoke-others").json() == {"revoked": 1}
        assert phones[2].get("/read").json()["user_id"] is None
        assert phones[0].get("/read").json()["user_id"] == "alice"
    finally:
        for phone in phones:
            phone.close()


async def test_8_revoke_all_of_a_users_sessions(shop: Shop) -> None:
    browsers = [shop.browser() for _ in range(2)]
    for b in browsers:
        b.post("/login?user=alice")
    assert await shop.manager.revoke_user("alice") == 2
    for b in browsers:
        assert b.get("/read").json()["user_id"] is None
        b.close()


# 9 -----------------------------------------------------------------------------------------
class FillableStore(SQLiteStore):
    """A real SQLite store whose file can be made "full" (SQLITE_FULL) on demand."""

    full = False

    def _run(self, operation, *args):  # type: ignore[no-untyped-def]
        def limited(conn, *inner):  # type: ignore[no-untyped-def]
            if self.full:
                pages = conn.execute("PRAGMA page_count").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count = {pages}")
            else:
                conn.execute("PRAGMA max_page_count = 1073741823")
            return operation(conn, *inner)

        return super()._run(limited, *args)


def test_9_full_disk_gives_503_and_keeps_the_stored_session(
    tmp_path: Path, clock: FakeClock
) -> None:
    store = FillableStore(tmp_path / "full.db")
    # The blob must pass the size limit to reach the (full) disk.
    manager = SessionManager(store, SessionConfig(max_data_bytes=1_000_000), clock=clock)
    with serve(create_shop(manager)) as url, Browser(url) as b:
        b.post("/set", json={"cart": ["hat"]})
        store.full = True
        r = b.post("/set", json={"blob": "x" * 200_000})
        assert r.status_code == 503
        assert r.headers["content-type"].startswith("text/plain")
        assert "unavailable" in r.text
        store.full = False
        assert b.get("/read").json()["data"] == {"cart": ["hat"]}
        assert b.post("/set", json={"n": 2}).status_code == 200
        assert b.get("/read").json()["data"] == {"cart": ["hat"], "n": 2}
    store.close_sync()


def test_9_locked_file_gives_503_then_recovers(tmp_path: Path, clock: FakeClock) -> None:
    db = tmp_path / "locked.db"
    store = SQLiteStore(db, timeout=0.2)
    manager = SessionManager(store, clock=clock)
    with serve(create_shop(manager)) as url, Browser(url) as b:
        b.post("/set", json={"cart": ["hat"]})
        csrf = {"X-CSRF-Token": b.csrf_token()}  # the form was open before the lock
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            r = b.post("/set", json={"n": 1}, headers=csrf)
            assert r.status_code == 503
            assert r.headers.get("retry-after") == "5"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert b.get("/read").json()["data"] == {"cart": ["hat"]}
        assert b.post("/set", json={"n": 1}).status_code == 200
    store.close_sync()


def test_9_unreadable_store_gives_503_then_recovers(tmp_path: Path, clock: FakeClock) -> None:
    db = tmp_path / "gone.db"
    db.write_bytes(b"this is not a database" * 200)
    store = SQLiteStore(db, timeout=0.2)
    manager = SessionManager(store, clock=clock)
    with serve(create_shop(manager)) as url, Browser(url) as b:
        b.cookies[COOKIE] = tokens.new_token()
        r = b.get("/read")
        assert r.status_code == 503
        assert "Traceback" not in r.text
        db.unlink()
        store.close_sync()  # the operator fixed the file; connections reopen
        assert b.get("/read").status_code == 200
        assert b.post("/set", json={"n": 1}).status_code == 200
    store.close_sync()


# 10 ----------------------------------------------------------------------------------------
def test_10_cookie_attributes_and_no_store(shop: Shop) -> None:
    with shop.browser() as b:
        r = b.render()  # the response that starts the session
        (raw,) = r.headers.get_list("set-cookie")
        token = b.cookies[COOKIE]
        assert raw == f"{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Lax"
        assert r.headers["cache-control"] == "no-store"
        r = b.post("/login?user=alice&remember=1")
        (raw,) = r.headers.get_list("set-cookie")
        _name, _, attrs = parse_set_cookie(raw)
        assert attrs["max-age"] == str(int(SessionConfig().remember_timeout))
        assert r.headers["cache-control"] == "no-store"
        # An authenticated response is never cacheable either.
        r = b.get("/read")
        assert r.headers.get_list("set-cookie") == []
        assert r.headers["cache-control"] == "no-store"


def test_10_remember_me_outlives_the_idle_timeout(shop: Shop) -> None:
    with shop.browser() as b:
        b.post("/login?user=alice&remember=1")
        shop.clock.advance(SessionConfig().idle_timeout * 10)
        assert b.get("/read").json()["user_id"] == "alice"
        shop.clock.advance(SessionConfig().remember_timeout)
        assert b.get("/read").json()["user_id"] is None


# 11 ----------------------------------------------------------------------------------------
def test_11_non_json_value_fails_at_commit_naming_the_key(shop: Shop) -> None:
    with shop.browser() as b:
        b.post("/set", json={"n": 1})
        before = shop.rows()
        r = b.post("/bad")
        assert r.status_code == 500  # an application bug, reported as one
        assert shop.rows() == before


async def test_11_error_names_the_key(clock: FakeClock) -> None:
    from coatcheck import SessionDataError
    from coatcheck.stores import MemoryStore

    manager = SessionManager(MemoryStore(), clock=clock)
    session = await manager.load(None)
    session["when"] = object()
    with pytest.raises(SessionDataError, match="'when'"):
        await manager.commit(session)


def test_changes_after_the_response_started_are_an_error(shop: Shop) -> None:
    with shop.browser() as b:
        r = b.get("/late")
        assert r.text == "start;SessionCommittedError"


def test_bearer_clients_get_tokens_in_a_header_not_a_cookie(shop: Shop) -> None:
    with httpx.Client(base_url=shop.url) as api:
        r = api.post("/login?user=alice", headers={"X-Session-Transport": "bearer"})
        assert r.headers.get_list("set-cookie") == []
        token = r.headers["x-session-token"]
        assert tokens.is_well_formed(token)
        auth = {"Authorization": f"Bearer {token}"}
        assert api.get("/read", headers=auth).json()["user_id"] == "alice"
        r = api.post("/logout", headers=auth)
        assert r.headers["x-session-token"] == ""
        assert api.get("/read", headers=auth).json()["user_id"] is None
