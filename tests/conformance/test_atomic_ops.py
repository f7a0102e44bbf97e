"""Atomic operations (``Patch.ops``) and the size limit (``Patch.max_bytes``), applied in
the store with the rest of the delta, on every store and both paths.

The promise: an ``incr``, ``append`` or ``add_to_set`` acts on the value the store holds
when the patch lands, so concurrent requests of ONE session never lose each other's
additions; a type clash or a delta over the limit refuses the whole patch (nothing of it
lands, nothing stored is lost); and the limit holds against concurrent writers of
different keys, which each pass the check the engine makes on its own copy.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.core.atomic import (
    ADD_TO_SET,
    APPEND,
    INCR,
    OperationTypeError,
    SwapRefused,
    swap_op,
)
from coatcheck.core.record import Patch, encode_value
from coatcheck.errors import SessionDataError, SessionTooLarge
from tests.conformance.conftest import Driver
from tests.conformance.test_store_contract import NOW, make_record
from tests.support.clock import FakeClock


def ops_patch(
    *ops: tuple[str, str, Any],
    set_items: dict[str, Any] | None = None,
    removed: frozenset[str] = frozenset(),
    max_bytes: int | None = None,
) -> Patch:
    items = set_items or {}
    return Patch(
        {k: encode_value(k, v) for k, v in items.items()},
        dict(items),
        removed,
        {"last_seen_at": NOW + 1},
        None,
        tuple((kind, key, arg, encode_value(key, arg)) for kind, key, arg in ops),
        max_bytes,
    )


async def stored(store: Driver, key: str) -> dict[str, Any]:
    record = await store.get(key)
    assert record is not None
    return record.data


async def test_incr_counts_from_zero_and_from_the_stored_value(store: Driver) -> None:
    record = make_record(data={"n": 5})
    await store.create(record)
    patch = ops_patch((INCR, "n", 3), (INCR, "visits", 1), (INCR, "n", -10))
    assert await store.apply(record.key, patch)
    assert await stored(store, record.key) == {"n": -2, "visits": 1}


async def test_append_starts_a_list_and_extends_one(store: Driver) -> None:
    record = make_record(data={"cart": [{"sku": "hat"}]})
    await store.create(record)
    patch = ops_patch(
        (APPEND, "cart", {"sku": "scarf", "qty": 2}),
        (APPEND, "log", "first"),
        (APPEND, "log", ["nested", 1]),
        (APPEND, "cart", None),
    )
    assert await store.apply(record.key, patch)
    assert await stored(store, record.key) == {
        "cart": [{"sku": "hat"}, {"sku": "scarf", "qty": 2}, None],
        "log": ["first", ["nested", 1]],
    }


async def test_add_to_set_skips_json_equal_elements(store: Driver) -> None:
    # 1.0 is stored: the number 1 is already there; True, "1" and None are not numbers.
    record = make_record(data={"tags": ["a", 1.0, False]})
    await store.create(record)
    patch = ops_patch(
        (ADD_TO_SET, "tags", "a"),
        (ADD_TO_SET, "tags", 1),
        (ADD_TO_SET, "tags", True),
        (ADD_TO_SET, "tags", "1"),
        (ADD_TO_SET, "tags", None),
        (ADD_TO_SET, "tags", None),
        (ADD_TO_SET, "tags", False),
        (ADD_TO_SET, "new", 7),
        (ADD_TO_SET, "new", 7),
    )
    assert await store.apply(record.key, patch)
    assert await stored(store, record.key) == {
        "tags": ["a", 1.0, False, True, "1", None],
        "new": [7],
    }


async def test_ops_land_with_the_writes_and_removals_of_the_same_patch(store: Driver) -> None:
    record = make_record(data={"n": 1, "gone": True, "cart": []})
    await store.create(record)
    patch = ops_patch(
        (INCR, "n", 1),
        (APPEND, "cart", "book"),
        set_items={"page": "/checkout"},
        removed=frozenset({"gone"}),
        max_bytes=65536,
    )
    assert await store.apply(record.key, patch)
    assert await stored(store, record.key) == {"n": 2, "cart": ["book"], "page": "/checkout"}


async def test_ops_ride_a_rename(store: Driver) -> None:
    record = make_record(data={"n": 1})
    await store.create(record)
    new_key = make_record().key
    assert await store.rename(record.key, new_key, ops_patch((INCR, "n", 41)))
    assert await store.get(record.key) is None
    assert await stored(store, new_key) == {"n": 42}


@pytest.mark.parametrize(
    ("data", "op", "problem"),
    [
        ({"n": "five"}, (INCR, "n", 1), "a string"),
        ({"n": 1.5}, (INCR, "n", 1), "a float"),
        ({"n": True}, (INCR, "n", 1), "a bool"),
        ({"n": [1]}, (INCR, "n", 1), "a list"),
        ({"n": 2**53 - 1}, (INCR, "n", 1), "beyond"),
        ({"n": {"a": 1}}, (APPEND, "n", 1), "an object"),
        ({"n": "text"}, (APPEND, "n", 1), "a string"),
        ({"n": None}, (ADD_TO_SET, "n", 1), "null"),
    ],
)
async def test_a_type_clash_refuses_the_whole_patch_naming_the_key(
    store: Driver, data: dict[str, Any], op: tuple[str, str, Any], problem: str
) -> None:
    record = make_record(data={**data, "kept": [1]})
    await store.create(record)
    patch = ops_patch((APPEND, "kept", 2), op, set_items={"other": "x"})
    with pytest.raises(OperationTypeError, match=rf"session\.{op[0]}\('n'.*{problem}") as caught:
        await store.apply(record.key, patch)
    assert isinstance(caught.value, SessionDataError) and caught.value.key == "n"
    assert await stored(store, record.key) == {**data, "kept": [1]}


async def test_a_patch_over_max_bytes_is_refused_whole(store: Driver) -> None:
    record = make_record(data={"n": 1})
    await store.create(record)
    # {"n":1,"a":"x...x"} with 600 x's: 6 + 1 + 4 + 602 + 1 = 614 bytes, under 1000.
    assert await store.apply(record.key, ops_patch(set_items={"a": "x" * 600}, max_bytes=1000))
    # Another 600 bytes under "b" would make 1,221 bytes: refused, "n" not incremented.
    over = ops_patch((INCR, "n", 1), set_items={"b": "y" * 600}, max_bytes=1000)
    with pytest.raises(SessionTooLarge) as caught:
        await store.apply(record.key, over)
    assert caught.value.status == 413 and caught.value.limit == 1000
    assert caught.value.size > 1000
    assert await stored(store, record.key) == {"n": 1, "a": "x" * 600}
    # An append that would pass the limit is refused as well; a removal always lands.
    grow = ops_patch((APPEND, "a2", "z" * 500), max_bytes=1000)
    with pytest.raises(SessionTooLarge):
        await store.rename(record.key, make_record().key, grow)
    shrink = ops_patch(set_items={"b": "y" * 300}, removed=frozenset({"a"}), max_bytes=1000)
    assert await store.apply(record.key, shrink)
    assert await stored(store, record.key) == {"n": 1, "b": "y" * 300}
    # Close to the limit, a value replaced by a longer one is measured as the result:
    # {"n":1,"b":"y...y"} with 980 y's is 6 + 1 + 4 + 982 + 1 = 994 bytes, under 1000.
    assert await store.apply(record.key, ops_patch(set_items={"b": "y" * 980}, max_bytes=1000))
    assert await stored(store, record.key) == {"n": 1, "b": "y" * 980}


def swap_patch(key: str, expected: Any, value: Any, **sets: Any) -> Patch:
    """A ``swap`` of ``key`` from ``expected`` (MISSING_VALUE: the key is missing) to
    ``value``, with ``sets`` written beside it."""
    was = None if expected is MISSING_VALUE else encode_value(key, expected)
    op = swap_op(key, was, value, encode_value(key, value))
    patch = ops_patch(set_items=sets)
    patch.ops = (op,)
    return patch


MISSING_VALUE = object()


async def test_a_swap_lands_only_on_the_value_it_expects(store: Driver) -> None:
    """The store wrapper's compare-and-set (``atomic.swap``), on every store."""
    record = make_record(data={"a": "x", "l": [1, "two"]})
    await store.create(record)
    assert await store.apply(record.key, swap_patch("a", "x", "y", s=1))
    assert await stored(store, record.key) == {"a": "y", "l": [1, "two"], "s": 1}
    # Another value than expected (a write landed since the read): the whole patch refused.
    with pytest.raises(SwapRefused) as caught:
        await store.apply(record.key, swap_patch("a", "x", "z", s=2))
    assert caught.value.key == "a"
    with pytest.raises(SwapRefused):
        await store.apply(record.key, swap_patch("b", "x", 1))  # expected a value: none
    with pytest.raises(SwapRefused):
        await store.apply(record.key, swap_patch("a", MISSING_VALUE, 1))  # expected none
    assert await stored(store, record.key) == {"a": "y", "l": [1, "two"], "s": 1}
    # A missing key expected missing, a list expected as it is.
    assert await store.apply(record.key, swap_patch("b", MISSING_VALUE, {"k": [True]}))
    assert await store.apply(record.key, swap_patch("l", [1, "two"], [3]))
    assert await stored(store, record.key) == {"a": "y", "l": [3], "s": 1, "b": {"k": [True]}}


