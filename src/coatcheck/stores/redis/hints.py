"""What this process remembers of the records it just loaded or wrote.

On a single node a rename or a delete is one script only if it can name every key it
touches, and two of them (the handle pointer, the user's index) cannot be derived from the
storage key. The store keeps the (handle, user) of recent records here so that it can.
Only ever a hint: the scripts check it against the record and a stale one costs one more
round trip (the two-step path), never a wrong write.
"""

from __future__ import annotations

import threading


class Hints:
    """Per-process memory of the (handle, user) of up to ``size`` records, the most recent
    kept (``size`` 0 remembers nothing: a cluster cannot use them). Thread-safe."""

    def __init__(self, size: int = 8192) -> None:
        self._size = size
        self._items: dict[str, tuple[str, str | None]] = {}
        self._lock = threading.Lock()

    def remember(self, key: str, handle: str, user_id: str | None) -> None:
        if not self._size:
            return
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (handle, user_id)
            if len(self._items) > self._size:
                del self._items[next(iter(self._items))]

    def pop(self, key: str) -> tuple[str, str | None] | None:
        with self._lock:
            return self._items.pop(key, None)
