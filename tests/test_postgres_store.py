"""PostgresStore beyond the shared contract: schema migrations, several sweepers at once,
what the table holds after real HTTP traffic, and failures that must become 503.

Everything runs against a real PostgreSQL: the shared server on 127.0.0.1:5432 (skipped,
hence failed under CI, when it is down) or a private cluster started here.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from psycopg import sql

from coatcheck import SessionConfig, SessionDataError, SessionManager, StoreUnavailable
from coatcheck.core import tokens
from coatcheck.core.record import Patch, SessionRecord
from coatcheck.errors import StoreURLError
from coatcheck.stores import from_url
from coatcheck.stores.postgres import MIGRATION_LOCK, SCHEMA_VERSION, PostgresStore
from tests.support.browser import Browser, parse_set_cookie
from tests.support.clock import FakeClock
from tests.support.forking import assert_each_process_reads_its_own
from tests.support.postgres_server import (
    SHARED_URL,
    admin_connect,
    close_everywhere,
    free_port,
    private_cluster,
    scratch_table,
    store_url,
)
from tests.support.server import serve
from tests.support.shop import create_shop
from tests.support.stats import check_stats

NOW = 1_800_000_000.0
COOKIE = "__Host-session"


def record(*, expires_at: float = NOW + 1800, user_id: str | None = None) -> SessionRecord:
    return SessionRecord(
        key=tokens.storage_key(tokens.new_token()),
        handle=tokens.new_handle(),
        data={"n": 1},
        created_at=NOW,
        last_seen_at=NOW,
        expires_at=expires_at,
        absolute_at=NOW + 43200,
        user_id=user_id,
    )


def set_patch(**items: object) -> Patch:
    return Patch(set_json={k: json.dumps(v) for k, v in items.items()}, set_items=dict(items))


def pg(table: str, **options: object) -> PostgresStore:
    """A store on the shared server whose connections are tagged with the table name."""
    s = from_url(store_url(table, **options))
    assert isinstance(s, PostgresStore)
    return s


@pytest.fixture
def admin() -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    conn = admin_connect()
    yield conn
    conn.close()


@pytest.fixture
def table() -> Iterator[str]:
    with scratch_table() as name:
        yield name


@pytest.fixture
def store(table: str) -> Iterator[PostgresStore]:
    s = pg(table)
    yield s
    s.close_sync()


# -- URLs ---------------------------------------------------------------------------------
def test_url_options_reach_the_store_and_the_password_never_shows() -> None:
    s = from_url(
        "postgres://app:s3cret@db.internal:6432/sessions?table=app.web_sessions&pool_min=2"
        "&pool_max=7&pool_timeout=1.5&statement_timeout=0.25&connect_timeout=3"
        "&prepare_threshold=none&sslmode=disable&options=-c%20search_path%3Dapp"
    )
    assert isinstance(s, PostgresStore)
    assert (s.table, s.min_size, s.max_size, s.pool_timeout) == ("app.web_sessions", 2, 7, 1.5)
    assert s._pools.kwargs["prepare_threshold"] is None
    info = psycopg.conninfo.conninfo_to_dict(s._pools.conninfo)
    # libpq URLs know only %-escapes: a space must not come back as "+".
    assert info["options"] == "-c search_path=app -c statement_timeout=250"
    assert (info["connect_timeout"], info["sslmode"], info["port"]) == ("3", "disable", "6432")
    assert "s3cret" not in repr(s)
    with pytest.raises(StoreURLError, match="invalid table name"):
        from_url("postgresql://h/db?table=x;drop")
    with pytest.raises(StoreURLError, match=r"\*\*\*") as caught:
        from_url("postgresql://u:s3cret@h/db?pool_max=many")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(StoreURLError, match=r"u:\*\*\*@h.*invalid table name"):
        from_url("postgresql://u:s3cret@h/db?table=a.b.c")
    with pytest.raises(StoreURLError, match="not_a_libpq_option"):
        from_url("postgresql://h/db?not_a_libpq_option=1")


# -- migrations ---------------------------------------------------------------------------
def version_of(admin: psycopg.Connection[tuple[object, ...]], table: str) -> object:
    row = admin.execute("SELECT version FROM coatcheck_schema WHERE name = %s", (table,))
    return row.fetchone()


def test_migrations_are_idempotent_and_skip_the_lock_when_current(
    admin: psycopg.Connection[tuple[object, ...]], table: str
) -> None:
    first = PostgresStore(SHARED_URL, table=table)
    second = PostgresStore(SHARED_URL, table=table)
    try:
        first.migrate_sync()
        first.migrate_sync()
        assert version_of(admin, table) == (SCHEMA_VERSION,)
        indexes = {
            r[0]
            for r in admin.execute("SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,))
        }
        assert any("(expires_at)" in i for i in indexes)
        assert any("(user_id)" in i and "WHERE (user_id IS NOT NULL)" in i for i in indexes)
        # A current schema needs no lock: a node starts while another holds it.
        with psycopg.connect(SHARED_URL, autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            started = time.monotonic()
            second.migrate_sync()
            assert time.monotonic() - started < 1
        assert second.get_sync(record().key) is None
    finally:
        first.close_sync()
        second.close_sync()


def test_two_nodes_migrating_at_once_create_the_schema_once(
    admin: psycopg.Connection[tuple[object, ...]], table: str
) -> None:
    """Both nodes find no schema and queue on the advisory lock; the second must see the
    first one's work instead of failing on CREATE TABLE."""
    stores = [pg(table) for _ in range(2)]
    errors: list[BaseException] = []

    def migrate(s: PostgresStore) -> None:
        try:
            s.migrate_sync()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with psycopg.connect(SHARED_URL, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while True:  # until both wait on the lock
            (waiting,) = admin.execute(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = %s",
                (table,),
            ).fetchone() or (0,)
            if waiting == 2:
                break
            assert time.monotonic() < deadline, "migrations did not queue on the lock"
            time.sleep(0.02)
        holder.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    for t in threads:
        t.join(10)
    try:
        assert errors == []
        assert version_of(admin, table) == (SCHEMA_VERSION,)
        r = record()
        stores[0].create_sync(r)
        assert stores[1].get_sync(r.key) == r
    finally:
        for s in stores:
            s.close_sync()


def test_a_newer_schema_is_refused(
    admin: psycopg.Connection[tuple[object, ...]], store: PostgresStore, table: str
) -> None:
    store.migrate_sync()
    admin.execute(
        "UPDATE coatcheck_schema SET version = %s WHERE name = %s", (SCHEMA_VERSION + 1, table)
    )
    newer = pg(table)
    try:
        with pytest.raises(StoreUnavailable, match="newer than this coatcheck"):
            newer.get_sync(record().key)
    finally:
        newer.close_sync()


# -- purge --------------------------------------------------------------------------------
def fill(
    admin: psycopg.Connection[tuple[object, ...]], table: str, expired: int, live: int
) -> None:
    admin.execute(
        sql.SQL(
            "INSERT INTO {} (key, handle, data, created_at, last_seen_at, expires_at, "
            "absolute_at) SELECT 'k' || i, 'h' || i, '{{}}', 0, 0, "
            "CASE WHEN i <= %s THEN %s - i ELSE %s + i END, %s "
            "FROM generate_series(1, %s) AS i"
        ).format(sql.Identifier(table)),
        (expired, NOW, NOW, NOW + 1e6, expired + live),
    )


def test_two_concurrent_sweepers_delete_each_row_once(
    admin: psycopg.Connection[tuple[object, ...]], table: str
) -> None:
    workers = [pg(table) for _ in range(2)]
    workers[0].migrate_sync()
    fill(admin, table, expired=4000, live=100)
    counts: list[int] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def sweep(s: PostgresStore) -> None:
        try:
            s.get_sync("warm-up")  # connect before the race starts
            barrier.wait()
            counts.append(s.purge_expired_sync(NOW, 50))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=sweep, args=(s,)) for s in workers]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    elapsed = time.monotonic() - started
    try:
        assert errors == []
        assert sum(counts) == 4000, counts
        assert workers[0].count_sync(NOW) == 100
        (left,) = admin.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
        ).fetchone() or (0,)
        assert left == 100
        assert elapsed < 20
    finally:
        for s in workers:
            s.close_sync()


