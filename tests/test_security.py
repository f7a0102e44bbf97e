"""Security hardening of the engine (Security issue): rotation with theft detection,
re-authentication and assurance levels, session limits, client-change detection, the
unknown-token throttle and the size limit. Through real HTTP where a client is involved."""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest

from coatcheck import MemorySink, SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.core.client import ClientInfo
from coatcheck.errors import SessionLimitExceeded, SessionTooLarge, Throttled
from coatcheck.stores import MemoryStore, SQLiteStore
from tests.support.browser import Browser
from tests.support.clock import FakeClock
from tests.support.server import serve
from tests.support.shop import create_shop

COOKIE = "__Host-session"


def serve_shop(
    tmp_path: Path, clock: FakeClock, **settings: object
) -> tuple[MemorySink, AbstractContextManager[str]]:
    """The test shop over SQLite with these settings; returns its event sink and server."""
    sink = MemorySink()
    config = SessionConfig(**settings)  # type: ignore[arg-type]
    manager = SessionManager(SQLiteStore(tmp_path / "s.db"), config, clock=clock, events=[sink])
    return sink, serve(create_shop(manager))


# -- rotation -------------------------------------------------------------------------------
def test_periodic_rotation_issues_a_new_token_and_the_old_one_works_in_grace(
    tmp_path: Path, clock: FakeClock
) -> None:
    sink, server = serve_shop(tmp_path, clock, rotation_interval=600, rotation_grace=30)
    with server as url, Browser(url) as b:
        b.post("/login?user=alice")
        first = b.cookies[COOKIE]
        clock.advance(300)
        assert b.get("/read").headers.get_list("set-cookie") == []  # not due yet
        clock.advance(301)
        r = b.get("/read")
        second = b.cookies[COOKIE]
        assert second != first
        assert r.json()["user_id"] == "alice"
        assert "session.rotated" in sink.names()
        # A concurrent request still carrying the old token, inside the grace window.
        clock.advance(10)
        with httpx.Client(base_url=url) as late:
            r = late.get("/read", headers={"Cookie": f"{COOKIE}={first}"})
            assert r.json()["user_id"] == "alice"
            assert r.json()["handle"] == b.get("/read").json()["handle"]
        assert b.get("/read").json()["user_id"] == "alice"


def test_rotated_token_replayed_after_grace_revokes_the_whole_session(
    tmp_path: Path, clock: FakeClock
) -> None:
    sink, server = serve_shop(tmp_path, clock, rotation_interval=600, rotation_grace=30)
    with server as url, Browser(url) as victim:
        victim.post("/login?user=alice")
        stolen = victim.cookies[COOKIE]
        clock.advance(601)
        victim.get("/read")  # rotates
        assert victim.cookies[COOKIE] != stolen
        clock.advance(31)
        with httpx.Client(base_url=url) as thief:
            r = thief.get("/read", headers={"Cookie": f"{COOKIE}={stolen}"})
            assert r.json()["user_id"] is None
        assert "session.theft_suspected" in sink.names()
        event = next(e for e in sink.events if e.name == "session.theft_suspected")
        assert event.user_id == "alice"
        # The victim's current token is dead too: the thief may hold it as well.
        assert victim.get("/read").json()["user_id"] is None


def test_login_logout_and_regenerate_leave_no_grace_window(
    tmp_path: Path, clock: FakeClock
) -> None:
    _, server = serve_shop(tmp_path, clock, rotation_interval=600, rotation_grace=30)
    with server as url, Browser(url) as b:
        b.post("/set", json={"n": 1})
        anonymous = b.cookies[COOKIE]
        b.post("/login?user=alice")
        logged_in = b.cookies[COOKIE]
        b.post("/regenerate")
        with httpx.Client(base_url=url) as other:
            for old in (anonymous, logged_in):
                r = other.get("/read", headers={"Cookie": f"{COOKIE}={old}"})
                assert r.json()["is_new"] is True


# -- re-authentication --------------------------------------------------------------------
async def test_levels_and_reauthentication() -> None:
    clock = FakeClock()
    manager = SessionManager(MemoryStore(), clock=clock)
    session = await manager.load(None)
    assert session.auth_level == 0
    session.login("alice", level=2)
    result = await manager.commit(session)
    session = await manager.load(result.token)
    assert (session.auth_level, session.auth_at) == (2, clock.now)
    clock.advance(100)
    session.reauthenticate(level=3)
    result2 = await manager.commit(session)
    assert result2.token is not None and result2.token != result.token
    session = await manager.load(result2.token)
    assert (session.user_id, session.auth_level, session.auth_at) == ("alice", 3, clock.now)
    assert (await manager.load(result.token)).is_new


