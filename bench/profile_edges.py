"""``python -m bench.profile_edges [NAME ...]``: cProfile one coatcheck configuration of a
scenario (and its floor, for comparison) over a few thousand requests, and write the text
summary to ``bench/profiles/NAME.txt``. ``--pair A B`` times two WSGI configurations
against each other instead, interleaved and without the profiler.

Deterministic profiling slows every Python call alike, so a profile says where the time of
a path goes relative to its other parts, not how long the path takes: the bench's tables
say that. Each profile is taken after the configuration proved it keeps state (the same
``establish`` as the bench) and after warm-up requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import io
import pstats
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console

OUT = Path(__file__).parent / "profiles"
REQUESTS = 3000
WARMUP = 300


def _wsgi(module: str, builder: str, path: str, console: Console) -> Callable[..., Any]:
    def make(stack: contextlib.ExitStack) -> Callable[[int], Awaitable[None]]:
        import importlib
        import inspect

        from .wsgi_client import establish

        mod = importlib.import_module(module)
        build = getattr(mod, builder)
        if "console" in inspect.signature(build).parameters:
            built = build(console, builder, stack)
        else:
            built = build(stack)
        if built is None:
            raise SystemExit(f"{module}.{builder}: a requirement is missing")
        for callback in built.cleanup:
            stack.callback(callback)
        client = establish(built)
        return client.runner(path)

    return make


PROFILES: dict[str, tuple[str, str, str]] = {  # name: (module, builder, path)
    "flask-redis-read": ("bench.flask_sessions", "_coatcheck_redis", "/read"),
    "flask-redis-write": ("bench.flask_sessions", "_coatcheck_redis", "/write"),
    "flask-floor-write": ("bench.flask_sessions", "_redis_floor", "/write"),
    "flask-floor-read": ("bench.flask_sessions", "_redis_floor", "/read"),
    "django-redis-read": ("bench.django_sessions", "_coatcheck_redis", "/read"),
    "django-redis-write": ("bench.django_sessions", "_coatcheck_redis", "/write"),
    "django-floor-write": ("bench.django_sessions", "_redis_floor", "/write"),
    "django-floor-read": ("bench.django_sessions", "_redis_floor", "/read"),
    "django-cache-read": ("bench.django_sessions", "_django_cache_redis", "/read"),
    "wsgi-sqlite-read": ("bench.wsgi_sessions", "_coatcheck_sqlite", "/read"),
    "wsgi-sqlite-write": ("bench.wsgi_sessions", "_coatcheck_sqlite", "/write"),
    "wsgi-redis-read": ("bench.wsgi_sessions", "_coatcheck_redis", "/read"),
    "wsgi-redis-write": ("bench.wsgi_sessions", "_coatcheck_redis", "/write"),
    "wsgi-floor-write": ("bench.wsgi_sessions", "_redis_floor", "/write"),
}


async def _asgi_redis_runner(
    stack: contextlib.AsyncExitStack, path: str, slug: str = "cc"
) -> Callable[[int], Awaitable[None]]:
    from .redis_sessions import REDIS_URL, RedisRun, configs
    from .store_workloads import establish

    run = RedisRun(REDIS_URL)
    stack.push_async_callback(run.cleanup)
    coatcheck = next(c for c in configs(run) if c.slug == slug)
    built = await coatcheck.build(stack, "profile")
    client = await establish(built)
    return client.runner(path)


PURGE_SESSIONS = 5000


def _profile_purge(profiler: cProfile.Profile) -> None:
    """``redis-purge-clock-ahead``: the purge of ``PURGE_SESSIONS`` sessions that are all
    due on a clock 21 minutes ahead of a private server's (``bench skew``'s skewed case)."""
    import tempfile
    import time

    from coatcheck.stores.redis import RedisStore

    from .purge_skew import AHEAD, _fill
    from .scale_stores import RedisServer

    with tempfile.TemporaryDirectory(prefix="cc-profile-") as directory:
        server = RedisServer(Path(directory), "purge").start()
        try:
            store = RedisStore.from_url(f"redis://127.0.0.1:{server.port}/0")
            _fill(store, PURGE_SESSIONS, 1200.0)
            store.get_sync("0" * 64)  # connected before the profile starts
            profiler.enable()
            deleted = store.purge_expired_sync(time.time() + AHEAD, 1000)
            profiler.disable()
            store.close_sync()
            if deleted != PURGE_SESSIONS:
                raise SystemExit(f"the purge deleted {deleted}, not {PURGE_SESSIONS}")
        finally:
            server.stop()


def profile(name: str, console: Console) -> str:
    profiler = cProfile.Profile()

    async def main() -> None:
        if name == "redis-purge-clock-ahead":
            _profile_purge(profiler)
            return
        if name.startswith(("asgi-redis-", "asgi-floor-")):
            slug = "floor" if name.startswith("asgi-floor-") else "cc"
            async with contextlib.AsyncExitStack() as stack:
                run = await _asgi_redis_runner(stack, "/" + name.rsplit("-", 1)[1], slug)
                await run(WARMUP)
                profiler.enable()
                await run(REQUESTS)
                profiler.disable()
            return
        module, builder, path = PROFILES[name]
        if module == "bench.django_sessions":
            from .django_sessions import setup

            setup_stack = contextlib.ExitStack()
            setup(setup_stack)
        with contextlib.ExitStack() as stack:
            run = _wsgi(module, builder, path, console)(stack)
            await run(WARMUP)
            profiler.enable()
            await run(REQUESTS)
            profiler.disable()

    asyncio.run(main())
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.strip_dirs()
    what = (
        f"one purge of {PURGE_SESSIONS} sessions, all due"
        if name == "redis-purge-clock-ahead"
        else f"{REQUESTS} requests after {WARMUP} warm-up"
    )
    text.write(f"# {name}: cProfile of {what}\n")
    text.write("# (python -m bench.profile_edges " + name + ")\n\n## by own time\n")
    stats.sort_stats("tottime").print_stats(30)
    text.write("\n## by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(30)
    return text.getvalue()


def time_pair(first: str, second: str, reps: int = 15, n: int = 500) -> str:
    """``--pair A B``: the two WSGI configurations timed without the profiler, 15
    interleaved repetitions of 500 requests each, medians and their difference in µs."""
    import statistics
    import time

    console = Console()

    async def run() -> str:
        if any(PROFILES[name][0] == "bench.django_sessions" for name in (first, second)):
            from .django_sessions import setup

            setup(contextlib.ExitStack())
        with contextlib.ExitStack() as stack:
            runners = {}
            for name in (first, second):
                module, builder, path = PROFILES[name]
                runners[name] = _wsgi(module, builder, path, console)(stack)
                await runners[name](WARMUP)
            samples: dict[str, list[float]] = {first: [], second: []}
            for _ in range(reps):
                for name, runner in runners.items():
                    began = time.perf_counter()
                    await runner(n)
                    samples[name].append((time.perf_counter() - began) / n * 1e6)
        a, b = (statistics.median(samples[name]) for name in (first, second))
        return f"{first} {a:.1f} µs, {second} {b:.1f} µs per request: difference {a - b:.1f} µs"

    return asyncio.run(run())


def main(argv: list[str]) -> int:
    if argv[:1] == ["--pair"] and len(argv) == 3:
        Console().print(time_pair(argv[1], argv[2]))
        return 0
    asgi = ["asgi-redis-read", "asgi-redis-write", "asgi-floor-read", "asgi-floor-write"]
    names = argv or [*PROFILES, *asgi, "redis-purge-clock-ahead"]
    console = Console()
    OUT.mkdir(exist_ok=True)
    for name in names:
        summary = profile(name, console)
        (OUT / f"{name}.txt").write_text(summary)
        console.print(f"wrote {OUT / (name + '.txt')}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