def test_purge_skips_rows_another_node_holds_instead_of_waiting(
    admin: psycopg.Connection[tuple[object, ...]], store: PostgresStore, table: str
) -> None:
    store.migrate_sync()
    fill(admin, table, expired=30, live=5)
    with psycopg.connect(SHARED_URL) as holder:  # an open transaction
        holder.execute(
            sql.SQL("SELECT key FROM {} WHERE key IN ('k1', 'k2', 'k3') FOR UPDATE").format(
                sql.Identifier(table)
            )
        )
        started = time.monotonic()
        assert store.purge_expired_sync(NOW, 7) == 27
        assert time.monotonic() - started < 2  # statement_timeout is 5 s: it never waited
        holder.rollback()
    assert store.purge_expired_sync(NOW, 7) == 3
    assert store.count_sync(NOW) == 5


# -- data jsonb cannot hold ---------------------------------------------------------------
async def test_a_nul_character_is_a_data_error_naming_the_key(store: PostgresStore) -> None:
    try:
        await nul_is_refused(store)
    finally:
        await store.close()


async def nul_is_refused(store: PostgresStore) -> None:
    r = record()
    store.create_sync(r)
    with pytest.raises(SessionDataError, match="'bad'"):
        store.apply_sync(r.key, set_patch(bad="a\x00b"))
    with pytest.raises(SessionDataError, match="'bad'"):
        await store.apply(r.key, set_patch(bad=["\x00"]))
    # A backslash followed by "u0000" is ordinary text.
    assert store.apply_sync(r.key, set_patch(fine="\\u0000"))
    loaded = await store.get(r.key)
    assert loaded is not None and loaded.data == {"n": 1, "fine": "\\u0000"}
    fresh = record()
    fresh.data = {"k": "\x00"}
    with pytest.raises(SessionDataError, match="'k'"):
        store.create_sync(fresh)


