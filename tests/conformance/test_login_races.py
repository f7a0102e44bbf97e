"""Requests that race a login (or ``regenerate()``), through the manager, on every store
and both paths (issue 13).

A browser often has several requests of one session in flight: a cart addition sent just
before the login form, an image or an XHR. When the login's response moves the session to
a new token, the others still carry the old one. Before the fix, such a request answered
"clear the cookie" (deleting the new login cookie in the browser) and dropped its write
while answering success. Now:

- the login leaves a short-lived superseded marker under a key derived from the old one;
- a request with the old token that writes gets SessionConflict (409, retryable), and no
  result that would clear a cookie;
- one that only reads gets a fresh anonymous view, and nothing cleared either;
- a write lost to a revocation is a SessionConflict too, never a silent success.
"""

from __future__ import annotations

import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.core.events import MemorySink
from coatcheck.core.record import Patch, SessionRecord
from coatcheck.core.session import Session
from coatcheck.engine.manager import CommitResult
from coatcheck.errors import SessionConflict
from coatcheck.stores import HandleIndex
from coatcheck.stores.memory import MemoryStore
from tests.conformance.conftest import Driver, needs
from tests.support.clock import FakeClock

GRACE = 30.0
TOUCH_DUE = 181.0
"""Past the default touch interval (idle_timeout / 10 = 180 s): a read-only request writes."""


class Paths:
    """The manager on the same path (async or sync) as the store under test."""

    def __init__(self, store: Driver, config: SessionConfig | None = None) -> None:
        self.clock = FakeClock()
        self.sink = MemorySink()
        config = config or SessionConfig(rotation_grace=GRACE)
        self.manager = SessionManager(store.store, config, clock=self.clock, events=[self.sink])
        self.store = store
        self.sync = store.mode == "sync"

    async def load(self, token: str | None) -> Session:
        if self.sync:
            return self.manager.load_sync(token)
        return await self.manager.load(token)

    async def commit(self, session: Session) -> CommitResult:
        if self.sync:
            return self.manager.commit_sync(session)
        return await self.manager.commit(session)

    async def anonymous_cart(self) -> str:
        session = await self.load(None)
        session["cart"] = ["book"]
        token = (await self.commit(session)).token
        assert token is not None
        return token

    async def login(self, token: str, user_id: str = "alice") -> str:
        session = await self.load(token)
        session.login(user_id)
        new = (await self.commit(session)).token
        assert new is not None and new != token
        return new


async def test_a_write_racing_a_login_is_refused_and_clears_nothing(store: Driver) -> None:
    paths = Paths(store)
    old = await paths.anonymous_cart()
    writer = await paths.load(old)  # the cart addition, in flight when the login lands
    new = await paths.login(old)

    writer["cart"] = ["book", "pen"]
    with pytest.raises(SessionConflict) as raised:
        await paths.commit(writer)
    assert raised.value.reason == "superseded"
    assert raised.value.status == 409
    assert raised.value.retry_after is not None

    # The login stands, with the cart as the login found it: the lost write was reported.
    live = await paths.load(new)
    assert live.user_id == "alice"
    assert dict(live) == {"cart": ["book"]}


@needs(HandleIndex)
async def test_with_rotation_on_a_write_racing_a_login_is_refused_too(store: Driver) -> None:
    """With ``rotation_interval`` a failed write first looks for a rotation marker (a
    periodic rotation it would follow); a login leaves none, and its superseded marker
    answers as without rotation."""
    paths = Paths(store, SessionConfig(rotation_interval=600, rotation_grace=GRACE))
    old = await paths.anonymous_cart()
    writer = await paths.load(old)
    new = await paths.login(old)
    writer["cart"] = ["book", "pen"]
    with pytest.raises(SessionConflict) as raised:
        await paths.commit(writer)
    assert raised.value.reason == "superseded"
    late = await paths.load(old)
    assert late.user_id is None
    assert (await paths.commit(late)).clear is False
    assert dict(await paths.load(new)) == {"cart": ["book"]}


async def test_a_touch_racing_a_login_clears_nothing(store: Driver) -> None:
    paths = Paths(store)
    old = await paths.anonymous_cart()
    paths.clock.advance(TOUCH_DUE)
    reader = await paths.load(old)  # read-only, but its touch is due: it writes
    new = await paths.login(old)

    result = await paths.commit(reader)
    assert (result.token, result.clear) == (None, False)
    assert (await paths.load(new)).user_id == "alice"


async def test_the_old_token_after_a_login_opens_an_anonymous_view(store: Driver) -> None:
    paths = Paths(store)
    old = await paths.anonymous_cart()
    new = await paths.login(old)

    paths.clock.advance(GRACE - 1)
    late = await paths.load(old)  # sent before the browser had the new cookie
    assert late.user_id is None and dict(late) == {}
    assert late.is_new
    result = await paths.commit(late)
    assert (result.token, result.clear) == (None, False)

    late_writer = await paths.load(old)
    late_writer["cart"] = ["pen"]
    with pytest.raises(SessionConflict):
        await paths.commit(late_writer)
    assert dict(await paths.load(new)) == {"cart": ["book"]}


async def test_the_old_token_after_the_grace_window_is_cleared(store: Driver) -> None:
    paths = Paths(store)
    old = await paths.anonymous_cart()
    await paths.login(old)
    paths.clock.advance(GRACE + 1)
    stale = await paths.load(old)
    assert (await paths.commit(stale)).clear is True


