"""The ``service`` benchmark's load client where wrk is not installed: an asyncio httpx
client in a process of its own, ``CLIENTS`` tasks each with its own keep-alive connection,
one request at a time, cycling through the requests of the spec file.

``python -m bench.service_load SPEC SECONDS CLIENTS`` prints one JSON object: requests per
second, p50/p90/p99 in milliseconds, the number of requests, and how many were not 2xx.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def client(
    url: str, specs: list[dict[str, Any]], start: int, until: float, out: dict[str, Any]
) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        for spec in itertools.islice(itertools.cycle(specs), start, None):
            if time.perf_counter() >= until:
                return
            began = time.perf_counter()
            answer = await http.request(
                spec["method"], spec["path"], headers=spec["headers"], content=spec["body"]
            )
            out["latencies"].append(time.perf_counter() - began)
            if not 200 <= answer.status_code < 300:
                out["failures"] += 1
                out["sample"] = f"{answer.status_code} {answer.text[:200]}"


async def main(spec: dict[str, Any], seconds: float, clients: int) -> dict[str, Any]:
    out: dict[str, Any] = {"latencies": [], "failures": 0, "sample": None}
    began = time.perf_counter()
    until = began + seconds
    await asyncio.gather(
        *(client(spec["url"], spec["requests"], n, until, out) for n in range(clients))
    )
    took = time.perf_counter() - began
    latencies: list[float] = out["latencies"]
    return {
        "rps": len(latencies) / took,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p90_ms": percentile(latencies, 0.90) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "requests": len(latencies),
        "failures": out["failures"],
        "sample": out["sample"],
    }


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text())
    found = asyncio.run(main(spec, float(sys.argv[2]), int(sys.argv[3])))
    print(json.dumps(found))