# -- through the real middleware ----------------------------------------------------------
@dataclass
class Shop:
    url: str
    store: PostgresStore
    table: str


@pytest.fixture
def shop(table: str, clock: FakeClock) -> Iterator[Shop]:
    s = pg(table, pool_max=10)
    manager = SessionManager(s, SessionConfig(), clock=clock)
    with serve(create_shop(manager)) as url:
        yield Shop(url, s, table)
        close_everywhere(s)


def table_text(admin: psycopg.Connection[tuple[object, ...]], table: str) -> str:
    """Every stored byte of the table and of the version table, as text."""
    rows = admin.execute(sql.SQL("SELECT t::text FROM {} AS t").format(sql.Identifier(table)))
    text = "\n".join(str(r[0]) for r in rows)
    return text + "\n".join(str(r) for r in admin.execute("SELECT * FROM coatcheck_schema"))


def test_no_raw_token_in_the_table_after_a_login_logout_cycle(
    admin: psycopg.Connection[tuple[object, ...]], shop: Shop, clock: FakeClock
) -> None:
    seen: list[str] = []  # every token any response handed out, CSRF renders included

    def collect(response: httpx.Response) -> None:
        seen.extend(parse_set_cookie(v)[1] for v in response.headers.get_list("set-cookie"))

    snapshots: list[str] = []
    with Browser(shop.url, event_hooks={"response": [collect]}) as b:
        b.post("/cart/add?item=hat")
        snapshots.append(table_text(admin, shop.table))
        b.post("/login?user=alice")
        b.post("/set", json={"theme": "dark"})
        clock.advance(60)
        b.post("/regenerate")
        snapshots.append(table_text(admin, shop.table))
        live = b.cookies[COOKIE]
        assert b.get("/read").json()["data"] == {"cart": ["hat"], "theme": "dark"}
        b.post("/logout?flash=bye")
        snapshots.append(table_text(admin, shop.table))
    tokens_seen = [t for t in seen if t]
    assert len(set(tokens_seen)) >= 4  # anonymous, login, regenerate, after logout
    assert tokens.storage_key(live) in snapshots[1]  # rows are found by the hash...
    for text in snapshots:
        for token in tokens_seen:
            assert token not in text  # ...and never by the token itself
    # Only the post-logout flash session remains, with nothing of alice in it, beside the
    # markers the login and regenerate() left for rotation_grace under keys derived from
    # the old ones (tests/conformance/test_login_races.py): no data, no user.
    rows = admin.execute(
        sql.SQL("SELECT user_id, data, meta ? 'superseded_at' FROM {}").format(
            sql.Identifier(shop.table)
        )
    ).fetchall()
    markers = [(user, data) for user, data, marker in rows if marker]
    assert markers == [(None, {})] * 2
    assert [(user, data) for user, data, marker in rows if not marker] == [(None, {"flash": "bye"})]