async def test_regenerate_leaves_the_marker_too(store: Driver) -> None:
    paths = Paths(store)
    old = await paths.anonymous_cart()
    session = await paths.load(old)
    session.regenerate()
    new = (await paths.commit(session)).token
    assert new is not None and new != old

    late = await paths.load(old)
    assert late.user_id is None and dict(late) == {}
    assert (await paths.commit(late)).clear is False
    assert dict(await paths.load(new)) == {"cart": ["book"]}


async def test_a_write_racing_a_login_as_another_user_is_refused(store: Driver) -> None:
    """A login over another user's session replaces the record (a new handle): the racing
    write is refused the same way, and the new login's cookie is left alone."""
    paths = Paths(store)
    bobs = await paths.login(await paths.anonymous_cart(), "bob")
    writer = await paths.load(bobs)
    alices = await paths.login(bobs, "alice")

    writer["cart"] = ["pen"]
    with pytest.raises(SessionConflict):
        await paths.commit(writer)
    late = await paths.load(bobs)
    assert (await paths.commit(late)).clear is False
    assert (await paths.load(alices)).user_id == "alice"


async def test_two_logins_from_one_token(store: Driver) -> None:
    """A double-submitted login form: both requests carried the old token. The second
    one's marker finds the first's in place (refreshed, not a store failure), and the
    second still logs in."""
    paths = Paths(store)
    old = await paths.anonymous_cart()
    first, second = await paths.load(old), await paths.load(old)
    first.login("alice")
    second.login("alice")
    one = (await paths.commit(first)).token
    two = (await paths.commit(second)).token
    assert one is not None and two is not None and one != two
    assert (await paths.load(two)).user_id == "alice"
    late = await paths.load(old)
    assert late.user_id is None
    assert (await paths.commit(late)).clear is False


async def test_a_write_lost_to_a_revocation_is_refused(store: Driver) -> None:
    paths = Paths(store)
    old = await paths.login(await paths.anonymous_cart())
    writer = await paths.load(old)
    assert writer.handle is not None
    ender = await paths.load(old)
    ender.logout()  # a logout in another tab ends it while the write runs
    assert (await paths.commit(ender)).clear is True

    writer["cart"] = ["book", "pen"]
    with pytest.raises(SessionConflict) as raised:
        await paths.commit(writer)
    assert raised.value.reason == "gone"
    assert (await paths.load(old)).user_id is None  # not brought back


async def test_a_touch_lost_to_a_revocation_clears_the_cookie(store: Driver) -> None:
    paths = Paths(store)
    old = await paths.login(await paths.anonymous_cart())
    paths.clock.advance(TOUCH_DUE)
    reader = await paths.load(old)
    ender = await paths.load(old)
    ender.logout()
    await paths.commit(ender)
    assert (await paths.commit(reader)).clear is True


async def test_without_a_grace_window_no_marker_is_written(store: Driver) -> None:
    """``rotation_grace=0`` opts out of the marker (and of its write at login): a racing
    write is still refused, never dropped, and the old token is dead at once."""
    paths = Paths(store, SessionConfig(rotation_grace=0))
    old = await paths.anonymous_cart()
    writer = await paths.load(old)
    await paths.login(old)
    writer["cart"] = ["pen"]
    with pytest.raises(SessionConflict) as raised:
        await paths.commit(writer)
    assert raised.value.reason == "gone"
    assert (await paths.commit(await paths.load(old))).clear is True


class CountingStore(MemoryStore):
    """A memory store that counts the core operations it is asked for (one each is one
    round trip on a networked store)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def get_sync(self, key: str) -> SessionRecord | None:
        self.calls.append("get")
        return super().get_sync(key)

    def create_sync(self, record: SessionRecord) -> None:
        self.calls.append("create")
        super().create_sync(record)

    def apply_sync(self, key: str, patch: Patch) -> bool:
        self.calls.append("apply")
        return super().apply_sync(key, patch)

    def rename_sync(self, old_key: str, new_key: str, patch: Patch) -> bool:
        self.calls.append("rename")
        return super().rename_sync(old_key, new_key, patch)

    def taken(self) -> list[str]:
        calls, self.calls = self.calls, []
        return calls


@pytest.mark.parametrize("grace", [GRACE, 0.0])
def test_what_the_marker_costs(grace: float) -> None:
    """The promise of docs/performance.md: nothing on a live session's requests; one
    write at a login (before its rename); one read where a token opens nothing or a
    commit finds its record gone; none of it with ``rotation_grace=0``."""
    store = CountingStore()
    manager = SessionManager(store, SessionConfig(rotation_grace=grace), clock=FakeClock())
    session = manager.load_sync(None)
    session["cart"] = ["book"]
    old = manager.commit_sync(session).token
    assert store.taken() == ["create"]

    reader = manager.load_sync(old)
    assert manager.commit_sync(reader).token is None
    assert store.taken() == ["get"]  # a read-only request: one read
    writer = manager.load_sync(old)
    writer["cart"] = ["book", "pen"]
    manager.commit_sync(writer)
    assert store.taken() == ["get", "apply"]  # a write: one read, one write

    racing = manager.load_sync(old)
    login = manager.load_sync(old)
    login.login("alice")
    assert manager.commit_sync(login).token is not None
    marked = grace > 0
    assert store.taken() == ["get", "get", *(["create"] if marked else []), "rename"]

    racing["cart"] = ["lost"]
    with pytest.raises(SessionConflict):
        manager.commit_sync(racing)
    assert store.taken() == ["apply", *(["get"] if marked else [])]
    manager.load_sync(old)
    assert store.taken() == ["get", *(["get"] if marked else [])]