# -- session limits -----------------------------------------------------------------------
def test_evict_oldest_ends_the_oldest_session(tmp_path: Path, clock: FakeClock) -> None:
    sink, server = serve_shop(tmp_path, clock, max_sessions_per_user=2)
    with server as url:
        browsers = [Browser(url) for _ in range(3)]
        for b in browsers:
            b.post("/login?user=alice")
            clock.advance(1)
        assert browsers[0].get("/read").json()["user_id"] is None
        assert browsers[1].get("/read").json()["user_id"] == "alice"
        assert browsers[2].get("/read").json()["user_id"] == "alice"
        assert any(
            e.name == "session.revoked" and e.detail.get("reason") == "session_limit"
            for e in sink.events
        )
        for b in browsers:
            b.close()


async def test_deny_refuses_a_login_over_the_limit_and_writes_nothing() -> None:
    clock = FakeClock()
    store = MemoryStore()
    manager = SessionManager(
        store, SessionConfig(max_sessions_per_user=1, session_limit_action="deny"), clock=clock
    )
    first = await manager.load(None)
    first.login("alice")
    await manager.commit(first)
    second = await manager.load(None)
    second["cart"] = ["hat"]
    second.login("alice")
    with pytest.raises(SessionLimitExceeded):
        await manager.commit(second)
    assert store.count_sync(clock.now) == 1


async def test_a_refused_switch_of_user_keeps_the_current_session() -> None:
    """Bob logging in over Alice's session on a shared device, refused by Bob's limit:
    Alice's session (and her draft) is untouched, not deleted before the refusal."""
    clock = FakeClock()
    manager = SessionManager(
        MemoryStore(),
        SessionConfig(max_sessions_per_user=1, session_limit_action="deny"),
        clock=clock,
    )
    elsewhere = await manager.load(None)
    elsewhere.login("bob")
    await manager.commit(elsewhere)
    alice = await manager.load(None)
    alice["draft"] = "long text"
    alice.login("alice")
    token = (await manager.commit(alice)).token
    switch = await manager.load(token)
    switch.login("bob")
    with pytest.raises(SessionLimitExceeded):
        await manager.commit(switch)
    kept = await manager.load(token)
    assert (kept.user_id, dict(kept)) == ("alice", {"draft": "long text"})


# -- client changes -----------------------------------------------------------------------
@pytest.mark.parametrize("action", ["log", "reauthenticate", "end"])
async def test_client_change(action: str) -> None:
    clock = FakeClock()
    sink = MemorySink()
    manager = SessionManager(
        MemoryStore(),
        SessionConfig(client_change_action=action),
        clock=clock,
        events=[sink],  # type: ignore[arg-type]
    )
    home = ClientInfo.from_raw("Firefox/140", "203.0.113.7")
    session = await manager.load(None, home)
    session.login("alice")
    token = (await manager.commit(session)).token
    # Same network, same browser: nothing happens.
    same = await manager.load(token, ClientInfo.from_raw("Firefox/140", "203.0.113.99"))
    assert same.user_id == "alice"
    assert "session.client_changed" not in sink.names()
    elsewhere = await manager.load(token, ClientInfo.from_raw("curl/8", "198.51.100.1"))
    (event,) = [e for e in sink.events if e.name == "session.client_changed"]
    assert event.detail["changed"] == "user_agent,ip_network"
    if action == "log":
        assert elsewhere.user_id == "alice"
        assert elsewhere.auth_at is not None
    elif action == "reauthenticate":
        assert elsewhere.user_id == "alice"
        assert elsewhere.auth_at is None
        assert elsewhere.needs_reauthentication
        await manager.commit(elsewhere)
        again = await manager.load(token, home)
        assert again.needs_reauthentication  # persisted until a new login
        again.login("alice")
        token = (await manager.commit(again)).token
        assert not (await manager.load(token, home)).needs_reauthentication
    else:
        assert elsewhere.is_new
        assert (await manager.load(token, home)).is_new


async def test_a_rotated_out_token_in_grace_gets_the_client_check_too() -> None:
    """The grace window of a rotation opens the live session to the old token; a copy of
    that token used from another client must meet the same client check as the current
    token, or a thief could skip ``client_change_action="end"`` for ``rotation_grace``."""
    clock = FakeClock()
    config = SessionConfig(rotation_interval=600, client_change_action="end")
    manager = SessionManager(MemoryStore(), config, clock=clock)
    home = ClientInfo.from_raw("Firefox/140", "203.0.113.7")
    session = await manager.load(None, home)
    session.login("alice")
    old = (await manager.commit(session)).token
    clock.advance(601)
    rotated = await manager.commit(await manager.load(old, home))
    assert rotated.token is not None
    assert (await manager.load(old, home)).user_id == "alice"  # the owner, in grace
    thief = ClientInfo.from_raw("curl/8", "198.51.100.1")
    assert (await manager.load(old, thief)).user_id is None
    assert (await manager.load(rotated.token, home)).user_id is None  # ended, as configured


