"""``python -m bench [scenario ...] [--json PATH]``: run registered benchmark scenarios.

Scenarios are registered by module path and imported only when selected, so a scenario
that needs a server or a framework (Redis, PostgreSQL, Flask, Django) costs nothing to the
others and fails with a clear message when its requirements are missing.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from .harness import (
    BenchError,
    Scenario,
    Settings,
    WorkloadResult,
    environment,
    render,
    render_header,
)

SCENARIOS: dict[str, str] = {
    "asgi": "bench.asgi_middleware",
    "wsgi": "bench.wsgi_sessions",
    "flask": "bench.flask_sessions",
    "django": "bench.django_sessions",
    "cookie": "bench.cookie_sessions",
    "redis": "bench.redis_sessions",
    "postgres": "bench.postgres_sessions",
    "load": "bench.load",
    "service": "bench.service",
    "scale": "bench.scale",
    "analytics": "bench.analytics_report",
    "skew": "bench.purge_skew",
}
"""Scenario name -> module defining ``SCENARIO``. Add new scenarios here."""

OPT_IN: frozenset[str] = frozenset({"scale", "skew"})
"""Scenarios too slow for a default run (minutes): they run only when named."""


def load(name: str) -> Scenario:
    try:
        module = importlib.import_module(SCENARIOS[name])
    except ImportError as exc:
        raise BenchError(
            f"scenario {name!r} needs {exc.name or exc}: install the bench extra "
            "(pip install -e '.[bench]')"
        ) from exc
    scenario: Scenario = module.SCENARIO
    return scenario


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure coatcheck against peer session libraries in one run. "
        "Environment: BENCH_N (requests per repetition), BENCH_REPS (repetitions), "
        "BENCH_WARMUP (warm-up requests per case).",
    )
    parser.add_argument(
        "scenarios",
        nargs="*",
        metavar="scenario",
        help=f"scenarios to run (default: all but {', '.join(sorted(OPT_IN))}): "
        f"{', '.join(SCENARIOS)}",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--list", action="store_true", help="list scenarios and exit")
    args = parser.parse_args(argv)
    unknown = [name for name in args.scenarios if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    return args


async def run(
    scenarios: list[Scenario], settings: Settings, console: Console
) -> list[WorkloadResult]:
    """All scenarios in one event loop, each table printed as soon as it is measured."""
    results: list[WorkloadResult] = []
    for scenario in scenarios:
        for result in await scenario.run(settings, console):
            render(console, result)
            results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)  # piped output: keep each table row on one line
    try:
        if args.list:
            for name in SCENARIOS:
                console.print(f"{name}: {load(name).description}")
            return 0
        default = [name for name in SCENARIOS if name not in OPT_IN]
        scenarios = [load(name) for name in (args.scenarios or default)]
        settings = Settings.from_env()
        env = environment(p for s in scenarios for p in s.packages)
        render_header(console, env, settings)
        console.print()
        results = asyncio.run(run(scenarios, settings, console))
    except BenchError as exc:
        console.print(f"[bold red]benchmark aborted:[/] {exc}")
        return 1
    if args.json is not None:
        document: dict[str, Any] = {
            "environment": env,
            "settings": {
                "n": settings.n,
                "reps": settings.reps,
                "warmup": settings.warmup,
                "audit": settings.audit,
            },
            "workloads": [result.to_json() for result in results],
        }
        args.json.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
