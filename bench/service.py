"""The session service under load: introspect and forward-auth against their floor.

Issue 14 asks for introspect requests per second and p50/p99 with 64 concurrent clients on
loopback, on Redis and SQLite, next to a bare FastAPI endpoint under the same uvicorn that
does the same one raw store read (``bench/apps/service_floor.py``), in the same run, at
least 0.8x its throughput; and forward-auth through nginx (``docs/gateways/nginx.conf`` as
shipped) at least 0.8x of an ``auth_request`` to that bare endpoint.

Every server is a process of its own: ``coatcheck serve --store URL`` exactly as an
operator starts it (one worker), the floor app on the same store, and two nginx masters
(one worker each) whose check location asks the service or the floor, in front of a static
upstream. SQLite is a file in a temporary directory; Redis a private ``redis-server`` on a
free port, so no other user of the machine's Redis is in the figures.

The load comes from another process: ``wrk`` (Debian's package) with 64 connections, each
request naming one of 64 signed-in sessions in turn, or, without wrk (or with
``BENCH_SERVICE_TOOL=httpx``), an asyncio httpx client in a subprocess
(``bench/service_load.py``). Any answer but 2xx aborts the run. Each
case is warmed up (``BENCH_SERVICE_WARMUP`` s), then measured ``BENCH_SERVICE_ROUNDS`` (6)
times for ``BENCH_SERVICE_SECONDS`` (3); a floor and its coatcheck case run back to back,
the pairs in an order rotated per round. Reported: the median of requests per second over
rounds, the median of the rounds' p50 and p99, and the ratio to the floor as the median of
each round's ratio (the two windows of a round see the same machine, which is shared).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from .harness import BenchError, CaseResult, Role, Scenario, Settings, WorkloadResult
from .load import LoadResult, _env_float

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "docs" / "gateways" / "nginx.conf"
CLIENTS = 64
TARGET = 0.8
FLOOR_TARGET = 1.15
"""Issue 18: at most this many times the bare endpoint's time per request (1 / requests per
second, one worker), i.e. at least 1/1.15 = 0.87x its throughput."""
COOKIE = "__Host-session"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(what: str, check: Any, process: subprocess.Popen[Any], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise BenchError(f"{what} exited:\n{log.read_text(errors='replace')[-2000:]}")
        with contextlib.suppress(OSError, httpx.TransportError):
            if check():
                return
        if time.monotonic() > deadline:
            raise BenchError(f"{what} did not come up:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)  # waiting for a process to start


@dataclass
class Process:
    """A server process we own, with its output in ``log``."""

    name: str
    command: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command, stdout=out, stderr=subprocess.STDOUT, env=self.env
            )
        return self.process

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def nginx_config(directory: Path, listen: int, check: int, app: int) -> str:
    """``docs/gateways/nginx.conf`` with the run's ports (each replaced line must exist),
    a static upstream app, and the http block around them."""
    text = NGINX_CONF.read_text()
    for old, new in (
        ("    listen 80;\n", f"    listen 127.0.0.1:{listen};\n"),
        ("    server 127.0.0.1:8000;\n", f"    server 127.0.0.1:{check};\n"),
        ("    server 127.0.0.1:8080;\n", f"    server 127.0.0.1:{app};\n"),
    ):
        if text.count(old) != 1:
            raise BenchError(f"docs/gateways/nginx.conf lost its line {old!r}")
        text = text.replace(old, new)
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {name}_temp_path {directory / name};\n"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    static = f'    server {{ listen 127.0.0.1:{app}; location / {{ return 200 "ok\\n"; }} }}\n'
    return (
        f"{user}daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\n"
        f"error_log {directory / 'error.log'} warn;\nevents {{ worker_connections 1024; }}\n"
        f"http {{\n    access_log off;\n{temp}{static}{text}\n}}\n"
    )


@dataclass
class Stack:
    """One store: the service and the floor on it, each behind an nginx of its own."""

    store: str
    url: str
    directory: Path
    processes: list[Process] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    key: str = ""

    def start(self) -> None:
        py = sys.executable
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.ports = {n: free_port() for n in ("service", "floor", "nginx-service", "nginx-floor")}
        service = Process(
            f"coatcheck serve ({self.store})",
            [
                py,
                "-m",
                "coatcheck.cli",
                "serve",
                "--store",
                self.url,
                "--port",
                str(self.ports["service"]),
            ],
            self.directory / f"serve-{self.store}.log",
            env,
        )
        floor = Process(
            f"floor ({self.store})",
            [
                py,
                "-m",
                "bench.apps.service_floor",
                "--store",
                self.url,
                "--port",
                str(self.ports["floor"]),
            ],
            self.directory / f"floor-{self.store}.log",
            env,
        )
        for proc, port in ((service, self.ports["service"]), (floor, self.ports["floor"])):
            self.processes.append(proc)
            started = proc.start()
            path = "/healthz" if proc is service else "/v1/forward-auth"
            wait_for(
                proc.name,
                lambda p=port, path=path: (
                    httpx.get(f"http://127.0.0.1:{p}{path}", timeout=2).status_code in (200, 401)
                ),
                started,
                proc.log,
            )
        self._sessions(service)
        assert NGINX is not None
        for check in ("service", "floor"):
            nginx_dir = self.directory / f"nginx-{self.store}-{check}"
            nginx_dir.mkdir()
            conf = nginx_dir / "nginx.conf"
            listen = self.ports[f"nginx-{check}"]
            conf.write_text(nginx_config(nginx_dir, listen, self.ports[check], free_port()))
            proc = Process(
                f"nginx ({self.store}, {check})",
                [NGINX, "-p", str(nginx_dir), "-c", str(conf), "-e", "error.log"],
                nginx_dir / "out.log",
            )
            self.processes.append(proc)
            started = proc.start()
            wait_for(
                proc.name,
                lambda p=listen: socket.create_connection(("127.0.0.1", p), 1).close() is None,
                started,
                proc.log,
            )

    def _sessions(self, service: Process) -> None:
        found = re.search(r"^(cc_[A-Za-z0-9_-]{43})$", service.log.read_text(), re.MULTILINE)
        if found is None:
            raise BenchError(f"{service.name} printed no first admin key")
        admin = found.group(1)
        base = f"http://127.0.0.1:{self.ports['service']}"
        with httpx.Client(base_url=base, headers={"authorization": f"Bearer {admin}"}) as client:
            for n in range(CLIENTS):
                made = client.post("/v1/sessions", json={"user_id": f"bench-{n}", "data": {"n": n}})
                if made.status_code != 201:
                    raise BenchError(f"creating a session: {made.status_code} {made.text}")
                self.tokens.append(made.json()["token"])
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "coatcheck.cli",
                "api-keys",
                "create",
                "bench",
                "--scope",
                "introspect",
                "--store",
                self.url,
            ],
            capture_output=True,
            text=True,
            check=False,
            env=service.env,
        )
        if proc.returncode != 0:
            raise BenchError(f"api-keys create: {proc.stderr}")
        self.key = proc.stdout.strip()

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()


@dataclass(frozen=True, eq=False)
class Case:
    """One load: who answers (``role``), the store, and the requests, one per session."""

    workload: str
    store: str
    name: str
    role: Role
    url: str
    requests: list[dict[str, Any]]

    def check(self) -> None:
        """Each request answers 2xx (and an introspect ``active: true``) before timing."""
        for spec in self.requests[:3]:
            answer = httpx.request(
                spec["method"],
                self.url + spec["path"],
                headers=spec["headers"],
                content=spec["body"],
            )
            ok = answer.status_code == 200 and (
                self.workload != "introspect" or answer.json()["active"] is True
            )
            if not ok:
                raise BenchError(f"{self.name}: {answer.status_code} {answer.text[:200]}")


def cases(stack: Stack) -> list[Case]:
    service = f"http://127.0.0.1:{stack.ports['service']}"
    floor = f"http://127.0.0.1:{stack.ports['floor']}"
    auth = {"authorization": f"Bearer {stack.key}", "content-type": "application/json"}
    bodies = [json.dumps({"token": t}) for t in stack.tokens]
    introspect = [
        {"method": "POST", "path": "/v1/sessions/introspect", "headers": auth, "body": b}
        for b in bodies
    ]
    bare = [{"method": "POST", "path": "/introspect", "headers": auth, "body": b} for b in bodies]
    gateway = [
        {"method": "GET", "path": "/orders", "headers": {"cookie": f"{COOKIE}={t}"}, "body": ""}
        for t in stack.tokens
    ]
    s = stack.store
    return [
        Case("introspect", s, f"bare FastAPI, one {s} read", Role.BASELINE, floor, bare),
        Case("introspect", s, f"coatcheck serve ({s})", Role.COATCHECK, service, introspect),
        Case(
            "forward-auth",
            s,
            f"nginx auth_request to the bare endpoint ({s})",
            Role.BASELINE,
            f"http://127.0.0.1:{stack.ports['nginx-floor']}",
            gateway,
        ),
        Case(
            "forward-auth",
            s,
            f"nginx auth_request to coatcheck forward-auth ({s})",
            Role.COATCHECK,
            f"http://127.0.0.1:{stack.ports['nginx-service']}",
            gateway,
        ),
    ]


# -- the load tools --------------------------------------------------------------------------
@dataclass
class Window:
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def wrk_script(case: Case, path: Path) -> None:
    rows = []
    for spec in case.requests:
        headers = ", ".join(
            f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in spec["headers"].items()
        )
        rows.append(
            f"  {{{_lua_string(spec['method'])}, {_lua_string(spec['path'])}, {{{headers}}}, "
            f"{_lua_string(spec['body'])}}},"
        )
    path.write_text(
        "local specs = {\n" + "\n".join(rows) + "\n}\nlocal prepared = {}\nlocal n = 0\n"
        "init = function(args)\n  for i, s in ipairs(specs) do\n"
        "    local body = s[4] ~= '' and s[4] or nil\n"
        "    prepared[i] = wrk.format(s[1], s[2], s[3], body)\n  end\nend\n"
        "request = function()\n  n = n % #prepared + 1\n  return prepared[n]\nend\n"
    )


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if found is None:
        raise BenchError(f"wrk printed a latency it cannot read: {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def run_wrk(case: Case, seconds: float, directory: Path) -> Window:
    script = directory / "wrk.lua"
    wrk_script(case, script)
    command = [
        "wrk",
        "-t1",
        f"-c{CLIENTS}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "-s",
        str(script),
        case.url,
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    out = proc.stdout
    if proc.returncode != 0:
        raise BenchError(f"wrk failed on {case.name}: {proc.stderr or out}")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        raise BenchError(f"{case.name}: wrk saw failures:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    p90 = _ms(re.search(r"^\s+90%\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    return Window(rps, p50, p90, p99, total)


def run_httpx(case: Case, seconds: float, directory: Path) -> Window:
    spec = directory / "load.json"
    spec.write_text(json.dumps({"url": case.url, "requests": case.requests}))
    command = [sys.executable, "-m", "bench.service_load", str(spec), f"{seconds:g}", str(CLIENTS)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False, env=env
    )
    if proc.returncode != 0:
        raise BenchError(f"{case.name}: the load client failed: {proc.stderr[-2000:]}")
    found = json.loads(proc.stdout)
    if found["failures"]:
        raise BenchError(
            f"{case.name}: {found['failures']} answers were not 2xx: {found['sample']}"
        )
    return Window(
        found["rps"], found["p50_ms"], found["p90_ms"], found["p99_ms"], found["requests"]
    )


# -- the scenario ------------------------------------------------------------------------------
@contextlib.contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    port = free_port()
    log = directory / "redis.log"
    proc = Process(
        "redis-server",
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        log,
    )
    started = proc.start()
    try:
        wait_for(
            "redis-server",
            lambda: socket.create_connection(("127.0.0.1", port), 1).close() is None,
            started,
            log,
        )
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.stop()


def result(
    workload: str, store: str, measured: dict[Case, list[Window]], tool: str, notes: list[str]
) -> LoadResult:
    what = {
        "introspect": "POST /v1/sessions/introspect",
        "forward-auth": "forward-auth through nginx auth_request",
    }[workload]
    title = f"{what}, {store}, {CLIENTS} concurrent clients ({tool})"
    out = LoadResult(
        key=f"service.{workload}.{store}", title=title, rows=[], notes=list(notes), clients=CLIENTS
    )
    for case, windows in measured.items():
        if case.workload != workload or case.store != store:
            continue
        out.rows.append(CaseResult(case.name, case.role, [1e6 / w.rps for w in windows]))
        out.rps[case.name] = [w.rps for w in windows]
        out.requests[case.name] = sum(w.requests for w in windows)
        out.latency_ms[case.name] = {
            "p50": statistics.median(w.p50_ms for w in windows),
            "p90": statistics.median(w.p90_ms for w in windows),
            "p99": statistics.median(w.p99_ms for w in windows),
        }
    ours = next(r for r in out.rows if r.role is Role.COATCHECK)
    paired = [a / b for a, b in zip(out.rps[ours.name], out.rps[out.baseline.name], strict=True)]
    ratio = statistics.median(paired)
    out.notes.insert(
        0,
        f"target: at least {TARGET}x the bare endpoint's requests per second; measured "
        f"{ratio:.2f}x (median over rounds of each round's ratio, the two run back to back; "
        f"rounds {min(paired):.2f}-{max(paired):.2f}x): {'met' if ratio >= TARGET else 'MISSED'}",
    )
    out.notes.insert(
        1,
        f"issue 18 target: at most {FLOOR_TARGET}x the bare endpoint's time per request; "
        f"measured {1 / ratio:.2f}x (the inverse of the ratio above): "
        f"{'met' if 1 / ratio <= FLOOR_TARGET else 'MISSED'}",
    )
    return out


async def run(settings: Settings, console: Console) -> list[WorkloadResult]:
    seconds = _env_float("BENCH_SERVICE_SECONDS", 3.0)
    warmup = _env_float("BENCH_SERVICE_WARMUP", 2.0)
    rounds = int(_env_float("BENCH_SERVICE_ROUNDS", 6))
    if NGINX is None:
        raise BenchError("service: nginx is not installed (apt-get install nginx)")
    if shutil.which("redis-server") is None:
        raise BenchError("service: redis-server is not installed (apt-get install redis-server)")
    chosen = os.environ.get("BENCH_SERVICE_TOOL") or ("wrk" if shutil.which("wrk") else "httpx")
    if chosen not in ("wrk", "httpx"):
        raise BenchError(f"BENCH_SERVICE_TOOL={chosen!r}: wrk or httpx")
    if chosen == "wrk" and shutil.which("wrk") is None:
        raise BenchError("service: wrk is not installed (apt-get install wrk)")
    tool, load = (chosen, run_wrk if chosen == "wrk" else run_httpx)
    with tempfile.TemporaryDirectory(prefix="coatcheck-bench-service-") as name:
        directory = Path(name)
        stacks: list[Stack] = []
        measured: dict[Case, list[Window]] = {}
        try:
            with redis_server(directory) as redis_url:
                stacks = [
                    Stack("sqlite", f"sqlite:///{directory / 'sessions.db'}", directory),
                    Stack("redis", redis_url, directory),
                ]
                with console.status("[bold]service[/]: starting servers") as status:
                    for stack in stacks:
                        stack.start()
                    all_cases = [c for stack in stacks for c in cases(stack)]
                    for case in all_cases:
                        case.check()
                        status.update(f"[bold]service[/]: warming up {case.name}")
                        load(case, warmup, directory)
                        measured[case] = []
                    # Pairs (a floor and its coatcheck case) run back to back, in an order
                    # rotated per round and flipped within the pair every other round, so
                    # drift and other load hit both sides of a ratio alike.
                    pairs = [all_cases[i : i + 2] for i in range(0, len(all_cases), 2)]
                    for round_ in range(rounds):
                        shift = round_ % len(pairs)
                        for pair in pairs[shift:] + pairs[:shift]:
                            for case in pair if round_ % 2 == 0 else pair[::-1]:
                                status.update(
                                    f"[bold]service[/]: round {round_ + 1}/{rounds}, {case.name}"
                                )
                                measured[case].append(load(case, seconds, directory))
        finally:
            for stack in stacks:
                stack.stop()
    notes = [
        f"load from {tool} in another process: {CLIENTS} keep-alive connections, each request "
        f"naming one of {CLIENTS} signed-in sessions in turn; {rounds} rounds of {seconds:g} s per "
        f"case, interleaved, after {warmup:g} s of warm-up; p50/p99: median over rounds",
        "one uvicorn worker each (coatcheck serve as started by an operator; the floor with "
        "the same uvicorn.run call), one nginx worker each; client, servers and stores "
        "share the machine",
    ]
    return [
        result(workload, store, measured, tool, notes)
        for workload in ("introspect", "forward-auth")
        for store in ("sqlite", "redis")
    ]


SCENARIO = Scenario(
    name="service",
    description="coatcheck serve under 64 concurrent clients: introspect and forward-auth "
    "through nginx, on SQLite and Redis, against a bare FastAPI endpoint doing one raw read",
    packages=("coatcheck", "fastapi", "uvicorn", "h11", "httptools", "uvloop", "redis"),
    run=run,
)