async def warm(store: Driver, key: str, n: int) -> None:
    """Open ``n`` connections of an async pool before a concurrent run, so the run tests
    the store's writes, not how fast a loaded machine connects twenty sockets at once
    (a connect storm can pass ``connect_timeout``; a retry here is no retry of a write)."""
    if store.mode != "async":
        return
    for _ in range(5):
        results = await asyncio.gather(*(store.get(key) for _ in range(n)), return_exceptions=True)
        if not any(isinstance(r, BaseException) for r in results):
            return
        await asyncio.sleep(0.2)


async def run_all(store: Driver, jobs: list[Any]) -> list[Any]:
    """Run ``jobs`` (coroutine functions of no argument) at once: threads released by one
    barrier on the sync path (each makes its own blocking store calls), one
    ``asyncio.gather`` on the async path. Exceptions are returned, not raised."""
    if store.mode == "async":
        return list(await asyncio.gather(*(job() for job in jobs), return_exceptions=True))
    results: list[Any] = [None] * len(jobs)
    start = threading.Barrier(len(jobs))

    def worker(i: int) -> None:
        start.wait()
        try:
            results[i] = asyncio.run(jobs[i]())
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


async def test_fifty_concurrent_cart_additions_to_one_session_keep_all_fifty(
    store: Driver,
) -> None:
    manager = SessionManager(store.store, SessionConfig(), clock=FakeClock())
    sync = store.mode == "sync"
    first = manager.load_sync(None) if sync else await manager.load(None)
    first["cart"] = []
    token = (manager.commit_sync(first) if sync else await manager.commit(first)).token
    assert token is not None

    def addition(i: int) -> Any:
        async def job() -> None:
            if sync:
                session = manager.load_sync(token)
                session.append("cart", {"sku": f"item-{i}"})
                session.incr("count")
                manager.commit_sync(session)
            else:
                session = await manager.load(token)
                session.append("cart", {"sku": f"item-{i}"})
                session.incr("count")
                await manager.commit(session)

        return job

    await warm(store, tokens.storage_key(token), 50)
    results = await run_all(store, [addition(i) for i in range(50)])
    assert results == [None] * 50
    data = await stored(store, tokens.storage_key(token))
    assert sorted(item["sku"] for item in data["cart"]) == sorted(f"item-{i}" for i in range(50))
    assert data["count"] == 50


