"""Session data encrypted at rest (``COATCHECK_DATA_KEYS``): a marker written into a session
appears nowhere in what each server keeps, the session reads back, deltas still merge, and a
ciphertext moved to another record or read without its key opens nothing."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from coatcheck import SessionConfig, SessionManager
from coatcheck.core import tokens
from coatcheck.core.record import Patch, SessionRecord
from coatcheck.security.sealing import KeyRing, new_key, parse_keys
from coatcheck.stores import SQLiteStore, Store, from_url
from coatcheck.stores.encrypted import PREFIX, EncryptedStore, encrypted
from tests.support.clock import FakeClock
from tests.support.memcached_server import fresh_prefix, shared_memcached
from tests.support.postgres_server import SHARED_URL, scratch_table, store_url
from tests.support.redis_servers import delete_prefix, shared_redis_url, unique_prefix

MARKER = "marker-7f3a9c-Ünïcödé"


def keys_text(*names: str) -> tuple[str, dict[str, str]]:
    made = {name: new_key() for name in names}
    return ",".join(f"{n}:{k}" for n, k in made.items()), made


@contextlib.contextmanager
def built(
    kind: str, tmp_path: Path, data_keys: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Store, dict[str, str]]]:
    """A store of ``kind`` built by ``from_url`` with ``COATCHECK_DATA_KEYS`` set, and how
    to reach its raw bytes."""
    monkeypatch.setenv("COATCHECK_DATA_KEYS", data_keys)
    if kind == "sqlite":
        path = tmp_path / "s.db"
        store = from_url(f"sqlite:///{path}")
        assert isinstance(store, Store)
        yield store, {"path": str(path)}
        store.close_sync()
    elif kind == "postgres":
        with scratch_table() as table:
            store = from_url(store_url(table, pool_min=1, pool_max=2))
            assert isinstance(store, Store)
            yield store, {"table": table}
            store.close_sync()
    elif kind == "redis":
        url = shared_redis_url()
        prefix = unique_prefix()
        store = from_url(f"{url}?prefix={prefix}")
        assert isinstance(store, Store)
        try:
            yield store, {"url": url, "prefix": prefix}
        finally:
            store.close_sync()
            delete_prefix(url, prefix)
    else:
        server = shared_memcached()
        prefix = fresh_prefix()
        store = from_url(f"{server.url}?prefix={prefix}&timeout=2&connect_timeout=2")
        assert isinstance(store, Store)
        yield store, {"prefix": prefix}
        store.close_sync()


def raw_bytes(kind: str, where: dict[str, str]) -> bytes:
    """Everything the server keeps for this test, as bytes."""
    if kind == "sqlite":
        path = Path(where["path"])
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    if kind == "postgres":
        with psycopg.connect(SHARED_URL, autocommit=True) as conn:
            rows = conn.execute(f'SELECT t::text FROM "{where["table"]}" t').fetchall()
        return "\n".join(r[0] for r in rows).encode()
    if kind == "redis":
        client = redis.Redis.from_url(where["url"])
        out = []
        for key in client.scan_iter(match=where["prefix"] + "*"):
            kind_ = client.type(key)
            if kind_ == b"hash":
                out.extend(k + b"=" + v for k, v in client.hgetall(key).items())
            elif kind_ == b"string":
                out.append(client.get(key) or b"")
            elif kind_ == b"zset":
                out.extend(m for m, _ in client.zrange(key, 0, -1, withscores=True))
            elif kind_ == b"set":
                out.extend(client.smembers(key))
        client.close()
        return b"\n".join(out)
    server = shared_memcached()
    return b"\n".join(server.value(name) or b"" for name in server.keys(where["prefix"]))


KINDS = ["sqlite", "postgres", "redis", "memcached"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_marker_never_reaches_the_server_and_reads_back(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, _ = keys_text("k1")
    clock = FakeClock()
    with built(kind, tmp_path, text, monkeypatch) as (store, where):
        assert isinstance(store, EncryptedStore)
        manager = SessionManager(store, SessionConfig(), clock=clock)
        session = manager.load_sync(None)
        session["note"] = MARKER
        session["cart"] = [MARKER, 2]
        token = manager.commit_sync(session).token
        assert token
        session = manager.load_sync(token)
        session["later"] = {"x": MARKER}  # a delta on the existing record
        manager.commit_sync(session)
        session.close()
        session = manager.load_sync(token)
        assert session["note"] == MARKER
        assert session["cart"] == [MARKER, 2]
        assert session["later"] == {"x": MARKER}
        session.login("alice")  # a rename: the values move to the new key and still open
        token = manager.commit_sync(session).token or token
        session = manager.load_sync(token)
        assert session["note"] == MARKER and session.user_id == "alice"
        raw = raw_bytes(kind, where)
        assert raw, "the raw read found nothing: it looked in the wrong place"
        assert PREFIX.encode() in raw
        assert MARKER.encode() not in raw
        assert b"marker-7f3a9c" not in raw


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_concurrent_writers_of_different_keys_both_survive_encrypted(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text, _ = keys_text("k1")
    with built(kind, tmp_path, text, monkeypatch) as (store, _):
        manager = SessionManager(store, SessionConfig())
        first = manager.load_sync(None)
        first["seed"] = 1
        token = manager.commit_sync(first).token

        def write(i: int) -> None:
            session = manager.load_sync(token)
            session[f"k{i}"] = i
            manager.commit_sync(session)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        session = manager.load_sync(token)
        assert {k: session[k] for k in session if k.startswith("k")} == {
            f"k{i}": i for i in range(20)
        }


def test_a_ciphertext_moved_to_another_record_opens_nothing(tmp_path: Path) -> None:
    ring = parse_keys(f"k1:{new_key()}")
    store = encrypted(from_url(f"sqlite:///{tmp_path / 's.db'}"), ring)  # type: ignore[arg-type]
    manager = SessionManager(store, SessionConfig())
    tokens_by_name = {}
    for name in ("victim", "attacker"):
        session = manager.load_sync(None)
        session["role"] = name
        tokens_by_name[name] = manager.commit_sync(session).token
    with sqlite3.connect(tmp_path / "s.db") as conn:
        (victim_data,) = conn.execute(
            "SELECT data FROM coatcheck_sessions WHERE key = ?",
            (tokens.storage_key(tokens_by_name["victim"]),),
        ).fetchone()
        conn.execute(
            "UPDATE coatcheck_sessions SET data = ? WHERE key = ?",
            (victim_data, tokens.storage_key(tokens_by_name["attacker"])),
        )
    moved = manager.load_sync(tokens_by_name["attacker"])
    assert moved.is_new and "role" not in moved  # a fresh session, never the victim's data
    assert manager.load_sync(tokens_by_name["victim"])["role"] == "victim"


def test_values_do_not_open_without_their_key_and_old_keys_still_read(tmp_path: Path) -> None:
    old, new = new_key(), new_key()
    path = tmp_path / "s.db"
    store = encrypted(from_url(f"sqlite:///{path}"), parse_keys(f"old:{old}"))  # type: ignore[arg-type]
    manager = SessionManager(store, SessionConfig())
    session = manager.load_sync(None)
    session["v"] = MARKER
    token = manager.commit_sync(session).token
    store.close_sync()
    # New key first, the old one still in the ring: the value written under the old key reads.
    both = encrypted(from_url(f"sqlite:///{path}"), parse_keys(f"new:{new},old:{old}"))  # type: ignore[arg-type]
    assert SessionManager(both, SessionConfig()).load_sync(token)["v"] == MARKER
    both.close_sync()
    # Without the old key it is unreadable: a fresh session, not an error.
    only_new = encrypted(from_url(f"sqlite:///{path}"), parse_keys(f"new:{new}"))  # type: ignore[arg-type]
    assert SessionManager(only_new, SessionConfig()).load_sync(token).is_new
    only_new.close_sync()


def test_a_cookie_key_sealed_value_is_not_a_data_value() -> None:
    """One key used for cookies and for data never lets one stand for the other."""
    key = new_key()
    cookie_ring = KeyRing([key])
    data_store = encrypted(from_url("memory://"), [*parse_keys(key)])  # type: ignore[arg-type]
    sealed_as_cookie = cookie_ring.seal(b'"x"')
    from coatcheck.stores.encrypted import Unreadable

    with pytest.raises(Unreadable):
        data_store.sealer.open_value("h", "k", PREFIX + sealed_as_cookie)


def test_values_written_before_the_keys_were_set_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    monkeypatch.delenv("COATCHECK_DATA_KEYS", raising=False)
    plain = from_url(f"sqlite:///{path}")
    assert not isinstance(plain, EncryptedStore)
    manager = SessionManager(plain, SessionConfig())  # type: ignore[arg-type]
    session = manager.load_sync(None)
    session["v"] = "before"
    token = manager.commit_sync(session).token
    plain.close_sync()
    monkeypatch.setenv("COATCHECK_DATA_KEYS", new_key())
    sealed = from_url(f"sqlite:///{path}")
    assert isinstance(sealed, EncryptedStore)
    manager = SessionManager(sealed, SessionConfig())
    session = manager.load_sync(token)
    assert session["v"] == "before"
    session["w"] = "after"
    manager.commit_sync(session)
    sealed.close_sync()
    assert b"after" not in b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))


class CountingSQLite(SQLiteStore):
    """A real SQLite store that counts its round trips (reads and writes) and, once asked
    to, lets another writer in right after its next read: a lost race, made on purpose."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.calls: list[str] = []
        self.race: Callable[[], None] | None = None

    def get_sync(self, key: str) -> SessionRecord | None:
        self.calls.append("get")
        record = super().get_sync(key)
        race, self.race = self.race, None
        if race is not None:
            race()
        return record

    def apply_sync(self, key: str, patch: Patch) -> bool:
        self.calls.append("apply")
        return super().apply_sync(key, patch)