# -- guessing -------------------------------------------------------------------------------
async def test_many_unknown_tokens_from_one_client_are_throttled() -> None:
    clock = FakeClock()
    manager = SessionManager(
        MemoryStore(), SessionConfig(unknown_token_limit=5, unknown_token_window=60), clock=clock
    )
    prober = ClientInfo.from_raw("x", "192.0.2.50")
    bystander = ClientInfo.from_raw("x", "192.0.2.51")
    for _ in range(5):
        assert (await manager.load(tokens.new_token(), prober)).is_new
    with pytest.raises(Throttled) as caught:
        await manager.load(tokens.new_token(), prober)
    assert 1 <= caught.value.retry_after <= 60
    assert (await manager.load(tokens.new_token(), bystander)).is_new
    clock.advance(61)
    assert (await manager.load("garbage", prober)).is_new


# -- size -----------------------------------------------------------------------------------
async def test_data_over_the_size_limit_fails_naming_the_size() -> None:
    store = MemoryStore()
    manager = SessionManager(store, SessionConfig(max_data_bytes=1000), clock=FakeClock())
    session = await manager.load(None)
    session["a"] = "x" * 500
    token = (await manager.commit(session)).token
    session = await manager.load(token)
    session["b"] = "y" * 600
    with pytest.raises(SessionTooLarge, match=r"\d+ bytes") as caught:
        await manager.commit(session)
    assert caught.value.size > 1000
    assert (await manager.load(token))["a"] == "x" * 500
    assert "b" not in await manager.load(token)


# -- what the edges answer ----------------------------------------------------------------
def test_a_probing_client_gets_429_over_http(tmp_path: Path, clock: FakeClock) -> None:
    _, server = serve_shop(tmp_path, clock, unknown_token_limit=3)
    with server as url, httpx.Client(base_url=url) as client:
        for _ in range(3):
            r = client.get("/read", headers={"Cookie": f"{COOKIE}={tokens.new_token()}"})
            assert r.status_code == 200
        r = client.get("/read", headers={"Cookie": f"{COOKIE}={tokens.new_token()}"})
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["cache-control"] == "no-store"
        # Without a token the client is an ordinary anonymous visitor.
        assert client.get("/read").status_code == 200


def test_a_login_over_the_limit_is_403_in_deny_mode(tmp_path: Path, clock: FakeClock) -> None:
    _, server = serve_shop(tmp_path, clock, max_sessions_per_user=1, session_limit_action="deny")
    with server as url, Browser(url) as first, Browser(url) as second:
        assert first.post("/login?user=alice").status_code == 200
        r = second.post("/login?user=alice")
        assert r.status_code == 403
        assert "too many active sessions" in r.text
        assert second.get("/read").json()["user_id"] is None
        assert first.get("/read").json()["user_id"] == "alice"


def test_logout_clears_site_data(tmp_path: Path, clock: FakeClock) -> None:
    _, server = serve_shop(tmp_path, clock)
    with server as url, Browser(url) as b:
        b.post("/login?user=alice")
        r = b.post("/logout")
        assert r.headers["clear-site-data"] == '"cache", "cookies", "storage"'
        assert r.headers["cache-control"] == "no-store"
        b.post("/login?user=alice")
        # A logout that leaves a new anonymous session (a flash message) keeps cookies.
        r = b.post("/logout?flash=bye")
        assert r.headers["clear-site-data"] == '"cache", "storage"'
        assert b.get("/read").json()["data"] == {"flash": "bye"}
        assert "clear-site-data" not in b.get("/read").headers


def test_clear_site_data_is_a_named_opt_out(tmp_path: Path, clock: FakeClock) -> None:
    _, server = serve_shop(tmp_path, clock, clear_site_data=False)
    with server as url, Browser(url) as b:
        b.post("/login?user=alice")
        assert "clear-site-data" not in b.post("/logout").headers


def websocket_app(manager: SessionManager) -> object:
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def feed(websocket: WebSocket) -> None:
        await websocket.accept()
        session = websocket.scope["session"]
        await websocket.send_text(f"user={session.user_id}")
        await websocket.receive_text()
        active = await manager.is_active(session.handle) if session.handle else False
        await websocket.send_text(f"active={active}")
        await websocket.close()

    shop = create_shop(manager)
    shop.router.routes.append(WebSocketRoute("/feed", feed))
    return shop


