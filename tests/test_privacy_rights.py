"""Access, portability and erasure (GDPR Art. 15, 17, 20) on real stores with a frozen
clock: a user's export holds their sessions, their data and their activity, and nothing of
anyone else's; after erasure the export is empty but for the tombstone, the tombstone holds
no user id, and the user's old tokens open nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from coatcheck.core import events as ev
from coatcheck.core.client import ClientInfo
from coatcheck.core.events import SessionEvent
from coatcheck.errors import ConfigError
from coatcheck.privacy.registry import PrivacyRegistry
from coatcheck.privacy.tombstones import Tombstones
from tests.support.privacy import BACKENDS, SECRET, World, world
from tests.support.user_agents import CHROME_WINDOWS, FIREFOX_LINUX, KEPT, SAFARI_IPHONE

LAPTOP = (FIREFOX_LINUX, "203.0.113.77")
PHONE = (SAFARI_IPHONE, "2001:db8:1234:5678::1")
BOB = (CHROME_WINDOWS, "198.51.100.9")


@pytest.fixture(params=BACKENDS)
def w(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with world(request.param, tmp_path) as built:
        yield built


def alice_and_bob(w: World) -> dict[str, str]:
    """Alice signs in on a laptop, granting analytics there, then on a phone (where her
    choice is recalled), Bob on his own, granting marketing; at +60 s Alice's laptop comes
    back from another network (a security event); at +120 s she signs out on the phone."""
    tokens = {
        "laptop": w.log_in("alice", *LAPTOP, grant=("analytics",), note="alice-private-note"),
        "phone": w.log_in("alice", *PHONE, cart=["coat"]),
        "bob": w.log_in("bob", *BOB, grant=("marketing",), note="bob-private-note"),
    }
    w.clock.advance(60)
    moved = w.manager.load_sync(tokens["laptop"], ClientInfo.from_raw(LAPTOP[0], "192.0.2.5"))
    assert moved.user_id == "alice"
    w.manager.commit_sync(moved)
    w.clock.advance(60)
    phone = w.manager.load_sync(tokens["phone"], ClientInfo.from_raw(*PHONE))
    phone.logout()
    w.manager.commit_sync(phone)
    return tokens


async def test_export_holds_the_users_data_and_nobody_elses(w: World) -> None:
    alice_and_bob(w)
    document = await w.registry.export("alice")

    assert document["format"] == "coatcheck.export/1"
    assert document["user_id"] == "alice"
    assert document["exported_at"] == "2027-01-15T08:02:00Z"  # 1_800_000_000 + 120 s
    assert document["erased"] is None
    sessions = document["holders"]["sessions"]["sessions"]
    assert len(sessions) == 1  # the phone's session ended at logout
    [laptop] = sessions
    handle = laptop.pop("handle")
    assert laptop == {
        "live": True,
        "created_at": "2027-01-15T08:00:00Z",
        "last_seen_at": "2027-01-15T08:00:00Z",
        "expires_at": "2027-01-15T08:30:00Z",  # 30 min idle timeout
        "authenticated_at": "2027-01-15T08:00:00Z",
        "remember": False,
        "user_agent": "Firefox 121 / Linux / desktop",  # kept reduced (ua-parser)
        "ip": "203.0.113.0",  # kept truncated to /24
        "data": {"note": "alice-private-note"},
    }
    assert KEPT[LAPTOP[0]] == "Firefox 121 / Linux / desktop"
    # The laptop's grant, then the phone's login recalling it; times as ISO 8601.
    rows = document["holders"]["consent"]["rows"]
    assert [
        (r["handle"], r["user_id"], r["reason"], r["granted"], r["allowed"], r["consent_at"])
        for r in rows
    ] == [
        (handle, "alice", "choice", ["analytics"], ["analytics"], "2027-01-15T08:00:00Z"),
        (
            rows[1]["handle"],
            "alice",
            "recalled",
            ["analytics"],
            ["analytics"],
            "2027-01-15T08:00:00Z",
        ),
    ]
    assert rows[1]["handle"] not in (handle, None)
    assert {r["method"] for r in rows} == {"custom"}
    events = document["holders"]["activity"]["events"]
    assert [(e["at"], e["event"]) for e in events] == [
        ("2027-01-15T08:00:00Z", "session.login"),
        ("2027-01-15T08:00:00Z", "session.login"),
        ("2027-01-15T08:01:00Z", "session.client_changed"),
        ("2027-01-15T08:02:00Z", "session.logout"),
    ]
    assert events[0] == {
        "at": "2027-01-15T08:00:00Z",
        "kind": "session",
        "event": "session.login",
        "handle": handle,
        "user_agent": "Firefox 121 / Linux / desktop",
        "ip": "203.0.113.0",
    }
    assert events[1]["ip"] == "2001:db8:1234::"  # IPv6 kept to its /48
    assert events[2] == {
        "at": "2027-01-15T08:01:00Z",
        "kind": "security",
        "event": "session.client_changed",
        "handle": handle,
        "changed": "ip_network",
        "action": "log",
    }
    text = json.dumps(document)
    for other in ("bob", BOB[1], "198.51.100", "192.0.2.5", "203.0.113.77", "marketing"):
        assert other not in text  # nobody else's data (nor Bob's grant), no full IP
    for raw in (LAPTOP[0], PHONE[0], "rv:121.0"):
        assert raw not in text  # no full user agent


async def test_erase_leaves_an_empty_export_a_tombstone_and_dead_tokens(w: World) -> None:
    tokens = alice_and_bob(w)
    bob_before = await w.registry.export("bob")

    erasure = await w.registry.erase("alice")

    assert erasure.user_id == "alice"
    # Two logins, a client change and a logout; two consent rows (the laptop's grant, the
    # phone's recall); the laptop's session (the phone's ended at logout).
    assert dict(erasure.removed) == {"activity": 4, "consent": 2, "sessions": 1}
    assert erasure.erased_on == "2027-01-15"
    after = await w.registry.export("alice")
    assert after["erased"] == {"on": "2027-01-15"}
    assert after["holders"] == {
        "activity": {"events": []},
        "consent": {"rows": []},
        "sessions": {"sessions": []},
    }
    for name in ("laptop", "phone"):
        session = w.manager.load_sync(tokens[name], ClientInfo.from_raw(*LAPTOP))
        assert session.user_id is None and not session.is_authenticated
    assert await w.registry.is_erased("alice")
    assert not await w.registry.is_erased("bob")
    bob_after = await w.registry.export("bob")
    assert bob_after["holders"] == bob_before["holders"]
    assert [r["granted"] for r in bob_after["holders"]["consent"]["rows"]] == [["marketing"]]
    assert w.manager.load_sync(tokens["bob"], ClientInfo.from_raw(*BOB)).user_id == "bob"


async def test_the_erasure_itself_is_not_logged_about_the_erased_user(w: World) -> None:
    alice_and_bob(w)
    await w.registry.erase("alice")
    # The activity log writes on a thread: what was queued is written before the export.
    document = await w.registry.export("alice")
    assert document["holders"]["activity"]["events"] == []


async def test_a_tombstone_holds_no_user_id_only_a_keyed_hash_and_the_day(w: World) -> None:
    alice_and_bob(w)
    await w.registry.erase("alice")
    tombstones = w.registry.tombstones
    assert tombstones is not None
    rows = w.database.run(
        lambda cur: cur.execute(f"SELECT * FROM {tombstones.table}") and cur.fetchall()
    )
    assert len(rows) == 1
    subject, day = rows[0]
    assert day == "2027-01-15"
    assert "alice" not in subject and len(subject) == 64  # hex of HMAC-SHA256
    other_key = Tombstones(w.database, "another-secret-0123456789")
    assert not other_key.is_erased("alice")  # the hash needs the secret


async def test_erasure_is_refused_before_anything_is_deleted_without_a_secret(
    w: World,
) -> None:
    tokens = alice_and_bob(w)
    keyless = PrivacyRegistry(
        w.registry.holders, tombstones=Tombstones(w.database, None), clock=w.clock
    )
    with pytest.raises(ConfigError, match="COATCHECK_TOMBSTONE_SECRET"):
        await keyless.erase("alice")
    assert w.manager.load_sync(tokens["laptop"], ClientInfo.from_raw(*LAPTOP)).user_id == "alice"
    assert len((await w.registry.export("alice"))["holders"]["activity"]["events"]) == 4


def test_a_secret_shorter_than_16_characters_is_refused() -> None:
    from coatcheck.privacy.settings import PrivacySettings

    with pytest.raises(ConfigError, match="at least 16"):
        PrivacySettings(tombstone_secret="short")
    assert PrivacySettings(tombstone_secret=SECRET).tombstone_secret == SECRET


async def test_the_activity_log_keeps_user_events_and_listed_detail_only(w: World) -> None:
    activity = w.registry.holders[0]
    assert activity.name == "activity"
    sink = activity.sink  # type: ignore[attr-defined]
    sink(SessionEvent(ev.REJECTED, w.clock.now, None, None, {"reason": "unknown"}))
    sink(SessionEvent(ev.CREATED, w.clock.now, "h1", "alice"))  # not a kept event
    sink(SessionEvent(ev.REVOKED, w.clock.now, "h2", "alice", {"kept": "h3", "count": 2}))
    events = (await w.registry.export("alice"))["holders"]["activity"]["events"]
    assert events == [
        {
            "at": "2027-01-15T08:00:00Z",
            "kind": "security",
            "event": "session.revoked",
            "handle": "h2",
            "count": 2,
        }
    ]
    for name in (ev.EXPIRED, ev.THEFT_SUSPECTED, ev.LIMIT_REACHED, ev.ROTATED):
        sink(SessionEvent(name, w.clock.now, "h4", "carol"))
    kinds = [
        (e["event"], e["kind"])
        for e in (await w.registry.export("carol"))["holders"]["activity"]["events"]
    ]
    assert kinds == [  # expiries are history, theft and refused logins security events
        ("session.expired", "session"),
        ("session.theft_suspected", "security"),
        ("session.limit_reached", "security"),
    ]


async def test_with_the_activity_log_off_nothing_is_written_but_old_rows_still_count(
    w: World,
) -> None:
    from coatcheck.privacy.registry import Deployment
    from coatcheck.privacy.settings import PrivacySettings
    from coatcheck.service.holders import default_registry

    w.log_in("alice", *LAPTOP)
    w.registry.holders[0].flush()  # type: ignore[attr-defined]  (written by the log that is on)
    off = default_registry(
        Deployment(
            w.store,
            w.manager.config,
            w.clock,
            w.database,
            PrivacySettings(tombstone_secret=SECRET, activity_log=False),
        )
    )
    assert off.sinks == []
    events = (await off.export("alice"))["holders"]["activity"]["events"]
    assert [e["event"] for e in events] == ["session.login"]
    assert (await off.erase("alice")).removed["activity"] == 1


async def test_after_erasure_a_request_with_the_old_cookie_is_anonymous(w: World) -> None:
    """Through the ASGI edge: the browser keeps its cookie, the erasure ends the session
    behind it, and the next request is an anonymous visitor's."""
    import httpx

    from coatcheck.integrations.asgi import SessionMiddleware

    async def app(scope: Any, receive: Any, send: Any) -> None:
        session = scope["session"]
        if scope["path"] == "/login":
            session["note"] = "alice-private-note"
            session.login("alice")
        body = json.dumps({"user": session.user_id, "data": dict(session)}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    edge = SessionMiddleware(app, w.manager, csrf_exempt=["/login"])
    transport = httpx.ASGITransport(app=edge)
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as browser:
        assert (await browser.post("/login")).json()["user"] == "alice"
        assert (await browser.get("/")).json() == {
            "user": "alice",
            "data": {"note": "alice-private-note"},
        }
        await w.registry.erase("alice")
        assert browser.cookies.get("__Host-session")  # the browser still sends it
        assert (await browser.get("/")).json() == {"user": None, "data": {}}