def test_round_trips_through_the_wrapper(tmp_path: Path) -> None:
    """A plain write: one round trip, as without encryption. Operations or a byte limit:
    a read and the conditional write. A lost race: both again, and the other writer's
    update is kept."""
    inner = CountingSQLite(tmp_path / "s.db")
    store = encrypted(inner, parse_keys(f"k1:{new_key()}"))
    record = SessionRecord(
        key=tokens.storage_key(tokens.new_token()),
        handle=tokens.new_handle(),
        data={"n": 0},
        created_at=1_000.0,
        last_seen_at=1_000.0,
        expires_at=9e9,
        absolute_at=9e9,
    )
    store.create_sync(record)
    h = record.handle

    inner.calls.clear()
    assert store.apply_sync(record.key, Patch({"a": '"x"'}, {"a": "x"}, handle=h))
    assert inner.calls == ["apply"]

    inner.calls.clear()
    incr = Patch(ops=(("incr", "n", 1, "1"),), handle=h)
    assert store.apply_sync(record.key, incr)
    assert inner.calls == ["get", "apply"]

    inner.calls.clear()
    limited = Patch({"b": '"y"'}, {"b": "y"}, max_bytes=4096, handle=h)
    assert store.apply_sync(record.key, limited)
    assert inner.calls == ["get", "apply"]

    # A request's commit after its load: the load's read is the base, one round trip each.
    manager = SessionManager(store, SessionConfig())
    token_record = manager.load_sync(None)
    token_record["cart"] = []
    token = manager.commit_sync(token_record).token
    inner.calls.clear()
    session = manager.load_sync(token)
    session.append("cart", "hat")
    manager.commit_sync(session)
    assert inner.calls == ["get", "apply"]
    session = manager.load_sync(token)
    session["plain"] = 1
    manager.commit_sync(session)
    assert inner.calls == ["get", "apply"] * 2
    assert manager.load_sync(token)["cart"] == ["hat"]

    # Another request increments "n" between this one's read and its write: the write is
    # refused by the store, read again and lands on the new value.
    other = encrypted(SQLiteStore(tmp_path / "s.db"), store.sealer.ring)
    inner.race = lambda: other.apply_sync(record.key, incr) and None
    inner.calls.clear()
    assert store.apply_sync(record.key, incr)
    assert inner.calls == ["get", "apply", "get", "apply"]
    got = store.get_sync(record.key)
    assert got is not None and got.data == {"n": 3, "a": "x", "b": "y"}  # 0 + 1 + 1 + 1
    other.close_sync()
    inner.close_sync()