async def test_fifty_concurrent_requests_on_one_session_lose_no_key(shop: Shop) -> None:
    with Browser(shop.url) as b:
        b.post("/set", json={"base": 0})
        token = b.cookies[COOKIE]
        headers = {"Cookie": f"{COOKIE}={token}", "X-CSRF-Token": b.csrf_token()}
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(base_url=shop.url, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(
            *(client.post(f"/together?key=k{i}", headers=headers) for i in range(50))
        )
    assert [r.status_code for r in responses] == [200] * 50
    stored = shop.store.get_sync(tokens.storage_key(token))
    assert stored is not None
    assert stored.data == {"base": 0, **{f"k{i}": f"k{i}" for i in range(50)}}


# -- failures -----------------------------------------------------------------------------
async def test_an_unreachable_server_is_store_unavailable_within_the_pool_timeout() -> None:
    port = free_port()  # nothing listens here
    s = from_url(f"postgresql://postgres@127.0.0.1:{port}/test?pool_timeout=0.5")
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
            s.get_sync("k")
        assert time.monotonic() - started < 2
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await s.apply("k", set_patch(a=1))
        assert time.monotonic() - started < 2
    finally:
        await s.close()


def test_an_unreachable_server_is_a_503_at_the_edge() -> None:
    s = from_url(f"postgresql://postgres@127.0.0.1:{free_port()}/test?pool_timeout=0.5")
    manager = SessionManager(s)
    with serve(create_shop(manager)) as url, Browser(url) as b:
        fresh = b.post("/set", json={"a": 1})  # no token: the commit fails
        assert fresh.status_code == 503
        assert fresh.headers["retry-after"] == "5"
        assert "set-cookie" not in fresh.headers
        known = b.get("/read", headers={"Cookie": f"{COOKIE}={tokens.new_token()}"})
        assert known.status_code == 503  # the load fails: never an empty session
        assert b.get("/noop").status_code == 200  # untouched sessions need no store
        close_everywhere(s)


def test_a_statement_stuck_on_a_lock_ends_at_the_statement_timeout(table: str) -> None:
    s = pg(table, statement_timeout=0.3)
    r = record()
    s.create_sync(r)
    try:
        with psycopg.connect(SHARED_URL) as holder:
            holder.execute(
                sql.SQL("SELECT 1 FROM {} WHERE key = %s FOR UPDATE").format(sql.Identifier(table)),
                (r.key,),
            )
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="statement timeout"):
                s.apply_sync(r.key, set_patch(a=1))
            assert 0.25 < time.monotonic() - started < 2
            holder.rollback()
        assert s.apply_sync(r.key, set_patch(a=2))  # the pool carries on
    finally:
        s.close_sync()


def terminate(admin: psycopg.Connection[tuple[object, ...]], table: str) -> int:
    """End the server side of every connection tagged ``table`` and wait until they are
    gone (the FATAL message then sits in each client socket)."""
    rows = admin.execute(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        (table,),
    ).fetchall()
    # Wait for these backends, not for "no connection tagged table": a pool may already
    # have replaced one before the old backend finished exiting, so that count need never
    # pass through zero.
    pids = [row[0] for row in rows]
    deadline = time.monotonic() + 10
    query = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)"
    while admin.execute(query, (pids,)).fetchone() != (0,):
        assert time.monotonic() < deadline, "terminated backends never exited"
        time.sleep(0.01)
    return len(rows)


def wait_for_activity(
    admin: psycopg.Connection[tuple[object, ...]],
    table: str,
    ok: Callable[[int], bool],
    where: str = "true",
) -> None:
    deadline = time.monotonic() + 10
    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND " + where
    while not ok(int(admin.execute(query, (table,)).fetchone()[0])):  # type: ignore[index]
        assert time.monotonic() < deadline, f"pg_stat_activity never matched {where}"
        time.sleep(0.01)


async def test_connections_the_server_dropped_are_replaced_without_an_error(
    admin: psycopg.Connection[tuple[object, ...]], table: str
) -> None:
    """An idle pooled connection whose server side ended (restart, idle timeout, admin)
    is noticed at checkout, without a round trip, and replaced: no request fails."""
    s = pg(table, pool_min=2, pool_max=2)
    try:
        r = record()
        s.create_sync(r)
        assert await s.get(r.key) == r
        for _ in range(3):
            # Both pools fill to pool_min in the background: wait for them, so all four
            # connections exist when the server side ends them.
            s._pools.sync.wait(10)  # type: ignore[union-attr]
            await (await s._pools.async_pool()).wait(10)
            assert terminate(admin, table) == 4  # two sync and two async connections
            loaded = s.get_sync(r.key)
            assert loaded is not None and loaded.handle == r.handle
            assert await s.apply(r.key, set_patch(again=True))
    finally:
        s.close_sync()
        await s.close()


