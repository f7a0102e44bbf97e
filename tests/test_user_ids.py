"""A user id is a user's: ``None`` (an anonymous visitor's ``session.user_id``), ``True`` or
an empty string never becomes the user "None", "True" or "" in a login, a device list or
a revocation; each is a clear ``InvalidUserId`` (a ``TypeError``) naming what was passed.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from coatcheck import InvalidUserId, SessionManager
from coatcheck.core.session import Session
from coatcheck.stores import MemoryStore
from tests.support.clock import FakeClock

NOT_USERS: list[Any] = [None, True, False, "", 1.5, b"alice", ["alice"]]


@pytest.fixture
def manager(clock: FakeClock) -> SessionManager:
    return SessionManager(MemoryStore(), clock=clock)


async def _logged_in(manager: SessionManager, user_id: str | int) -> Session:
    session = await manager.load(None)
    session.login(user_id)
    await manager.commit(session)
    return session


@pytest.mark.parametrize("user_id", NOT_USERS)
def test_login_refuses_what_is_not_a_user_id(user_id: Any, clock: FakeClock) -> None:
    session = Session(None, clock.now)
    with pytest.raises(InvalidUserId, match="user id") as caught:
        session.login(user_id)
    assert isinstance(caught.value, TypeError)
    assert repr(user_id) in str(caught.value)
    assert session.user_id is None and not session.intents.login


@pytest.mark.parametrize("user_id", NOT_USERS)
async def test_async_lookups_refuse_what_is_not_a_user_id(
    manager: SessionManager, user_id: Any
) -> None:
    victim = await _logged_in(manager, "None")  # a user literally named "None" exists
    with pytest.raises(InvalidUserId):
        await manager.list_user_sessions(user_id)
    with pytest.raises(InvalidUserId):
        await manager.revoke_user(user_id)
    assert victim.handle is not None and await manager.is_active(victim.handle)


@pytest.mark.parametrize("user_id", NOT_USERS)
async def test_sync_lookups_refuse_what_is_not_a_user_id(
    manager: SessionManager, user_id: Any
) -> None:
    victim = await _logged_in(manager, "None")
    with pytest.raises(InvalidUserId):
        manager.list_user_sessions_sync(user_id)
    with pytest.raises(InvalidUserId):
        manager.revoke_user_sync(user_id, except_handle=None)
    assert victim.handle is not None and manager.is_active_sync(victim.handle)


async def test_str_int_and_uuid_ids_name_the_same_user_everywhere(
    manager: SessionManager,
) -> None:
    by_int = await _logged_in(manager, 42)
    assert by_int.user_id == "42"
    assert [s.handle for s in await manager.list_user_sessions("42")] == [by_int.handle]
    assert [s.handle for s in manager.list_user_sessions_sync(42)] == [by_int.handle]
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    by_uuid = await _logged_in(manager, uid)  # type: ignore[arg-type]
    assert by_uuid.user_id == "12345678-1234-5678-1234-567812345678"
    assert await manager.revoke_user(uid) == 1  # type: ignore[arg-type]
    assert manager.revoke_user_sync(42) == 1
    assert await manager.list_user_sessions("42") == []
