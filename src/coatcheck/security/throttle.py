"""A bounded, in-memory counter of unknown tokens per client, against token guessing.

Guessing a 256-bit token is hopeless, but a client that keeps presenting unknown tokens is
probing (or replaying stolen ones en masse); answering it 429 makes the probe visible and
tells it to stop. It counts only what it must:

- a token that opens nothing: unknown (no record) or malformed. An expired session is a
  real user's, and a request without a token an ordinary visitor's: neither counts;
- each token once in a row: a browser that keeps sending one dead cookie (until the
  response that clears it arrives) is one miss, not one per request;
- never a valid token: the manager asks only after the store said the token opens
  nothing, so a user behind the same proxy (or NAT, or office) as a prober is never
  refused.

The table holds at most ``max_clients`` entries (oldest dropped first), so an attacker with
many addresses can only make it forget, never grow. Which address a request counts against
(the peer, or ``X-Forwarded-For`` past ``trusted_proxies``) is decided by the edge.
"""

from __future__ import annotations

from collections import OrderedDict


class UnknownTokenThrottle:
    """Fixed-window counter: at most ``limit`` misses per ``window`` seconds per client."""

    def __init__(self, limit: int, window: float, max_clients: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._counts: OrderedDict[str, tuple[float, int, int]] = OrderedDict()
        """Per client: (window start, misses, hash of the last token missed)."""

    def retry_after(self, client: str, now: float) -> int | None:
        """Seconds until ``client`` may try again, or None when it is not throttled."""
        entry = self._counts.get(client)
        if entry is None:
            return None
        start, count, _ = entry
        if now - start >= self.window:
            del self._counts[client]
            return None
        if count < self.limit:
            return None
        return max(1, int(start + self.window - now + 0.999))

    def miss(self, client: str, now: float, token: str | None = None) -> None:
        """Record one unknown or malformed ``token`` (its storage key, or the raw value of
        a malformed one) from ``client``; the token ``client`` missed with last time is not
        counted again. Only a hash of it is kept."""
        last = hash(token) if token is not None else 0
        start, count, previous = self._counts.pop(client, (now, 0, 0))
        if now - start >= self.window:
            start, count, previous = now, 0, 0
        if token is None or last != previous or count == 0:
            count += 1
        self._counts[client] = (start, count, last)
        while len(self._counts) > self.max_clients:
            self._counts.popitem(last=False)

    def unknown(self, client: str, now: float, token: str) -> int | None:
        """A token from ``client`` opened nothing: the seconds it must wait when it is over
        the limit (then nothing more is counted), else None once the miss is counted."""
        wait = self.retry_after(client, now)
        if wait is None:
            self.miss(client, now, token)
        return wait
