"""``FrozenClock``: time that moves only when a test says so.

Hand it to the ``SessionManager`` (``SessionManager(store, clock=clock)``) and expire
sessions with ``clock.advance(config.idle_timeout + 1)`` instead of sleeping.
"""

from __future__ import annotations

import time

__all__ = ["FrozenClock"]


class FrozenClock:
    """A clock (a callable returning epoch seconds) that stands still until moved.

    It starts at the real current time unless told otherwise: stores that also expire keys
    by wall-clock deadlines (Redis, Memcached) then keep the test's sessions for as long as
    the test runs, while coatcheck's own checks follow this clock.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (not backward: ``set`` says that explicitly).
        Returns the new time."""
        if seconds < 0:
            raise ValueError(f"advance() moves forward only; got {seconds!r} (use set())")
        self.now += seconds
        return self.now

    def set(self, t: float) -> None:
        """Jump to the epoch time ``t`` (backward too: clock-skew tests)."""
        self.now = float(t)

    def __repr__(self) -> str:
        return f"FrozenClock({self.now!r})"
