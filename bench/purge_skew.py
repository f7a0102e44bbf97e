"""``python -m bench skew`` (opt-in): a Redis purge with the app's clock ahead of the
server's, next to the same purge with the clocks in sync, interleaved (issue 18).

Two private ``redis-server`` processes (``--save ""``), each holding ``BENCH_SKEW_N``
sessions written through ``RedisStore.create_sync`` (a user id, a 3-item cart, a browser's
user agent): on one the sessions end in an hour and the purge runs on the server's clock,
so nothing is due (what ``coatcheck purge`` costs on Redis with NTP); on the other they end
in 20 minutes and the purge's clock is 21 minutes ahead, so every record is due on the
app's clock but not on Redis' (the TTL is the deadline on the clock that wrote it), and the
purge deletes them all. Both keyspaces have the same size. ``BENCH_SKEW_REPS``
repetitions alternate the order of the two purges; the skewed server is filled again
before each. Reported: seconds of each purge and the median of the per-repetition ratios
(target: at most 1.5x). Each purge must delete exactly what is due (0, or every session)
or the run aborts. About a minute.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from coatcheck.core import tokens
from coatcheck.core.record import SessionRecord
from coatcheck.stores.redis import RedisStore

from .harness import BenchError, Scenario, Settings, WorkloadResult, _env_int
from .scale_stores import RedisServer

TARGET = 1.5
AHEAD = 1260.0
"""The purge's clock runs 21 minutes ahead; the skewed sessions end in 20."""
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@dataclass(slots=True)
class SkewResult(WorkloadResult):
    in_sync: list[float] = field(default_factory=list)
    ahead: list[float] = field(default_factory=list)
    sessions: int = 0

    @property
    def ratio(self) -> float:
        return statistics.median(a / b for a, b in zip(self.ahead, self.in_sync, strict=True))

    def render(self, console: Console) -> None:
        console.print(f"[bold]{self.title}[/]")
        console.print(
            f"  clocks in sync, nothing due: {_seconds(self.in_sync)}\n"
            f"  clock {AHEAD / 60:.0f} min ahead, all {self.sessions:,} due: "
            f"{_seconds(self.ahead)}"
        )
        verdict = "met" if self.ratio <= TARGET else "MISSED"
        console.print(
            f"  target: the skewed purge at most {TARGET}x the purge in sync: "
            f"{self.ratio:.2f}x (median of the repetitions' ratios), {verdict}"
        )
        for note in self.notes:
            console.print(f"  [dim]note:[/] {note}")
        console.print()

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "sessions": self.sessions,
            "in_sync_seconds": self.in_sync,
            "ahead_seconds": self.ahead,
            "ratio": self.ratio,
            "notes": self.notes,
        }


def _seconds(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} s ({', '.join(f'{v:.2f}' for v in values)})"


def _fill(store: RedisStore, n: int, ends_in: float) -> None:
    now = time.time()
    for i in range(n):
        store.create_sync(
            SessionRecord(
                key=tokens.storage_key(tokens.new_token()),
                handle=tokens.new_handle(),
                data={"cart": ["sku-1", "sku-2", "sku-3"]},
                created_at=now,
                last_seen_at=now,
                expires_at=now + ends_in,
                absolute_at=now + 43_200,
                user_id=f"user-{i}",
                user_agent=USER_AGENT,
                ip="203.0.113.0",
            )
        )


async def run(settings: Settings, console: Console) -> list[WorkloadResult]:
    n = _env_int("BENCH_SKEW_N", 10_000, 100)
    reps = _env_int("BENCH_SKEW_REPS", 5, 1)
    result = SkewResult(
        "redis.purge_skew", "Redis purge: app clock ahead vs in sync (separate servers)", []
    )
    result.sessions = n
    with contextlib.ExitStack() as stack:
        directory = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cc-skew-")))
        servers = [RedisServer(directory, name) for name in ("sync", "ahead")]
        for server in servers:
            server.start()
            stack.callback(server.stop)
        in_sync, ahead = (RedisStore.from_url(f"redis://127.0.0.1:{s.port}/0") for s in servers)
        for store in (in_sync, ahead):
            stack.callback(store.close_sync)
        with console.status("[bold]skew[/]: filling"):
            _fill(in_sync, n, 3600.0)
        for rep in range(reps):
            with console.status(f"[bold]skew[/]: repetition {rep + 1}/{reps}"):
                _fill(ahead, n, 1200.0)
                for which in ("sync", "ahead") if rep % 2 == 0 else ("ahead", "sync"):
                    store = in_sync if which == "sync" else ahead
                    now = time.time() + (AHEAD if which == "ahead" else 0.0)
                    start = time.perf_counter()
                    deleted = store.purge_expired_sync(now, 1000)
                    seconds = time.perf_counter() - start
                    expected = n if which == "ahead" else 0
                    if deleted != expected:
                        raise BenchError(
                            f"skew: the {which} purge deleted {deleted:,}, not {expected:,}"
                        )
                    (result.ahead if which == "ahead" else result.in_sync).append(seconds)
    load = os.getloadavg()
    result.notes.append(
        f"{n:,} sessions per server, {reps} repetitions, order alternated; load average "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end"
    )
    return [result]


SCENARIO = Scenario(
    name="skew",
    description="Redis purge with the app's clock 21 minutes ahead vs in sync, interleaved",
    packages=("coatcheck", "redis"),
    run=run,
)
