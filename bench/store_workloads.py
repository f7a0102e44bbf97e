"""Server-backed session stores measured in-process: what the Redis and PostgreSQL scenarios
share.

Every configuration is the ASGI scenario's Starlette app (``asgi_middleware.ROUTES``: ``/read``
answers ``session["n"]``, ``/write`` increments it) called in-process, so the numbers are the
session layer plus its server round trips, without sockets to the app or HTTP parsing. Three
kinds of configuration:

- ``none``: the bare app, a fresh plain dict per request, nothing kept (the baseline);
- ``global``: the raw client floor: the bare app whose handlers talk to the server directly
  with the same client library, on one fixed key or row (no cookie, no session layer). It
  makes the round trips an ideal session layer needs and nothing else, so it is the lower
  bound that "within 1.15x of the floor" is measured against;
- ``session``: a session middleware, one session per browser through its cookie.

Proofs, so that a broken configuration can never report a fast number: before timing, three
writes then a read that answers 3 (a cookie-less stranger still reads 0), and the counter is
read back *from the server* (not from the app), so state that silently stayed in process
memory fails the run; during timing every answer is checked; after timing the writing
session (or the floor's key) holds exactly the number of writes sent, again read from the
server. Round trips (and statements) are counted in the harness's untimed audit pass by a
scenario-supplied ``wire`` counter, and the counts the design promises are asserted.

Unless BENCH_N is set, requests per repetition are cut so that a workload takes about
``BUDGET_SECONDS`` (a note under the table says so).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from rich.console import Console

from .asgi_client import ASGIApp, AsgiClient
from .harness import (
    BenchError,
    Case,
    Role,
    Settings,
    StoreProbe,
    WireCounter,
    WorkloadResult,
    blame,
    measure,
)

State = Literal["none", "global", "session"]

COATCHECK_READS = ("get",)
COATCHECK_WRITES = ("create", "apply", "rename", "delete")


@dataclass(slots=True)
class Built:
    app: ASGIApp
    state: State
    cookie_name: str | None = None
    """The session cookie the first write must set (``session`` configurations)."""
    probe: StoreProbe | None = None
    expect_read_writes: float | None = None
    """Store writes a read-only request may make (coatcheck promises 0 between touches)."""
    stored: Callable[[], Awaitable[list[int]]] | None = None
    """Every counter this configuration keeps, read straight from the server."""
    expect_read_wire: dict[str, float] = field(default_factory=dict)
    expect_write_wire: dict[str, float] = field(default_factory=dict)
    """Round trips / statements per request the design promises (asserted in the audit)."""


Builder = Callable[[contextlib.AsyncExitStack, str], Awaitable[Built]]
"""Builds one configuration; the string is unique per workload and configuration (use it
in key prefixes and table names). Cleanup goes on the exit stack."""


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    role: Role
    build: Builder
    note: str = ""
    slug: str = ""
    """Short identifier for key prefixes and table names."""


@dataclass(frozen=True, slots=True)
class Target:
    """A ratio the issue sets: ``ours`` overhead ÷ ``other`` overhead at most ``limit``."""

    workload: str
    """``read`` or ``write``."""
    ours: str
    other: str
    limit: float


def require(condition: bool, what: str) -> None:
    if not condition:
        raise BenchError(what)


async def _check_stored(built: Built, expected: int) -> None:
    if built.stored is None:
        return
    values = await built.stored()
    require(
        expected in values,
        f"the server holds counters {sorted(values)[:10]}, not {expected}: "
        "the state is not where the configuration claims to keep it",
    )


async def establish(built: Built) -> AsgiClient:
    """Return a client whose state holds n == 3, after proving the configuration keeps it
    (or, for the bare app, that it keeps nothing)."""
    client = AsgiClient(built.app)
    first = await client.get("/write")
    require(first.status == 200, f"first /write answered {first.status}")
    require(first.body == b"1", f"first /write answered {first.body!r}, not b'1'")
    if built.state == "none":
        again = await client.get("/read")
        require(again.body == b"0", "the bare app kept state it should not keep")
        return client
    if built.state == "session":
        require(
            built.cookie_name in client.cookies,
            f"first /write set no {built.cookie_name} cookie (got {first.header(b'set-cookie')})",
        )
    for expected in (b"2", b"3"):
        response = await client.get("/write")
        require(response.body == expected, f"/write answered {response.body!r}")
    response = await client.get("/read")
    require(response.body == b"3", f"after 3 writes /read answered {response.body!r}")
    if built.state == "session":
        stranger = await AsgiClient(built.app).get("/read")
        require(stranger.body == b"0", f"a client without the cookie read {stranger.body!r}")
    await _check_stored(built, 3)
    return client


async def read_case(config: Config, built: Built, wire: WireCounter | None) -> Case:
    client = await establish(built)
    client.expect_body = b"0" if built.state == "none" else b"3"

    async def check() -> None:
        await _check_stored(built, 3)

    return Case(
        config.name,
        config.role,
        client.runner("/read"),
        check,
        probe=built.probe,
        expect_writes=built.expect_read_writes,
        note=config.note,
        wire=wire,
        expect_wire=built.expect_read_wire,
    )


async def write_case(config: Config, built: Built, wire: WireCounter | None) -> Case:
    client = await establish(built)
    if built.state == "none":
        client.expect_body = b"1"
        return Case(
            config.name,
            config.role,
            client.runner("/write"),
            note=config.note,
            wire=wire,
            expect_wire=built.expect_write_wire,
        )

    inner = client.runner("/write")
    sent = 0

    async def run(n: int) -> None:
        nonlocal sent
        await inner(n)
        sent += n

    async def check() -> None:
        # Every write of warm-up and timing landed, in order, in one session (or key).
        expected = 3 + sent
        response = await client.get("/read")
        require(
            response.body == str(expected).encode(),
            f"after {expected} writes /read answered {response.body!r}",
        )
        await _check_stored(built, expected)

    return Case(
        config.name,
        config.role,
        run,
        check,
        built.probe,
        note=config.note,
        wire=wire,
        expect_wire=built.expect_write_wire,
    )


def target_notes(result: WorkloadResult, workload: str, targets: list[Target]) -> list[str]:
    """One line per target of the issue: the ratio measured in this run, met or missed."""
    notes = []
    rows = {row.name: row for row in result.rows}
    for target in targets:
        if target.workload != workload or target.ours not in rows or target.other not in rows:
            continue
        ours, other = rows[target.ours], rows[target.other]
        other_overhead = result.overhead(other)
        whole = ours.median / other.median
        if other_overhead <= 0:
            notes.append(
                f"target {target.ours} overhead <= {target.limit:.2f}x {target.other}'s: "
                f"n/a ({target.other} adds nothing measurable); whole request {whole:.2f}x"
            )
            continue
        ratio = result.overhead(ours) / other_overhead
        verdict = "met" if ratio <= target.limit else "MISSED"
        notes.append(
            f"target {target.ours} overhead <= {target.limit:.2f}x {target.other}'s: "
            f"{ratio:.2f}x, {verdict} (whole request: {whole:.2f}x its µs per request)"
        )
    return notes


BUDGET_SECONDS = 25.0
"""Target duration of one workload when BENCH_N is not set: a request that waits for a
server costs ten to a hundred times an in-process one, so the in-process default of 1000
requests per repetition would take minutes (PostgreSQL commits wait for an fsync)."""

MIN_REQUESTS = 100
"""Fewest requests per repetition: below this, timer and loop overheads show."""

CALIBRATION = 50
"""Requests per case timed once to estimate the cost of a repetition (also warm-up)."""


async def budget(cases: list[Case], settings: Settings, console: Console, title: str) -> Settings:
    """``settings`` fitted to the time budget, unless the user chose BENCH_N: up to four
    times the repetitions, of as many requests as fit (at most ``settings.n``).
    Round-trip-bound cases drift with the host over seconds, and many short interleaved
    repetitions spread that drift over every case alike (measured: the Redis ratio moved
    by ±0.1 between runs of 15 repetitions, by ±0.04 with 60-75)."""
    if os.environ.get("BENCH_N", "").strip():
        return settings
    seconds = 0.0
    with console.status(f"[bold]{title}[/]: estimating the cost of a request"):
        for case in cases:
            with blame(title, case.name):
                start = time.perf_counter()
                await case.run(CALIBRATION)
                seconds += (time.perf_counter() - start) / CALIBRATION
    # warm-up + repetitions + audit, each a pass over every case
    requests = BUDGET_SECONDS / seconds - settings.audit
    reps = settings.reps * 4
    n = int(requests / (reps + 1))
    while n < MIN_REQUESTS and reps > settings.reps:
        reps //= 2
        n = int(requests / (reps + 1))
    n = max(MIN_REQUESTS, min(settings.n, n))
    if (n, reps) == (settings.n, settings.reps):
        return settings
    return dataclasses.replace(
        settings, n=n, reps=reps, warmup=min(settings.warmup, n), audit=min(settings.audit, n)
    )


async def run_workloads(
    scenario: str,
    label: str,
    configs: list[Config],
    settings: Settings,
    console: Console,
    *,
    wire: WireCounter | None,
    notes: list[str],
    targets: list[Target],
    fit_budget: bool = True,
) -> list[WorkloadResult]:
    """Measure every configuration on read-only, then writing, requests. ``fit_budget``
    (server stores) fits the requests and repetitions to ``BUDGET_SECONDS`` per workload;
    in-process scenarios keep the settings as given."""
    results = []
    for workload, title, make in (
        ("read", f"{label}, read-only request (GET /read)", read_case),
        ("write", f"{label}, writing request (GET /write)", write_case),
    ):
        key = f"{scenario}.{workload}"
        async with contextlib.AsyncExitStack() as stack:
            cases = []
            for config in configs:
                with blame(key, f"setting up {config.name}"):
                    built = await config.build(stack, f"{workload}_{config.slug}")
                    cases.append(await make(config, built, wire))
            budgeted = await budget(cases, settings, console, title) if fit_budget else settings
            result = await measure(key, title, cases, budgeted, console)
        if budgeted.n != settings.n:
            result.notes.append(
                f"{budgeted.reps} repetitions of {budgeted.n} requests (not {settings.reps} "
                f"of {settings.n}) to keep this workload near {BUDGET_SECONDS:.0f} s; set "
                "BENCH_N to choose"
            )
        result.notes.extend(target_notes(result, workload, targets))
        result.notes.extend(notes)
        results.append(result)
    return results


@contextlib.contextmanager
def counting_calls(targets: list[tuple[Any, str, str]]) -> Iterator[dict[str, int]]:
    """Count calls of client-library methods, e.g. ``(AbstractConnection,
    "send_packed_command", "round trips")``, while the context is open.

    The wrappers go on the classes, not on instances, because a client hides its many pooled
    connections; they are removed on exit, so the timed passes run the library's own code.
    Each method must be defined on the class named (not inherited), so that restoring it is
    exact. A module's function counts the same way (its ``__dict__`` entry is replaced).
    """
    counts = {label: 0 for _, _, label in targets}
    saved: list[tuple[Any, str, Any]] = []
    try:
        for cls, name, label in targets:
            original = cls.__dict__[name]
            saved.append((cls, name, original))
            setattr(cls, name, _counting(original, counts, label))
        yield counts
    finally:
        for cls, name, original in reversed(saved):
            setattr(cls, name, original)


def _counting(function: Any, counts: dict[str, int], label: str) -> Any:
    if inspect.iscoroutinefunction(function):

        @functools.wraps(function)
        async def counted_async(*args: Any, **kwargs: Any) -> Any:
            counts[label] += 1
            return await function(*args, **kwargs)

        return counted_async

    @functools.wraps(function)
    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[label] += 1
        return function(*args, **kwargs)

    return counted
