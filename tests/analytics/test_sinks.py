"""The lifecycle sinks: a structured log line, an isolated callback, a bounded Redis
Stream (real Redis), and the analytics store through a manager's real events; no sink
ever sees a token."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from pathlib import Path

import pytest
import redis

from coatcheck.analytics.setup import Analytics, analytics_for
from coatcheck.analytics.sinks import CallbackSink, RedisStreamSink, StructuredLogSink
from coatcheck.core.config import SessionConfig
from coatcheck.core.events import SessionEvent
from coatcheck.engine.manager import SessionManager
from coatcheck.stores.memory import MemoryStore
from coatcheck.testing.clock import FrozenClock

EVENT = SessionEvent("session.revoked", 1000.0, "h1", "u1", {"reason": "admin"})


def test_the_structured_log_is_one_json_object_per_event(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="coatcheck.events"):
        StructuredLogSink()(EVENT)
    (record,) = caplog.records
    assert json.loads(record.getMessage()) == {
        "event": "session.revoked",
        "at": 1000.0,
        "handle": "h1",
        "user_id": "u1",
        "reason": "admin",
    }
    assert record.coatcheck["handle"] == "h1"  # type: ignore[attr-defined]


def test_a_failing_callback_is_logged_and_never_raised(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[str] = []
    CallbackSink(lambda e: seen.append(e.name))(EVENT)
    broken = CallbackSink(lambda e: 1 / 0)
    broken(EVENT)
    assert seen == ["session.revoked"]
    assert broken.errors == 1
    assert "event callback failed" in caplog.text


def test_the_redis_stream_is_bounded_with_maxlen() -> None:
    client = redis.Redis(host="127.0.0.1", port=6379)
    stream = f"cc-test:events:{secrets.token_hex(4)}"
    sink = RedisStreamSink(client, stream, maxlen=10)
    try:
        for i in range(1000):
            sink(SessionEvent("session.created", float(i), f"h{i}"))
        assert sink.writer.flush()
        length = client.xlen(stream)
        # MAXLEN ~ trims whole macro nodes (100 entries each by default): near 10, far
        # below the 1000 written.
        assert 10 <= length <= 200
        last = client.xrevrange(stream, count=1)[0][1]
        assert last[b"event"] == b"session.created" and last[b"handle"] == b"h999"
        assert last[b"at"] == b"999.0"
    finally:
        sink.close()
        client.delete(stream)


def test_a_managers_events_reach_the_store_and_carry_no_token(tmp_path: Path) -> None:
    clock = FrozenClock(1_000_000.0)
    url = f"sqlite:///{tmp_path}/a.db"
    manager = SessionManager(MemoryStore(), SessionConfig(analytics_url=url), clock)
    analytics = analytics_for(manager)
    assert analytics is not None and analytics_for(manager) is analytics  # built once
    session = asyncio.run(manager.load(None))
    session.login("u1")
    result = asyncio.run(manager.commit(session))
    assert result.token is not None
    asyncio.run(manager.revoke(session.handle or ""))
    assert analytics.writer.flush()
    rows = list(analytics.store.rows())
    assert [(r["kind"], r["name"], r["user_id"]) for r in rows] == [
        ("lifecycle", "session.created", "u1"),  # stored for the first time, at the login
        ("lifecycle", "session.login", "u1"),
        ("lifecycle", "session.revoked", "u1"),
    ]
    assert result.token not in repr(rows)
    analytics.close()


def test_without_a_url_analytics_is_off() -> None:
    manager = SessionManager(MemoryStore())
    assert analytics_for(manager) is None
    assert manager.sinks == []
    off = SessionManager(MemoryStore(), SessionConfig(analytics_url="off"))
    assert analytics_for(off) is None


def test_an_attached_analytics_wins_over_the_config(tmp_path: Path) -> None:
    manager = SessionManager(MemoryStore())
    analytics = Analytics.from_url(f"sqlite:///{tmp_path}/b.db").attach(manager)
    assert analytics_for(manager) is analytics
    assert manager.sinks == [analytics.sink]
    analytics.close()
