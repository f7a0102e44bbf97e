"""Timing, statistics and reporting shared by every benchmark scenario.

A scenario (ASGI middleware today; Redis, PostgreSQL, Flask, Django later) only builds
``Case`` objects: a name, a role (the baseline, coatcheck, or a peer library) and a coroutine
that performs ``n`` requests. Everything that decides whether a number can be trusted lives
here, once:

- all cases of a workload are measured in the same process and event loop, with their
  repetitions interleaved (rep 1 of every case, then rep 2, ...), in an order rotated per
  repetition, so CPU frequency drift or a noisy neighbour hits every case alike instead of
  making whichever ran last look slow;
- the garbage collector is paused inside a timed repetition (as ``timeit`` does) and run
  between repetitions, so one case does not pay for another's garbage;
- every case is checked after timing (``Case.check``), so a configuration that silently
  dropped its state can never report a fast number;
- store calls are counted in a separate audit pass, never while timing, so the counters
  cost the measured numbers nothing.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import importlib.metadata
import inspect
import os
import platform
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

Runner = Callable[[int], Awaitable[None]]
"""Performs ``n`` requests against one configuration; raises BenchError on a bad answer."""

WireCounter = Callable[[], contextlib.AbstractContextManager[dict[str, int]]]
"""Counts traffic to a server (round trips, statements, ...) while its context is open;
the dict it yields is filled as the counted requests run."""


class BenchError(RuntimeError):
    """A configuration failed a self-check: its timings must not be reported."""


class Role(enum.Enum):
    BASELINE = "baseline"
    """The same app without session machinery: what every overhead is measured against."""
    COATCHECK = "coatcheck"
    PEER = "peer"


# -- settings ------------------------------------------------------------------------------


def _env_int(name: str, default: int, minimum: int) -> int:
    """An integer setting from the environment; ``1_000_000``, ``1,000,000`` and ``1e6``
    are read as a million."""
    raw = os.environ.get(name, "").replace("_", "").replace(",", "").strip()
    if not raw:
        return default
    try:
        value = int(float(raw)) if "e" in raw.lower() else int(raw)
    except ValueError:
        raise BenchError(f"{name}={os.environ[name]!r} is not an integer") from None
    if value < minimum:
        raise BenchError(f"{name} must be at least {minimum}, got {value}")
    return value


DEFAULT_N = 1000
DEFAULT_REPS = 15
DEFAULT_WARMUP = 500
DEFAULT_AUDIT = 200


@dataclass(frozen=True, slots=True)
class Settings:
    """How much to measure. The defaults keep a full run under a minute on two cores."""

    n: int = DEFAULT_N
    """Requests per timed repetition."""
    reps: int = DEFAULT_REPS
    """Timed repetitions per case; the median is reported, min and max show the spread.
    Many short repetitions beat a few long ones on a shared machine: a burst of foreign
    load spoils one or two samples, which the median then ignores."""
    warmup: int = DEFAULT_WARMUP
    """Untimed requests per case first (caches, SQLite page cache, specialised bytecode)."""
    audit: int = DEFAULT_AUDIT
    """Requests in the store-counting pass that follows the timing."""

    @classmethod
    def from_env(cls) -> Settings:
        n = _env_int("BENCH_N", DEFAULT_N, 1)
        return cls(
            n=n,
            reps=_env_int("BENCH_REPS", DEFAULT_REPS, 1),
            warmup=_env_int("BENCH_WARMUP", min(n, DEFAULT_WARMUP), 0),
            audit=min(n, DEFAULT_AUDIT),
        )


# -- store call counting -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreProbe:
    """Which methods of a store object are reads and which are writes.

    ``counting()`` shadows those methods with counting wrappers on the instance and removes
    the wrappers afterwards, so the timed passes run the store's own, unwrapped methods.
    """

    store: object
    reads: tuple[str, ...]
    writes: tuple[str, ...]

    @contextlib.contextmanager
    def counting(self) -> Iterator[dict[str, int]]:
        counts = {"reads": 0, "writes": 0}
        patched: list[str] = []
        try:
            for kind, names in (("reads", self.reads), ("writes", self.writes)):
                for name in names:
                    original = getattr(self.store, name)
                    setattr(self.store, name, _counted(original, counts, kind))
                    patched.append(name)
            yield counts
        finally:
            for name in patched:
                delattr(self.store, name)


def _counted(method: Callable[..., Any], counts: dict[str, int], kind: str) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(method):

        async def counted_async(*args: Any, **kwargs: Any) -> Any:
            counts[kind] += 1
            return await method(*args, **kwargs)

        return counted_async

    def counted(*args: Any, **kwargs: Any) -> Any:
        counts[kind] += 1
        return method(*args, **kwargs)

    return counted


# -- cases and results ---------------------------------------------------------------------


@dataclass(slots=True)
class Case:
    """One configuration under one workload."""

    name: str
    role: Role
    run: Runner
    check: Callable[[], Awaitable[None]] | None = None
    """Called after timing; raises BenchError if the configuration lost or corrupted state."""
    probe: StoreProbe | None = None
    """Store to audit; None for configurations without a server-side store."""
    expect_writes: float | None = None
    """Store writes per request the design promises (e.g. 0 for coatcheck reads)."""
    note: str = ""
    wire: WireCounter | None = None
    """Counts what crosses the wire to a server in the audit pass (never while timing);
    each key it counts becomes a column of the table, per request."""
    expect_wire: dict[str, float] = field(default_factory=dict)
    """Wire counts per request the design promises, e.g. ``{"round trips": 1}``."""


@dataclass(slots=True)
class CaseResult:
    name: str
    role: Role
    samples_us: list[float]
    """Microseconds per request, one value per timed repetition."""
    reads_per_request: float | None = None
    writes_per_request: float | None = None
    note: str = ""
    wire_per_request: dict[str, float] = field(default_factory=dict)
    """Round trips, statements, ... per request (see ``Case.wire``)."""

    @property
    def median(self) -> float:
        return statistics.median(self.samples_us)

    @property
    def min(self) -> float:
        return min(self.samples_us)

    @property
    def max(self) -> float:
        return max(self.samples_us)


@dataclass(slots=True)
class WorkloadResult:
    """All cases of one workload (say, read-only requests through ASGI middleware)."""

    key: str
    title: str
    rows: list[CaseResult]
    notes: list[str] = field(default_factory=list)

    @property
    def baseline(self) -> CaseResult:
        for row in self.rows:
            if row.role is Role.BASELINE:
                return row
        raise BenchError(f"{self.key}: no baseline case")

    def overhead(self, row: CaseResult) -> float:
        """Microseconds per request that the session layer adds (median minus baseline)."""
        return row.median - self.baseline.median

    def ratio(self, row: CaseResult) -> float:
        return row.median / self.baseline.median

    def comparisons(self) -> list[dict[str, Any]]:
        """coatcheck's overhead divided by each peer's: below 1 means coatcheck adds less."""
        out = []
        for ours in self.rows:
            if ours.role is not Role.COATCHECK:
                continue
            for peer in self.rows:
                if peer.role is not Role.PEER:
                    continue
                peer_overhead = self.overhead(peer)
                ratio = self.overhead(ours) / peer_overhead if peer_overhead > 0 else None
                text = (
                    f"{ours.name} {self.key} overhead = "
                    f"{'n/a' if ratio is None else f'{ratio:.2f}x'} {peer.name}"
                )
                out.append(
                    {
                        "coatcheck": ours.name,
                        "peer": peer.name,
                        "overhead_ratio": ratio,
                        "text": text,
                    }
                )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "notes": self.notes,
            "rows": [
                {
                    "name": row.name,
                    "role": row.role.value,
                    "samples_us_per_request": [round(s, 3) for s in row.samples_us],
                    "median_us": round(row.median, 3),
                    "min_us": round(row.min, 3),
                    "max_us": round(row.max, 3),
                    "overhead_us": round(self.overhead(row), 3),
                    "ratio_to_baseline": round(self.ratio(row), 4),
                    "store_reads_per_request": row.reads_per_request,
                    "store_writes_per_request": row.writes_per_request,
                    "wire_per_request": row.wire_per_request,
                    "note": row.note,
                }
                for row in self.rows
            ],
            "comparisons": [
                {
                    **c,
                    "overhead_ratio": None
                    if c["overhead_ratio"] is None
                    else round(c["overhead_ratio"], 4),
                }
                for c in self.comparisons()
            ],
        }


# -- measuring -----------------------------------------------------------------------------


async def _timed(run: Runner, n: int) -> int:
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        await run(n)
        return time.perf_counter_ns() - start
    finally:
        gc.enable()


@contextlib.contextmanager
def blame(*where: str) -> Iterator[None]:
    """Prefix a BenchError with the workload and case it happened in."""
    try:
        yield
    except BenchError as exc:
        raise BenchError(f"{': '.join(where)}: {exc}") from exc


async def measure(
    key: str, title: str, cases: list[Case], settings: Settings, console: Console
) -> WorkloadResult:
    """Warm up, time ``settings.reps`` interleaved repetitions, check, then audit."""
    if sum(case.role is Role.BASELINE for case in cases) != 1:
        raise BenchError(f"{key}: exactly one baseline case is required")
    samples: dict[str, list[float]] = {case.name: [] for case in cases}
    rows = []
    with console.status(f"[bold]{title}[/]: warming up") as status:
        for case in cases:
            with blame(key, case.name):
                await case.run(settings.warmup)
        for rep in range(settings.reps):
            status.update(f"[bold]{title}[/]: repetition {rep + 1}/{settings.reps}")
            shift = rep % len(cases)
            for case in cases[shift:] + cases[:shift]:
                with blame(key, case.name):
                    elapsed = await _timed(case.run, settings.n)
                samples[case.name].append(elapsed / settings.n / 1000)
        status.update(f"[bold]{title}[/]: checking state and counting store calls")
        for case in cases:
            with blame(key, case.name):
                rows.append(await _verify(case, samples[case.name], settings))
    return WorkloadResult(key, title, rows)


async def _verify(case: Case, samples: list[float], settings: Settings) -> CaseResult:
    """Check the case kept its state, then count its store calls in an untimed pass."""
    if case.check is not None:
        await case.check()
    row = CaseResult(case.name, case.role, samples, note=case.note)
    if case.probe is None and case.wire is None:
        return row
    with contextlib.ExitStack() as stack:
        counts = stack.enter_context(case.probe.counting()) if case.probe is not None else None
        wire = stack.enter_context(case.wire()) if case.wire is not None else None
        await case.run(settings.audit)
    if counts is not None:
        row.reads_per_request = counts["reads"] / settings.audit
        row.writes_per_request = counts["writes"] / settings.audit
        if case.expect_writes is not None and row.writes_per_request != case.expect_writes:
            raise BenchError(
                f"{row.writes_per_request:g} store writes per request; "
                f"the design promises {case.expect_writes:g}"
            )
    if wire is not None:
        row.wire_per_request = {name: n / settings.audit for name, n in wire.items()}
    for name, expected in case.expect_wire.items():
        got = row.wire_per_request.get(name)
        if got != expected:
            raise BenchError(
                f"{'no' if got is None else f'{got:g}'} {name} per request; "
                f"the design promises {expected:g}"
            )
    return row


# -- reporting -----------------------------------------------------------------------------


def environment(packages: Iterable[str]) -> dict[str, Any]:
    """Where the numbers came from: they mean little without it."""
    versions: dict[str, str | None] = {}
    for name in sorted(set(packages)):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        usable_cpus: int | None = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable_cpus = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus,
        "packages": versions,
    }


def render_header(console: Console, env: dict[str, Any], settings: Settings) -> None:
    packages = ", ".join(
        f"{name} {version or 'missing'}" for name, version in env["packages"].items()
    )
    console.print(
        f"[bold]coatcheck benchmark[/]  {env['implementation']} {env['python']} on "
        f"{env['platform']} ({env['machine']}), {env['cpu_count']} CPUs"
        + (f" ({env['usable_cpus']} usable)" if env["usable_cpus"] != env["cpu_count"] else "")
    )
    console.print(f"packages: {packages}")
    console.print(
        f"method: {settings.reps} interleaved repetitions x {settings.n} requests per case, "
        f"{settings.warmup} warm-up requests first, GC paused while timing"
    )


NOISY_SPREAD = 0.25
"""Spread (max - min, relative to the median) above which a row is flagged as noisy."""


def _per_request(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value else "0"


def render(console: Console, result: WorkloadResult) -> None:
    custom = getattr(result, "render", None)
    if custom is not None:  # a workload measured in other units (e.g. requests per second)
        custom(console)
        return
    wire_columns = list(dict.fromkeys(name for row in result.rows for name in row.wire_per_request))
    table = Table(
        title=result.title,
        title_justify="left",
        title_style="bold",
        caption="µs per request: median, min, max over repetitions; overhead = median - bare "
        "median.\nStore reads and writes per request, counted in a separate untimed pass.",
        caption_justify="left",
    )
    table.add_column("configuration", no_wrap=True)
    for heading in ("median", "min", "max", "overhead", "x bare"):
        table.add_column(heading, justify="right")
    table.add_column("store reads", justify="right")
    table.add_column("store writes", justify="right")
    for name in wire_columns:
        table.add_column(name, justify="right")
    for row in result.rows:
        baseline = row.role is Role.BASELINE
        style = "bold green" if row.role is Role.COATCHECK else ("dim" if baseline else "")
        table.add_row(
            row.name + (f" [dim]({row.note})[/]" if row.note else ""),
            f"{row.median:.1f}",
            f"{row.min:.1f}",
            f"{row.max:.1f}",
            "—" if baseline else f"{result.overhead(row):+.1f}",
            "1.00x" if baseline else f"{result.ratio(row):.2f}x",
            _per_request(row.reads_per_request),
            _per_request(row.writes_per_request),
            *(_per_request(row.wire_per_request.get(name)) for name in wire_columns),
            style=style,
        )
    console.print(table)
    for note in result.notes:
        console.print(f"[dim]note:[/] {note}")
    noisy = [row.name for row in result.rows if (row.max - row.min) > NOISY_SPREAD * row.median]
    if noisy:
        console.print(
            f"[yellow]noisy: max - min exceeds {NOISY_SPREAD:.0%} of the median for "
            f"{', '.join(noisy)}; another process was probably competing for the CPU. "
            "Medians of interleaved repetitions resist this; rerun (or raise BENCH_REPS) "
            "before trusting small differences.[/]"
        )

    comparisons = result.comparisons()
    if not comparisons:
        return
    peers = list(dict.fromkeys(c["peer"] for c in comparisons))
    ours = list(dict.fromkeys(c["coatcheck"] for c in comparisons))
    matrix = Table(
        title="coatcheck overhead ÷ peer overhead",
        title_justify="left",
        caption="below 1.00x: coatcheck adds less time per request than that peer",
        caption_justify="left",
    )
    matrix.add_column("")
    for peer in peers:
        matrix.add_column(peer, justify="right")
    lookup = {(c["coatcheck"], c["peer"]): c["overhead_ratio"] for c in comparisons}
    for name in ours:
        cells = []
        for peer in peers:
            ratio = lookup[(name, peer)]
            cells.append("n/a" if ratio is None else f"{ratio:.2f}x")
        matrix.add_row(name, *cells)
    console.print(matrix)
    console.print()


@dataclass(frozen=True, slots=True)
class Scenario:
    """A registered benchmark: ``python -m bench NAME`` runs it."""

    name: str
    description: str
    packages: tuple[str, ...]
    """Distributions whose versions the report header shows."""
    run: Callable[[Settings, Console], Awaitable[list[WorkloadResult]]]
