"""A bounded, in-memory counter of unknown tokens per client, against token guessing.

Guessing a 256-bit token is hopeless, but a client that keeps presenting unknown tokens is
probing (or replaying stolen ones en masse); answering it 429 early costs nothing and keeps
it off the store. The table holds at most ``max_clients`` entries (oldest dropped first), so
an attacker with many addresses can only make it forget, never grow.
"""

from __future__ import annotations

from collections import OrderedDict


class UnknownTokenThrottle:
    """Fixed-window counter: at most ``limit`` misses per ``window`` seconds per client."""

    def __init__(self, limit: int, window: float, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def retry_after(self, client: str, now: float) -> int | None:
        """Seconds until ``client`` may try again, or None when it is not throttled."""
        entry = self._counts.get(client)
        if entry is None:
            return None
        start, count = entry
        if now - start >= self.window:
            del self._counts[client]
            return None
        if count < self.limit:
            return None
        return max(1, int(start + self.window - now + 0.999))

    def miss(self, client: str, now: float) -> None:
        """Record one unknown or malformed token from ``client``."""
        start, count = self._counts.pop(client, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        self._counts[client] = (start, count + 1)
        while len(self._counts) > self.max_clients:
            self._counts.popitem(last=False)
