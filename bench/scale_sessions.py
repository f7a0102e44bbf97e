"""The sessions of the scale benchmark: derived from an index, loaded, and timed.

A million sessions are never held in this process: a session's token, handle, user and
deadlines are pure functions of its index (``Population``), so a fill can stream them to a
store and a reader can pick any of them at random. The template record, whose shape every
filled session copies, is made by coatcheck itself (a real login through the manager).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import json
import math
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from coatcheck import SessionManager
from coatcheck.core import tokens
from coatcheck.core.client import ClientInfo
from coatcheck.core.config import SessionConfig
from coatcheck.core.record import SessionRecord
from coatcheck.stores import MemoryStore

from .harness import BenchError

CART = [
    {"sku": "TEA-0042", "qty": 1},
    {"sku": "MUG-0007", "qty": 2},
    {"sku": "CUP-0113", "qty": 1},
]
"""The small session's data: with a user id, what a logged-in shopper typically holds."""

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
CLIENT = ClientInfo(USER_AGENT, "203.0.113.42")
CONFIG = SessionConfig()

# -- sessions derived from an index --------------------------------------------------------

_PHI = 0.6180339887498949
_PLASTIC = 0.7548776662466927


@dataclass(frozen=True, slots=True)
class Population:
    """``count`` sessions whose token, handle, user and deadlines derive from their index.

    Live sessions were created up to 11 hours ago and used within the last minute (so their
    idle deadline is 29 to 30 minutes ahead); ended sessions have idle deadlines spread over
    ``[end, end + spread]``. Each logged in as its own user (``user-<n>``), as a shop's
    sessions mostly are, and holds the 3-item cart.
    """

    tag: str
    count: int
    user_base: int
    now: float
    end: float | None = None
    spread: float = 0.0

    @property
    def live(self) -> bool:
        return self.end is None

    def _digest(self, i: int) -> bytes:
        return hashlib.blake2b(b"%s\0%d" % (self.tag.encode(), i), digest_size=44).digest()

    def token(self, i: int) -> str:
        return base64.urlsafe_b64encode(self._digest(i)[:32]).rstrip(b"=").decode()

    def ident(self, i: int) -> tuple[str, str, str, str]:
        """(token, storage key, handle, user id) of session ``i``."""
        digest = self._digest(i)
        token = base64.urlsafe_b64encode(digest[:32]).rstrip(b"=").decode()
        handle = base64.urlsafe_b64encode(digest[32:]).decode()
        return token, tokens.storage_key(token), handle, f"user-{self.user_base + i}"

    def times(self, i: int) -> tuple[float, float, float, float]:
        """(created_at, last_seen_at, expires_at, absolute_at) of session ``i``."""
        f1 = (i * _PHI + 0.1) % 1.0
        f2 = (i * _PLASTIC + 0.3) % 1.0
        idle, absolute = CONFIG.idle_timeout, CONFIG.absolute_timeout
        if self.end is None:
            created = self.now - absolute * (11 / 12) * f1
            last_seen = max(created, self.now - 60.0 * f2)
            expires = min(last_seen + idle, created + absolute)
            return created, last_seen, expires, created + absolute
        last_seen = self.end - idle + self.spread * f2
        created = last_seen - 7200.0 * f1
        return created, last_seen, last_seen + idle, created + absolute

    def record(self, i: int, template: SessionRecord) -> SessionRecord:
        _, key, handle, user = self.ident(i)
        created, last_seen, expires, absolute = self.times(i)
        return replace(
            template,
            key=key,
            handle=handle,
            user_id=user,
            data=json.loads(json.dumps(template.data)),
            meta=dict(template.meta),
            created_at=created,
            last_seen_at=last_seen,
            expires_at=expires,
            absolute_at=absolute,
            auth_at=created,
        )

    def deadlines(self) -> tuple[float, float]:
        """Earliest and latest idle deadline (bounds, for clock checks)."""
        idle = CONFIG.idle_timeout
        if self.end is None:
            return self.now - 60.0 + idle, self.now + idle
        return self.end, self.end + self.spread


async def make_template() -> SessionRecord:
    """The record coatcheck itself writes for a shopper who logged in and filled a cart:
    created through the manager, so its metadata (assurance level, client) is the real one."""
    store = MemoryStore()
    manager = SessionManager(store, CONFIG)
    session = await manager.load(None, CLIENT)
    session.login("user-0")
    session["cart"] = CART
    result = await manager.commit(session)
    if result.token is None:
        raise BenchError("template: the login did not create a session")
    record = await store.get(tokens.storage_key(result.token))
    if record is None or record.user_agent is None or record.ip is None:
        raise BenchError(f"template: unexpected record {record!r}")
    return record