def test_a_connection_lost_mid_statement_is_store_unavailable_then_healed(
    admin: psycopg.Connection[tuple[object, ...]], table: str
) -> None:
    s = pg(table, pool_max=1)
    r = record()
    s.create_sync(r)
    outcome: list[object] = []

    def blocked_apply() -> None:
        try:
            outcome.append(s.apply_sync(r.key, set_patch(a=1)))
        except StoreUnavailable as exc:
            outcome.append(exc)

    try:
        with psycopg.connect(SHARED_URL) as holder:
            holder.execute(
                sql.SQL("SELECT 1 FROM {} WHERE key = %s FOR UPDATE").format(sql.Identifier(table)),
                (r.key,),
            )
            worker = threading.Thread(target=blocked_apply)
            worker.start()
            wait_for_activity(admin, table, lambda n: n == 1, "wait_event_type = 'Lock'")
            terminate(admin, table)
            worker.join(5)
            holder.rollback()
        (error,) = outcome
        assert isinstance(error, StoreUnavailable), error
        assert "terminating connection" in str(error)
        assert s.apply_sync(r.key, set_patch(a=2))  # a new connection, no restart
        loaded = s.get_sync(r.key)
        assert loaded is not None and loaded.data == {"n": 1, "a": 2}
    finally:
        s.close_sync()


# -- one statement per store call, as the server saw it --------------------------------------
STATEMENT = re.compile(r"LOG:  (?:statement|execute [^:]*): (.*)")


def test_load_is_one_statement_and_a_commit_is_one_statement(clock: FakeClock) -> None:
    """A private server logs every statement: a request that reads and writes the session
    costs exactly one SELECT and one UPDATE, and a read-only one exactly one SELECT."""
    with private_cluster() as cluster:
        log_url = f"{cluster.url}?options=-c%20log_statement%3Dall&pool_max=1"
        s = from_url(log_url)
        manager = SessionManager(s, SessionConfig(), clock=clock)
        with serve(create_shop(manager)) as url, Browser(url) as b:
            b.post("/set", json={"a": 1})
            csrf = {"X-CSRF-Token": b.csrf_token()}  # no page render before each POST
            b.post("/set", json={"a": 1}, headers=csrf)  # warm: migrations, pool are done

            def statements_of(method: str, path: str, **kwargs: object) -> list[str]:
                before = len(cluster.log.read_text())
                assert b.request(method, path, headers=csrf, **kwargs).status_code == 200
                new = cluster.log.read_text()[before:]  # logged before the reply
                return [m.group(1) for m in STATEMENT.finditer(new)]

            writes = statements_of("POST", "/set", json={"b": 2})
            assert [w.split()[0] for w in writes] == ["SELECT", "UPDATE"], writes
            assert "(data - $1::text[]) || $2::jsonb" in writes[1]
            reads = statements_of("GET", "/read")
            assert [w.split()[0] for w in reads] == ["SELECT"], reads
            close_everywhere(s)


def test_coatcheck_stats_counts_live_sessions_per_user(store: PostgresStore, table: str) -> None:
    check_stats(store, store_url(table))


def test_each_event_loop_gets_its_own_async_pool(store: PostgresStore) -> None:
    """Django's async views under WSGI run every request on a new event loop (asgiref's
    ``async_to_sync``), one after another and in several threads at once: each loop gets
    a pool of its own instead of an error about the first loop's pool."""
    from asgiref.sync import async_to_sync

    r = record()
    store.create_sync(r)

    async def request(n: int) -> bool:
        assert await store.get(r.key) is not None
        return await store.apply(r.key, set_patch(**{f"k{n}": n}))

    assert all(async_to_sync(request)(n) for n in range(3))
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda n=n: results.append(async_to_sync(request)(n)))
        for n in range(3, 7)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [True] * 4
    loaded = store.get_sync(r.key)
    assert loaded is not None and loaded.data == {"n": 1} | {f"k{n}": n for n in range(7)}


def test_a_forked_worker_never_talks_on_its_parents_connections(table: str) -> None:
    """A pre-forking server (gunicorn --preload) forks after the app has used the store:
    the child opens a pool of its own, so each process reads its own replies."""
    s = pg(table, pool_min=1, pool_max=1)
    alice, bob = record(user_id="alice"), record(user_id="bob")
    s.create_sync(alice)
    s.create_sync(bob)
    try:
        assert_each_process_reads_its_own(s, alice, bob, rounds=100)
    finally:
        s.close_sync()