async def test_twenty_concurrent_60kb_writers_cannot_pass_the_limit(store: Driver) -> None:
    record = make_record(data={"n": 1})
    await store.create(record)
    limit = 64 * 1024

    def writer(i: int) -> Any:
        async def job() -> bool:
            patch = ops_patch(set_items={f"k{i}": "v" * 60_000}, max_bytes=limit)
            return bool(await store.apply(record.key, patch))

        return job

    await warm(store, record.key, 20)
    results = await run_all(store, [writer(i) for i in range(20)])
    # {"n":1} plus one 60,000-character value fits in 64 KiB; any two are 120 KB.
    assert results.count(True) == 1, results
    assert all(isinstance(r, SessionTooLarge) for r in results if r is not True), results
    data = await stored(store, record.key)
    assert len(data) == 2 and len(json.dumps(data).encode()) <= limit


async def test_twenty_concurrent_requests_of_60kb_keep_the_session_under_64_kib(
    store: Driver,
) -> None:
    """Through the manager: each request loads the small session, so the engine's own
    check passes for all twenty; the store's, made with the write, refuses all but one."""
    manager = SessionManager(store.store, SessionConfig(), clock=FakeClock())
    sync = store.mode == "sync"
    first = manager.load_sync(None) if sync else await manager.load(None)
    first["n"] = 1
    token = (manager.commit_sync(first) if sync else await manager.commit(first)).token
    assert token is not None
    sessions = [manager.load_sync(token) if sync else await manager.load(token) for _ in range(20)]

    def writer(i: int) -> Any:
        async def job() -> bool:
            session = sessions[i]
            session[f"k{i}"] = "v" * 60_000
            if sync:
                manager.commit_sync(session)
            else:
                await manager.commit(session)
            return True

        return job

    await warm(store, tokens.storage_key(token), 20)
    results = await run_all(store, [writer(i) for i in range(20)])
    assert results.count(True) == 1, results
    assert all(isinstance(r, SessionTooLarge) for r in results if r is not True), results
    data = await stored(store, tokens.storage_key(token))
    assert len(data) == 2 and data["n"] == 1