# -- statistics ----------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted ``values``."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


@dataclass(slots=True)
class Latency:
    """Microseconds per load."""

    samples: list[float]

    def __post_init__(self) -> None:
        self.samples.sort()

    @property
    def count(self) -> int:
        return len(self.samples)

    @property
    def p50(self) -> float:
        return quantile(self.samples, 0.50)

    @property
    def p99(self) -> float:
        return quantile(self.samples, 0.99)

    @property
    def p999(self) -> float:
        return quantile(self.samples, 0.999)

    @property
    def max(self) -> float:
        return self.samples[-1] if self.samples else math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "loads": self.count,
            "p50_us": round(self.p50, 1),
            "p99_us": round(self.p99, 1),
            "p999_us": round(self.p999, 1),
            "max_us": round(self.max, 1),
        }


def _check_session(session: Any, pop: Population, i: int, template: SessionRecord) -> None:
    _, _, handle, user = pop.ident(i)
    if session.is_new or session.user_id != user or session.handle != handle:
        raise BenchError(
            f"{pop.tag}: session {i} did not load as stored (new={session.is_new}, "
            f"user={session.user_id!r}, expected {user!r})"
        )
    if dict(session) != template.data:
        raise BenchError(f"{pop.tag}: session {i} loaded wrong data: {dict(session)!r}")


async def check_loads(
    manager: SessionManager, pop: Population, template: SessionRecord, k: int = 5
) -> None:
    """A few loads must return the very session that was filled (right user, handle, cart),
    and an unknown token must not: a fill that wrote the wrong layout aborts the run."""
    rng = random.Random(f"check-{pop.tag}")
    for i in [0, pop.count - 1, *(rng.randrange(pop.count) for _ in range(k))]:
        _check_session(await manager.load(pop.token(i), CLIENT), pop, i, template)
    stranger = await manager.load(tokens.new_token(), CLIENT)
    if not stranger.is_new:
        raise BenchError(f"{pop.tag}: an unknown token loaded a session")


async def timed_loads(
    manager: SessionManager, pop: Population, n: int, rng: random.Random
) -> list[float]:
    """``n`` loads of random sessions of ``pop``, each timed (µs); tokens are derived before
    the clock starts. Every load must find its session."""
    chosen = [rng.randrange(pop.count) for _ in range(n)]
    batch = [pop.token(i) for i in chosen]
    out = [0.0] * n
    load, clock = manager.load, time.perf_counter_ns
    gc.disable()
    try:
        for j, token in enumerate(batch):
            start = clock()
            session = await load(token, CLIENT)
            out[j] = (clock() - start) / 1000
            if session.is_new:
                raise BenchError(f"{pop.tag}: session {chosen[j]} did not load")
    finally:
        gc.enable()
    return out


@dataclass(slots=True)
class Reader:
    """One reader: loads random live sessions of ``pop`` until stopped, as a request handler
    in the same event loop would, one after another.

    Each sample runs from the moment the reader is ready to issue its next load to the end
    of that load, including the wait for the event loop (it yields before every load). A
    purge that holds the loop therefore shows up as the latency a request would have seen,
    instead of vanishing between two samples."""

    manager: SessionManager
    pop: Population
    starts: list[int] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    stopped: bool = False

    async def run(self) -> None:
        rng = random.Random(f"reader-{self.pop.tag}")
        load, clock, pop = self.manager.load, time.monotonic_ns, self.pop
        starts, durations = self.starts, self.durations
        while not self.stopped:
            token = pop.token(rng.randrange(pop.count))
            start = clock()
            await asyncio.sleep(0)
            session = await load(token, CLIENT)
            durations.append((clock() - start) / 1000)
            starts.append(start)
            if session.is_new:
                raise BenchError(f"{pop.tag}: a live session did not load during the purge")

    def window(self, start: int, end: int) -> Latency:
        """Samples that overlapped [start, end] (monotonic ns)."""
        return Latency(
            [
                d
                for s, d in zip(self.starts, self.durations, strict=True)
                if s <= end and s + d * 1000 >= start
            ]
        )

    def before(self, start: int, end: int) -> Latency:
        """Samples that started and ended inside [start, end)."""
        return Latency(
            [
                d
                for s, d in zip(self.starts, self.durations, strict=True)
                if s >= start and s + d * 1000 < end
            ]
        )


@contextlib.asynccontextmanager
async def reading(reader: Reader) -> AsyncIterator[Reader]:
    """Run ``reader`` as a task for the duration of the block; its errors surface here."""
    task = asyncio.create_task(reader.run())
    try:
        yield reader
    finally:
        reader.stopped = True
        await task
