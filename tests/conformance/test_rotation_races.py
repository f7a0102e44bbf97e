"""Requests that race a token rotation, through the manager, on every store and both paths.

With ``rotation_interval`` set, one request can move a session to a new token (leaving a
rotation marker under the old key) while another request of the same client, which loaded
the session a moment earlier, is still running. That second request must neither lose its
changes, nor log the user out, nor revive a session that was ended meanwhile.
"""

from __future__ import annotations

from coatcheck import SessionConfig, SessionManager
from coatcheck.core.events import MemorySink
from coatcheck.core.session import Session
from coatcheck.engine.manager import CommitResult
from coatcheck.stores import HandleIndex, UserIndex
from tests.conformance.conftest import Driver, needs
from tests.support.clock import FakeClock

pytestmark = needs(HandleIndex, UserIndex)
"""Rotation follows sessions by handle; the revocation race ends them by user."""

CONFIG = SessionConfig(rotation_interval=600, rotation_grace=30)


class Paths:
    """The manager on the same path (async or sync) as the store under test."""

    def __init__(self, store: Driver) -> None:
        self.clock = FakeClock()
        self.sink = MemorySink()
        self.manager = SessionManager(store.store, CONFIG, clock=self.clock, events=[self.sink])
        self.sync = store.mode == "sync"

    async def load(self, token: str | None) -> Session:
        if self.sync:
            return self.manager.load_sync(token)
        return await self.manager.load(token)

    async def commit(self, session: Session) -> CommitResult:
        if self.sync:
            return self.manager.commit_sync(session)
        return await self.manager.commit(session)

    async def revoke_user(self, user_id: str) -> int:
        if self.sync:
            return self.manager.revoke_user_sync(user_id)
        return await self.manager.revoke_user(user_id)

    async def logged_in(self, user_id: str = "alice") -> str:
        session = await self.load(None)
        session["cart"] = ["book"]
        session.login(user_id)
        token = (await self.commit(session)).token
        assert token is not None
        return token

    def events(self, name: str) -> int:
        return sum(1 for e in self.sink.events if e.name == name)


async def test_a_write_racing_a_rotation_lands_on_the_live_session(store: Driver) -> None:
    paths = Paths(store)
    old = await paths.logged_in()
    paths.clock.advance(601)  # a rotation is due for both requests
    a, b = await paths.load(old), await paths.load(old)
    b["last_page"] = "/checkout"

    rotated = await paths.commit(a)
    assert rotated.token is not None and rotated.token != old
    second = await paths.commit(b)
    # B keeps the client on A's new token: no second rotation, no cookie, no logout.
    assert (second.token, second.clear) == (None, False)

    live = await paths.load(rotated.token)
    assert live.user_id == "alice"
    assert dict(live) == {"cart": ["book"], "last_page": "/checkout"}
    in_grace = await paths.load(old)
    assert in_grace.user_id == "alice" and in_grace.handle == live.handle

    paths.clock.advance(31)  # the old token after the grace window: a copy was kept
    assert (await paths.load(old)).user_id is None
    assert paths.events("session.theft_suspected") == 1
    assert (await paths.load(rotated.token)).user_id is None


async def test_a_plain_write_racing_a_rotation_is_not_lost(store: Driver) -> None:
    paths = Paths(store)
    old = await paths.logged_in()
    paths.clock.advance(599)
    b = await paths.load(old)  # just before the rotation is due
    assert not b.intents.rotate
    paths.clock.advance(2)
    a = await paths.load(old)
    assert a.intents.rotate
    b["coupon"] = "WINTER"
    rotated = await paths.commit(a)
    assert rotated.token is not None
    assert (await paths.commit(b)).clear is False
    assert dict(await paths.load(rotated.token)) == {"cart": ["book"], "coupon": "WINTER"}


async def test_a_logout_racing_a_rotation_ends_the_session(store: Driver) -> None:
    paths = Paths(store)
    old = await paths.logged_in()
    paths.clock.advance(601)
    a, b = await paths.load(old), await paths.load(old)
    rotated = await paths.commit(a)
    assert rotated.token is not None
    b.logout()
    assert (await paths.commit(b)).clear is True
    assert (await paths.load(rotated.token)).user_id is None
    assert (await paths.load(old)).user_id is None


async def test_regenerate_racing_a_rotation_moves_the_live_session(store: Driver) -> None:
    paths = Paths(store)
    old = await paths.logged_in()
    paths.clock.advance(601)
    a, b = await paths.load(old), await paths.load(old)
    rotated = await paths.commit(a)
    b.regenerate()  # a privilege change: B needs a token of its own
    regenerated = await paths.commit(b)
    assert regenerated.token is not None
    session = await paths.load(regenerated.token)
    assert (session.user_id, dict(session)) == ("alice", {"cart": ["book"]})
    assert rotated.token is not None
    assert (await paths.load(rotated.token)).user_id is None  # regenerated away


async def test_a_session_revoked_meanwhile_is_not_revived(store: Driver) -> None:
    """A revocation ("sign out everywhere", theft detection) between a request's load and
    its commit wins over that request's regenerate() or periodic rotation."""
    for intent in ("regenerate", "rotation"):
        paths = Paths(store)
        old = await paths.logged_in()
        if intent == "rotation":
            paths.clock.advance(601)
        session = await paths.load(old)
        if intent == "regenerate":
            session.regenerate()
        assert await paths.revoke_user("alice") == 1
        result = await paths.commit(session)
        assert (result.token, result.clear) == (None, True), intent
        if paths.sync:
            assert paths.manager.list_user_sessions_sync("alice") == [], intent
        else:
            assert await paths.manager.list_user_sessions("alice") == [], intent
