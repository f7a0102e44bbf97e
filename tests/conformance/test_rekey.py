"""``coatcheck rekey`` and ``stores.rekey``: every record re-sealed under the newest data key
while writers run, nothing lost, and afterwards the old key can be dropped.

Real stores (SQLite, PostgreSQL, Redis through the conformance factories; Memcached for
the refusal), real threads, the real command through Click's runner.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coatcheck.cli import build_cli
from coatcheck.core.atomic import INCR
from coatcheck.core.record import Patch, SessionRecord, encode_value
from coatcheck.security.sealing import key_id, new_key, parse_keys
from coatcheck.stores import SQLiteStore, Store
from coatcheck.stores.encrypted import PREFIX, encrypted
from coatcheck.stores.rekey import Tally, rekey_page
from tests.conformance.factories import local, memcached, postgres, redis
from tests.conformance.test_store_contract import NOW, make_record

OLD, NEW = new_key(), new_key()
OLD_ONLY = parse_keys(f"old:{OLD}")
BOTH = parse_keys(f"new:{NEW},old:{OLD}")
NEW_ONLY = parse_keys(f"new:{NEW}")

INNER: dict[str, Callable[[Path], contextlib.AbstractContextManager[Any]]] = {
    "sqlite": local.sqlite_store,
    "postgres": postgres.postgres_store,
    "redis": redis.redis_store,
    "redis-cluster": redis.redis_cluster_store,  # a cursor naming its nodes, page by page
}

RECORDS = 40
WRITERS = 4
ROUNDS = 15


def kids(inner: Store, key: str) -> set[str | None]:
    """The key ids of the raw stored values of one record (None: a value in clear)."""
    record = inner.get_sync(key)
    assert record is not None
    return {
        key_id(v[len(PREFIX) :]) if isinstance(v, str) and v.startswith(PREFIX) else None
        for v in record.data.values()
    }


def write(store: Store, record: SessionRecord, writer: int, round_: int) -> None:
    """One request's delta: ``n`` incremented (every writer: the same key), ``w<writer>``
    set (each writer its own key)."""
    key = f"w{writer}"
    patch = Patch(
        {key: encode_value(key, round_)},
        {key: round_},
        frozenset(),
        {"last_seen_at": NOW + 1},
        None,
        ((INCR, "n", 1, "1"),),
        64 * 1024,
        record.handle,
    )
    assert store.apply_sync(record.key, patch)


@pytest.mark.parametrize("which", sorted(INNER))
def test_rekey_under_concurrent_writers_loses_nothing_and_the_old_key_can_go(
    which: str, tmp_path: Path
) -> None:
    with INNER[which](tmp_path) as inner:
        before = encrypted(inner, OLD_ONLY)
        records = [make_record(data={"n": 0, "cart": [f"item-{i}"]}) for i in range(RECORDS)]
        for record in records:
            before.create_sync(record)
        assert all(kids(inner, r.key) == {"old"} for r in records)

        after = encrypted(inner, BOTH)  # the new key put first: writes seal with it
        start = threading.Barrier(WRITERS + 1)
        failures: list[BaseException] = []

        def writer(w: int) -> None:
            start.wait()
            try:
                for round_ in range(ROUNDS):
                    for record in records:
                        write(after, record, w, round_)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
        for thread in threads:
            thread.start()
        start.wait()
        tally, cursor = Tally(), ""
        pages = 0
        while cursor is not None:
            cursor = rekey_page(after, cursor, 7, tally)
            pages += 1
        for thread in threads:
            thread.join()
        assert failures == []
        # 40 records in pages of 7: at least 6 pages (Redis' SCAN may take more).
        assert pages >= 6 and tally.seen >= RECORDS and tally.unreadable == 0

        # The old key dropped: every session reads, with every write of every writer.
        dropped = encrypted(inner, NEW_ONLY)
        for i, record in enumerate(records):
            got = dropped.get_sync(record.key)
            assert got is not None
            expected = {"n": WRITERS * ROUNDS, "cart": [f"item-{i}"]}
            expected |= {f"w{w}": ROUNDS - 1 for w in range(WRITERS)}
            assert got.data == expected
            assert kids(inner, record.key) == {"new"}


def test_rekey_reseals_values_written_in_clear(tmp_path: Path) -> None:
    """A value stored before the data keys were set is sealed by rekey."""
    with local.sqlite_store(tmp_path) as inner:
        record = make_record(data={"cart": ["hat"], "n": 3})
        inner.create_sync(record)
        assert kids(inner, record.key) == {None}
        store = encrypted(inner, BOTH)
        tally = Tally()
        assert rekey_page(store, "", 10, tally) is None
        assert (tally.resealed, tally.current) == (1, 0)
        assert kids(inner, record.key) == {"new"}
        got = encrypted(inner, NEW_ONLY).get_sync(record.key)
        assert got is not None and got.data == {"cart": ["hat"], "n": 3}
        # A second walk finds nothing to do.
        again = Tally()
        rekey_page(store, "", 10, again)
        assert (again.resealed, again.current) == (0, 1)


@contextlib.contextmanager
def sqlite_sessions(tmp_path: Path, count: int) -> Iterator[tuple[str, list[SessionRecord]]]:
    path = tmp_path / "sessions.db"
    inner = SQLiteStore(path)
    try:
        old = encrypted(inner, OLD_ONLY)
        records = [make_record(data={"cart": [f"item-{i}"]}) for i in range(count)]
        for record in records:
            old.create_sync(record)
        yield f"sqlite:///{path}", sorted(records, key=lambda r: r.key)
    finally:
        inner.close_sync()


def rekey_cli(*args: str, keys: str) -> Any:
    env = {"COATCHECK_DATA_KEYS": keys}
    return CliRunner().invoke(build_cli(), ["rekey", *args], env=env, catch_exceptions=False)


def test_the_rekey_command_reseals_every_session_then_the_old_key_can_go(tmp_path: Path) -> None:
    cursor_file = tmp_path / "rekey.cursor"
    with sqlite_sessions(tmp_path, 12) as (url, records):
        result = rekey_cli(
            "--store", url, "--batch", "5", "--cursor-file", str(cursor_file),
            keys=f"new:{NEW},old:{OLD}",
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "Re-sealed 12 sessions under key 'new'" in result.output
        assert "12/12" in result.output  # the progress bar, at its end
        assert not cursor_file.exists()
        inner = SQLiteStore(url.removeprefix("sqlite:///"))
        try:
            dropped = encrypted(inner, NEW_ONLY)
            for record in records:
                got = dropped.get_sync(record.key)
                assert got is not None and got.data == record.data
                assert kids(inner, record.key) == {"new"}
            raw = Path(url.removeprefix("sqlite:///")).read_bytes()
            assert b"item-" not in raw
        finally:
            inner.close_sync()


def test_the_rekey_command_resumes_from_its_cursor_file(tmp_path: Path) -> None:
    cursor_file = tmp_path / "rekey.cursor"
    with sqlite_sessions(tmp_path, 10) as (url, records):
        # An interrupted run under the same newest key left the cursor after the 4th key.
        cursor_file.write_text(json.dumps({"kid": "new", "cursor": records[3].key}))
        result = rekey_cli(
            "--store", url, "--cursor-file", str(cursor_file), keys=f"new:{NEW},old:{OLD}"
        )
        assert result.exit_code == 0, result.output
        assert "Resuming from the cursor" in result.output
        assert "Re-sealed 6 sessions" in result.output
        inner = SQLiteStore(url.removeprefix("sqlite:///"))
        try:
            assert [kids(inner, r.key) for r in records] == [{"old"}] * 4 + [{"new"}] * 6
        finally:
            inner.close_sync()
        # Started afresh (no file left), the walk finds the first four.
        result = rekey_cli(
            "--store", url, "--cursor-file", str(cursor_file), keys=f"new:{NEW},old:{OLD}"
        )
        assert result.exit_code == 0, result.output
        assert "Re-sealed 4 sessions" in result.output and "6 already were" in result.output


def test_rekey_refuses_memcached_by_name(tmp_path: Path) -> None:
    with memcached.memcached_store(tmp_path):
        from tests.support.memcached_server import shared_memcached

        url = shared_memcached().url
    result = rekey_cli("--store", url, "--cursor-file", str(tmp_path / "c"), keys=f"new:{NEW}")
    assert result.exit_code == 1
    assert "MemcachedStore cannot enumerate its records" in result.output
    assert "re-sealed under the newest key by its next write" in result.output
    assert "Traceback" not in result.output


def test_rekey_refuses_a_store_without_data_keys(tmp_path: Path) -> None:
    with sqlite_sessions(tmp_path, 1) as (url, _):
        result = CliRunner().invoke(
            build_cli(), ["rekey", "--store", url], env={"COATCHECK_DATA_KEYS": ""}
        )
        assert result.exit_code == 1
        assert "set COATCHECK_DATA_KEYS" in result.output
