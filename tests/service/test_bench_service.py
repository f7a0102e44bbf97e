"""``python -m bench service`` as docs/performance.md describes it, run end to end with tiny
windows (real servers, real wrk, real nginx): four tables (introspect and forward-auth, on
SQLite and Redis), each a bare endpoint and coatcheck over the same 64 sessions with no
failed request, and the paired ratio against issue 14's 0.8x target; and the httpx load
client it falls back to, against a real ``coatcheck serve``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench import service
from tests.service.conftest import Running

ROOT = Path(__file__).resolve().parents[2]


def test_the_scenario_measures_both_calls_on_both_stores(tmp_path: Path) -> None:
    out = tmp_path / "service.json"
    env = {
        **os.environ,
        "BENCH_SERVICE_SECONDS": "1",
        "BENCH_SERVICE_WARMUP": "1",
        "BENCH_SERVICE_ROUNDS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "service", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    workloads = {w["key"]: w for w in json.loads(out.read_text())["workloads"]}
    assert set(workloads) == {
        f"service.{call}.{store}"
        for call in ("introspect", "forward-auth")
        for store in ("sqlite", "redis")
    }
    for key, workload in workloads.items():
        assert workload["clients"] == service.CLIENTS == 64
        roles = [row["role"] for row in workload["rows"]]
        assert sorted(roles) == ["baseline", "coatcheck"], key
        for row in workload["rows"]:
            assert row["requests"] > 0 and row["median_requests_per_second"] > 0, key
            assert 0 < row["latency_ms"]["p50"] <= row["latency_ms"]["p99"], key
        target = workload["notes"][0]
        assert re.match(r"target: at least 0\.8x .* measured \d\.\d\dx", target), target
        assert "load from wrk in another process: 64 keep-alive connections" in " ".join(
            workload["notes"]
        )


def test_the_nginx_it_runs_is_the_shipped_configuration(tmp_path: Path) -> None:
    text = service.nginx_config(tmp_path, 1111, 2222, 3333)
    shipped = (ROOT / "docs" / "gateways" / "nginx.conf").read_text()
    assert "listen 127.0.0.1:1111;" in text and "server 127.0.0.1:2222;" in text
    assert 'listen 127.0.0.1:3333; location / { return 200 "ok\\n"; }' in text
    for line in shipped.splitlines():
        if line.strip().startswith(("auth_request", "proxy_", "location")):
            assert line in text  # every directive of the shipped file, as it is


@pytest.mark.parametrize(("path", "failures"), [("/healthz", 0), ("/nowhere", None)])
def test_the_httpx_load_client_counts_answers_and_failures(
    running: Running, tmp_path: Path, path: str, failures: int | None
) -> None:
    spec = tmp_path / "spec.json"
    request = {"method": "GET", "path": path, "headers": {}, "body": ""}
    spec.write_text(json.dumps({"url": running.url, "requests": [request]}))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.service_load", str(spec), "1", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(proc.stdout)
    assert found["requests"] > 0 and found["rps"] > 0
    assert found["p50_ms"] <= found["p90_ms"] <= found["p99_ms"]
    expected = found["requests"] if failures is None else failures  # a 404 is a failure
    assert found["failures"] == expected
