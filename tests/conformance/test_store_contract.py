"""The store contract (stores/base.py), run against every store on both paths.

Each test states one promise a backend makes to the manager. A new backend passes this
file unchanged, against its real server, before it is usable: the core tests always, and
each test marked ``needs(...)`` when the store declares those capabilities.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from coatcheck.core import tokens
from coatcheck.core.record import Patch, SessionRecord
from coatcheck.stores import Countable, HandleIndex, Purgeable, UserIndex
from tests.conformance.conftest import Driver, needs

NOW = 1_800_000_000.0


def make_record(
    *,
    user_id: str | None = None,
    data: dict[str, Any] | None = None,
    created_at: float = NOW,
    expires_at: float = NOW + 1800,
    absolute_at: float = NOW + 43200,
) -> SessionRecord:
    return SessionRecord(
        key=tokens.storage_key(tokens.new_token()),
        handle=tokens.new_handle(),
        data=data if data is not None else {"n": 1},
        created_at=created_at,
        last_seen_at=created_at,
        expires_at=expires_at,
        absolute_at=absolute_at,
        user_id=user_id,
        auth_at=created_at if user_id else None,
        remember=False,
        user_agent="Mozilla/5.0 (X11; Linux x86_64)",
        ip="192.0.2.0",
        meta={"level": 1},
    )


def patch(
    set_items: dict[str, Any] | None = None,
    removed: set[str] | None = None,
    **fields: Any,
) -> Patch:
    items = set_items or {}
    return Patch(
        set_json={k: json.dumps(v) for k, v in items.items()},
        set_items=dict(items),
        removed=frozenset(removed or ()),
        fields=fields,
    )


async def test_unknown_key_is_none(store: Driver) -> None:
    assert await store.get(tokens.storage_key(tokens.new_token())) is None


async def test_create_then_get_round_trips_every_field(store: Driver) -> None:
    data = {
        "cart": [{"sku": "hat", "qty": 2}],
        "name": "Zoë ✓",
        "big": 12345678901234567,
        "ratio": 0.1,
        "flag": False,
        "nothing": None,
        "nested": {"a": {"b": [1, 2, 3]}},
    }
    record = make_record(user_id="alice", data=data)
    await store.create(record)
    loaded = await store.get(record.key)
    assert loaded == record


async def test_apply_changes_only_named_keys(store: Driver) -> None:
    record = make_record(data={"keep": 1, "drop": 2, "change": 3})
    await store.create(record)
    ok = await store.apply(
        record.key, patch({"change": [3], "new": {"x": None}}, {"drop"}, last_seen_at=NOW + 5)
    )
    assert ok is True
    loaded = await store.get(record.key)
    assert loaded is not None
    assert loaded.data == {"keep": 1, "change": [3], "new": {"x": None}}
    assert loaded.last_seen_at == NOW + 5
    assert loaded.created_at == record.created_at


async def test_apply_sets_null_distinct_from_removal(store: Driver) -> None:
    record = make_record(data={"a": 1, "b": 2})
    await store.create(record)
    await store.apply(record.key, patch({"a": None}, {"b"}))
    loaded = await store.get(record.key)
    assert loaded is not None and loaded.data == {"a": None}


async def test_apply_never_resurrects_a_missing_record(store: Driver) -> None:
    key = tokens.storage_key(tokens.new_token())
    assert await store.apply(key, patch({"a": 1}, expires_at=NOW + 10)) is False
    assert await store.get(key) is None


async def test_patches_from_the_same_base_both_survive(store: Driver) -> None:
    """Two requests loaded the same session and each changed a different key."""
    record = make_record(data={"base": 0})
    await store.create(record)
    await store.apply(record.key, patch({"tab1": "a"}))
    await store.apply(record.key, patch({"tab2": "b"}))
    loaded = await store.get(record.key)
    assert loaded is not None and loaded.data == {"base": 0, "tab1": "a", "tab2": "b"}


async def test_awkward_keys_are_plain_keys(store: Driver) -> None:
    keys = ['a"b', "a.b", "$.x", "[0]", "", "ключ", "a\\b", "*"]
    record = make_record(data={})
    await store.create(record)
    await store.apply(record.key, patch({k: i for i, k in enumerate(keys)}))
    await store.apply(record.key, patch({'a"b': "again"}, {"a.b"}))
    loaded = await store.get(record.key)
    assert loaded is not None
    expected = {k: i for i, k in enumerate(keys)}
    expected['a"b'] = "again"
    del expected["a.b"]
    assert loaded.data == expected


async def test_metadata_fields_and_meta_patch(store: Driver) -> None:
    record = make_record()
    await store.create(record)
    await store.apply(
        record.key,
        patch(
            user_id="bob",
            auth_at=NOW + 1,
            absolute_at=NOW + 99,
            expires_at=NOW + 50,
            remember=True,
            user_agent="curl/8",
            ip="2001:db8::",
            meta={"level": 2, "csrf": "x"},
        ),
    )
    loaded = await store.get(record.key)
    assert loaded is not None
    assert (loaded.user_id, loaded.auth_at, loaded.absolute_at, loaded.expires_at) == (
        "bob",
        NOW + 1,
        NOW + 99,
        NOW + 50,
    )
    assert loaded.remember is True
    assert (loaded.user_agent, loaded.ip) == ("curl/8", "2001:db8::")
    assert loaded.meta == {"level": 2, "csrf": "x"}
    assert loaded.data == record.data


async def test_rename_moves_record_and_applies_patch(store: Driver) -> None:
    record = make_record(data={"cart": ["hat"]})
    await store.create(record)
    new_key = tokens.storage_key(tokens.new_token())
    assert await store.rename(record.key, new_key, patch({"n": 2}, user_id="alice")) is True
    assert await store.get(record.key) is None
    moved = await store.get(new_key)
    assert moved is not None
    assert moved.key == new_key
    assert moved.handle == record.handle
    assert moved.user_id == "alice"
    assert moved.data == {"cart": ["hat"], "n": 2}


@needs(UserIndex)
async def test_rename_moves_the_user_index_along(store: Driver) -> None:
    record = make_record(user_id="alice")
    await store.create(record)
    new_key = tokens.storage_key(tokens.new_token())
    assert await store.rename(record.key, new_key, patch({"n": 2})) is True
    assert [r.key for r in await store.list_user("alice", NOW)] == [new_key]


async def test_a_patch_for_another_handle_changes_nothing(store: Driver) -> None:
    """``Patch.expect_handle``: with rotation on, a rotation marker (another handle) can
    come to sit under the key a request loaded; its patch must not land there."""
    record = make_record(data={"cart": ["hat"]})
    await store.create(record)
    stranger = tokens.new_handle()

    def guarded(handle: str, items: dict[str, Any] | None = None, **fields: Any) -> Patch:
        p = patch(items, **fields)
        p.expect_handle = handle
        return p

    new_key = tokens.storage_key(tokens.new_token())
    assert await store.apply(record.key, guarded(stranger, {"n": 2})) is False
    assert await store.apply(record.key, guarded(stranger, last_seen_at=NOW + 5)) is False
    assert await store.apply(record.key, guarded(stranger)) is False
    assert await store.rename(record.key, new_key, guarded(stranger, {"n": 3})) is False
    unchanged = await store.get(record.key)
    assert unchanged is not None
    assert (unchanged.data, unchanged.last_seen_at) == ({"cart": ["hat"]}, NOW)
    assert await store.get(new_key) is None

    assert await store.apply(record.key, guarded(record.handle, {"n": 2})) is True
    assert await store.apply(record.key, guarded(record.handle)) is True
    assert await store.rename(record.key, new_key, guarded(record.handle, {"n": 3})) is True
    moved = await store.get(new_key)
    assert moved is not None and moved.data == {"cart": ["hat"], "n": 3}


async def test_rename_of_unknown_key_fails_without_creating(store: Driver) -> None:
    old = tokens.storage_key(tokens.new_token())
    new = tokens.storage_key(tokens.new_token())
    assert await store.rename(old, new, patch({"a": 1})) is False
    assert await store.get(new) is None


async def test_delete(store: Driver) -> None:
    record = make_record()
    await store.create(record)
    assert await store.delete(record.key) is True
    assert await store.get(record.key) is None
    assert await store.delete(record.key) is False


@needs(HandleIndex)
async def test_get_by_handle(store: Driver) -> None:
    record = make_record(user_id="alice")
    await store.create(record)
    found = await store.get_by_handle(record.handle)
    assert found is not None and found.key == record.key
    assert await store.get_by_handle(tokens.new_handle()) is None


@needs(UserIndex)
async def test_list_user_returns_live_sessions_oldest_first(store: Driver) -> None:
    second = make_record(user_id="alice", created_at=NOW + 10)
    first = make_record(user_id="alice", created_at=NOW)
    expired = make_record(user_id="alice", expires_at=NOW - 1)
    other = make_record(user_id="bob")
    anonymous = make_record()
    for r in (second, first, expired, other, anonymous):
        await store.create(r)
    listed = await store.list_user("alice", NOW)
    assert [r.handle for r in listed] == [first.handle, second.handle]
    assert await store.list_user("nobody", NOW) == []


@needs(UserIndex)
async def test_user_index_follows_user_changes(store: Driver) -> None:
    record = make_record(user_id="alice")
    await store.create(record)
    await store.apply(record.key, patch(user_id="bob"))
    assert await store.list_user("alice", NOW) == []
    assert [r.handle for r in await store.list_user("bob", NOW)] == [record.handle]


@needs(HandleIndex)
async def test_delete_handle_returns_the_record(store: Driver) -> None:
    record = make_record(user_id="alice")
    await store.create(record)
    deleted = await store.delete_handle(record.handle)
    assert deleted is not None and deleted.handle == record.handle
    assert await store.get(record.key) is None
    assert await store.delete_handle(record.handle) is None


@needs(UserIndex)
async def test_delete_user_keeps_the_excepted_handle(store: Driver) -> None:
    mine = [make_record(user_id="alice") for _ in range(3)]
    theirs = make_record(user_id="bob")
    for r in (*mine, theirs):
        await store.create(r)
    assert await store.delete_user("alice", mine[0].handle) == 2
    assert [r.handle for r in await store.list_user("alice", NOW)] == [mine[0].handle]
    assert await store.delete_user("alice") == 1
    assert await store.list_user("alice", NOW) == []
    assert await store.get(theirs.key) is not None


@needs(Purgeable)
async def test_purge_deletes_only_expired_in_batches(store: Driver) -> None:
    expired = [make_record(user_id="alice", expires_at=NOW - i - 1) for i in range(7)]
    live = [make_record(user_id="alice", expires_at=NOW + 60) for _ in range(3)]
    for r in (*expired, *live):
        await store.create(r)
    assert await store.purge_expired(NOW, 3) == 7
    for r in expired:
        assert await store.get(r.key) is None
    for r in live:
        assert await store.get(r.key) is not None
    assert await store.purge_expired(NOW, 3) == 0


@needs(Countable)
async def test_count_counts_live_records(store: Driver) -> None:
    for i in range(4):
        await store.create(make_record(user_id="alice", expires_at=NOW - i))  # at or before
    for _ in range(3):
        await store.create(make_record(expires_at=NOW + 60))
    assert await store.count(NOW) == 3
    assert await store.count(NOW - 10) == 7


async def test_fifty_concurrent_patches_lose_nothing(store: Driver) -> None:
    record = make_record(data={})
    await store.create(record)
    if store.mode == "async":
        await asyncio.gather(
            *(store.store.apply(record.key, patch({f"k{i}": i})) for i in range(50))
        )
    else:
        barrier = threading.Barrier(50)

        def worker(i: int) -> None:
            barrier.wait()
            assert store.store.apply_sync(record.key, patch({f"k{i}": i}))

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    loaded = await store.get(record.key)
    assert loaded is not None
    assert loaded.data == {f"k{i}": i for i in range(50)}
