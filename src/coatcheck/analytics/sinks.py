"""Sinks for the engine's lifecycle events (``core.events``): a structured log line, the
analytics store, an application callback, and a Redis Stream for other consumers.

A sink is any callable taking a ``SessionEvent``; the engine calls it inline, so the ones
that do I/O here only queue (the store's and the stream's go through a
``BackgroundWriter``) and every one of them swallows its own failures: an event sink can
never fail the request that emitted the event. Events carry the public handle, never the
token, so nothing here can leak a credential.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from typing import Any

from coatcheck.analytics.rows import Hit, from_event
from coatcheck.analytics.writer import BackgroundWriter
from coatcheck.core.events import LoggingSink, SessionEvent

__all__ = [
    "CallbackSink",
    "LoggingSink",
    "RedisStreamSink",
    "StoreSink",
    "StructuredLogSink",
    "event_fields",
]

logger = logging.getLogger("coatcheck.analytics")


def event_fields(event: SessionEvent) -> dict[str, Any]:
    """An event as flat JSON-ready fields (the log line's and the stream entry's)."""
    fields: dict[str, Any] = {"event": event.name, "at": event.at}
    if event.handle is not None:
        fields["handle"] = event.handle
    if event.user_id is not None:
        fields["user_id"] = event.user_id
    for key, value in event.detail.items():
        fields.setdefault(key, value if isinstance(value, (str, int, float, bool)) else str(value))
    return fields


class StructuredLogSink:
    """One JSON object per event on the ``coatcheck.events`` logger (and the same fields in
    the record's ``extra``, for handlers that format records themselves)."""

    def __init__(self, logger: logging.Logger | None = None, level: int = logging.INFO) -> None:
        self.logger = logger or logging.getLogger("coatcheck.events")
        self.level = level

    def __call__(self, event: SessionEvent) -> None:
        if self.logger.isEnabledFor(self.level):
            fields = event_fields(event)
            self.logger.log(
                self.level,
                json.dumps(fields, sort_keys=True, default=str),
                extra={"coatcheck": fields},
            )


class CallbackSink:
    """An application's own function, isolated: whatever it raises is logged, never
    passed on to the request."""

    def __init__(self, callback: Callable[[SessionEvent], object]) -> None:
        self.callback = callback
        self.errors = 0

    def __call__(self, event: SessionEvent) -> None:
        try:
            self.callback(event)
        except Exception:
            self.errors += 1
            logger.exception("analytics: event callback failed on %s", event.name)


class StoreSink:
    """Lifecycle events into the analytics store, through its background writer. Events
    that name no session (a rejected token) are not rows: they belong to no visit."""

    def __init__(self, writer: BackgroundWriter[Hit]) -> None:
        self.writer = writer

    def __call__(self, event: SessionEvent) -> None:
        try:
            hit = from_event(event)
        except Exception:
            logger.exception("analytics: event %s not recorded", event.name)
            return
        if hit is not None:
            self.writer.put(hit)


class RedisStreamSink:
    """Every event as one entry of a Redis Stream (``XADD``), bounded with ``MAXLEN ~
    maxlen`` so the stream cannot grow without end. ``client`` is a redis-py client (or a
    URL); entries are written in batches by a background writer, in one pipeline each."""

    def __init__(
        self,
        client: Any,
        stream: str = "coatcheck:events",
        *,
        maxlen: int = 100_000,
        capacity: int = 10_000,
    ) -> None:
        if isinstance(client, str):
            import redis

            client = redis.Redis.from_url(client)
        if maxlen < 1:
            raise ValueError("maxlen must be at least 1")
        self.client = client
        self.stream = stream
        self.maxlen = maxlen
        self.writer: BackgroundWriter[dict[str, Any]] = BackgroundWriter(
            self._write, capacity=capacity, name="coatcheck-event-stream"
        )

    def __call__(self, event: SessionEvent) -> None:
        fields = {
            k: json.dumps(v) if not isinstance(v, str) else v
            for k, v in event_fields(event).items()
        }
        self.writer.put(fields)

    def _write(self, entries: Sequence[dict[str, Any]]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for fields in entries:
            pipe.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)
        pipe.execute()

    def close(self) -> None:
        self.writer.close()
