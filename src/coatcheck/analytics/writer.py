"""The background writer: recording never slows or fails a request.

An edge hands its rows to ``put``, which never blocks and never raises: the queue is
bounded, and a row that finds it full is dropped and counted. One daemon thread takes rows
off in batches and hands each batch to the target (the analytics store's ``write_batch``,
a Redis stream's ``XADD``s). A target that fails loses that batch: it is counted and
logged once per outage (not once per batch), and the writer carries on, so a dead
analytics store is a metric and a log line, never a 5xx.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["BackgroundWriter", "WriterStats"]

logger = logging.getLogger("coatcheck.analytics")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class WriterStats:
    written: int
    """Rows the target accepted."""
    dropped: int
    """Rows refused because the queue was full."""
    failed: int
    """Rows lost with a batch the target failed to take."""
    failures: int
    """Batches the target failed to take."""
    queued: int
    """Rows waiting now."""


class BackgroundWriter(Generic[T]):
    """``capacity`` rows may wait; ``batch`` rows at most go to ``target`` in one call,
    after waiting at most ``interval`` seconds for a batch to fill."""

    def __init__(
        self,
        target: Callable[[Sequence[T]], None],
        *,
        capacity: int = 10_000,
        batch: int = 500,
        interval: float = 0.5,
        name: str = "coatcheck-analytics",
    ) -> None:
        if capacity < 1 or batch < 1:
            raise ValueError("capacity and batch must be at least 1")
        self.target = target
        self.batch = batch
        self.interval = interval
        self._queue: queue.Queue[T | None] = queue.Queue(capacity)
        self._lock = threading.Lock()
        self._written = self._dropped = self._failed = self._failures = 0
        self._down = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, row: T) -> bool:
        """Queue ``row``; False (and counted) when the queue is full or the writer closed."""
        if self._closed:
            return False
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            with self._lock:
                self._dropped += 1
            return False
        return True

    def stats(self) -> WriterStats:
        with self._lock:
            return WriterStats(
                self._written, self._dropped, self._failed, self._failures, self._queue.qsize()
            )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued row was handed to the target (tests, shutdown); False
        when ``timeout`` passed first."""
        done = threading.Event()

        def wait() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=wait, daemon=True).start()
        return done.wait(timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued, then stop the thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def _take(self) -> tuple[list[T], bool]:
        """A batch (waiting up to ``interval`` for it to fill) and whether to stop."""
        first = self._queue.get()
        if first is None:
            self._queue.task_done()
            return [], True
        rows = [first]
        stop = False
        while len(rows) < self.batch:
            try:
                row = self._queue.get(timeout=self.interval)
            except queue.Empty:
                break
            if row is None:
                self._queue.task_done()
                stop = True
                break
            rows.append(row)
        return rows, stop

    def _run(self) -> None:
        while True:
            rows, stop = self._take()
            if rows:
                self._write(rows)
                for _ in rows:
                    self._queue.task_done()
            if stop:
                return

    def _write(self, rows: list[T]) -> None:
        try:
            self.target(rows)
        except Exception as exc:
            with self._lock:
                self._failed += len(rows)
                self._failures += 1
                first = not self._down
                self._down = True
            if first:
                logger.warning("analytics writer: target failed, rows are lost: %r", exc)
            return
        with self._lock:
            self._written += len(rows)
            recovered = self._down
            self._down = False
        if recovered:
            logger.warning("analytics writer: target answers again")