def test_websockets_get_their_session_and_foreign_origins_are_refused(
    tmp_path: Path, clock: FakeClock
) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    manager = SessionManager(SQLiteStore(tmp_path / "s.db"), clock=clock)
    with serve(websocket_app(manager)) as url, Browser(url) as b:
        b.post("/login?user=alice")
        cookie = f"{COOKIE}={b.cookies[COOKIE]}"
        ws_url = url.replace("http://", "ws://") + "/feed"
        own = url  # the page that opens the socket is on the app's own origin
        with connect(ws_url, additional_headers={"Cookie": cookie, "Origin": own}) as ws:
            assert ws.recv() == "user=alice"
            # The session is revoked while the connection is open; a cheap re-check sees it.
            handle = b.get("/read").json()["handle"]
            assert b.post(f"/revoke?handle={handle}").status_code == 200
            ws.send("check")
            assert ws.recv() == "active=False"
        for foreign in ("https://evil.example", "null"):
            with pytest.raises(InvalidStatus) as refused:
                connect(ws_url, additional_headers={"Cookie": cookie, "Origin": foreign})
            assert refused.value.response.status_code == 403


def test_sensitive_actions_demand_recent_authentication_and_levels(
    tmp_path: Path, clock: FakeClock
) -> None:
    _, server = serve_shop(tmp_path, clock)
    with server as url, Browser(url) as b:
        r = b.get("/account")
        assert (r.status_code, r.json()) == (401, {"error": "login_required"})
        assert r.headers["cache-control"] == "no-store"
        b.post("/login?user=alice")
        assert b.get("/account").json() == {"user": "alice"}
        assert b.post("/account/email").json() == {"changed": True}
        clock.advance(301)
        r = b.post("/account/email")
        assert (r.status_code, r.json()) == (
            401,
            {"error": "reauthentication_required", "max_age": 300},
        )
        r = b.post("/payout")
        assert (r.status_code, r.json()) == (
            401,
            {"error": "insufficient_auth_level", "required": 2, "current": 1},
        )
        before = b.cookies[COOKIE]
        b.post("/reauthenticate?level=2")  # the app verified a second factor
        assert b.cookies[COOKIE] != before  # privilege change: new token
        assert b.post("/account/email").json() == {"changed": True}
        assert b.post("/payout").json() == {"paid": True}


def test_no_token_or_hash_in_any_log_line_or_event_of_a_full_cycle(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Login, periodic rotation, a grace-window replay, theft detection, a CSRF refusal,
    logout: every log line (the events' LoggingSink included) and every event names
    sessions by handle only."""
    import hashlib
    import logging

    from coatcheck import LoggingSink

    caplog.set_level(logging.DEBUG)
    sink = MemorySink()
    config = SessionConfig(rotation_interval=600, rotation_grace=30)
    manager = SessionManager(
        SQLiteStore(tmp_path / "s.db"), config, clock=clock, events=[sink, LoggingSink()]
    )
    seen: list[str] = []
    with serve(create_shop(manager)) as url, Browser(url) as b:
        b.post("/set", json={"n": 1})
        b.post("/login?user=alice")
        seen.append(b.cookies[COOKIE])
        clock.advance(601)
        b.get("/read")  # periodic rotation: seen[-1] is now rotated out
        rotated_out = seen[-1]
        seen.append(b.cookies[COOKIE])
        assert rotated_out != seen[-1]
        with httpx.Client(base_url=url) as other:
            other.get("/read", headers={"Cookie": f"{COOKIE}={rotated_out}"})  # in grace
            # No CSRF token: refused, and the refusal is logged by handle.
            other.post("/set", json={"x": 1}, headers={"Cookie": f"{COOKIE}={seen[-1]}"})
        b.post("/logout")
        b.post("/login?user=alice")
        seen.append(b.cookies[COOKIE])
        clock.advance(601)
        b.get("/read")
        seen.append(b.cookies[COOKIE])
        clock.advance(60)
        with httpx.Client(base_url=url) as thief:
            thief.get("/read", headers={"Cookie": f"{COOKIE}={seen[-2]}"})  # after grace
    names = sink.names()
    for expected in ("session.login", "session.rotated", "session.logout", "csrf.rejected"):
        assert expected in names, expected
    assert "session.theft_suspected" in names
    server_lines = "\n".join(
        r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))
    )
    assert "session.rotated" in server_lines  # the LoggingSink did write
    text = server_lines + repr(sink.events)
    for token in seen:
        assert token not in text
        assert hashlib.sha256(token.encode()).hexdigest() not in text
