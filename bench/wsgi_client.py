"""A browser-like client that calls a WSGI app in-process, and the workloads WSGI scenarios
share (the twin of ``asgi_client`` plus the read / write cases of ``asgi_middleware``).

Each request is a fresh environ dict (apps write into it) with realistic headers and the
cookies the app set before, so every measured request is a real session round trip. The
loop is synchronous, as a WSGI server's worker is; ``runner`` wraps it in a coroutine only
because the harness awaits every case. Configurations are proven to keep state before they
are timed and re-checked afterwards, exactly as in the ASGI scenario.
"""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from .harness import (
    BenchError,
    Case,
    Role,
    Settings,
    StoreProbe,
    WorkloadResult,
    blame,
    measure,
)
from .store_workloads import Target, target_notes

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key.lower() == name]


class WsgiClient:
    """One browser: a cookie jar and a fixed set of realistic request headers.

    ``activate`` runs before every request batch: a scenario whose configurations share
    process-wide state (Django's one session engine manager) switches it there, once per
    batch, outside the per-request loop.
    """

    def __init__(
        self, app: WSGIApp, *, host: str = "shop.example", activate: Callable[[], None] | None
    ) -> None:
        self.app = app
        self.host = host
        self.activate = activate
        self.cookies: dict[str, str] = {}
        self._cookie_header: str | None = None
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self.expect_body: bytes | None = None
        """When set, every response of the request loop must have exactly this body."""
        self._base = {
            "REQUEST_METHOD": "GET",
            "SCRIPT_NAME": "",
            "QUERY_STRING": "",
            "SERVER_NAME": host,
            "SERVER_PORT": "443",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "203.0.113.42",
            "HTTP_HOST": host,
            "HTTP_USER_AGENT": USER_AGENT,
            "HTTP_ACCEPT": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8",
            "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.7",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "https",
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
        }

    # -- cookies -------------------------------------------------------------------------
    def _store_cookie(self, set_cookie: str) -> None:
        pair, _, attributes = set_cookie.partition(";")
        name, _, value = pair.partition("=")
        name, value = name.strip(), value.strip().strip('"')
        lowered = attributes.lower()
        if value == "" or "max-age=0" in lowered or "expires=thu, 01 jan 1970" in lowered:
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value
        header = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self._cookie_header = header or None

    # -- WSGI plumbing -------------------------------------------------------------------
    def _environ(self, path: str) -> dict[str, Any]:
        environ = dict(self._base)
        environ["PATH_INFO"] = path
        environ["wsgi.input"] = io.BytesIO(b"")
        if self._cookie_header is not None:
            environ["HTTP_COOKIE"] = self._cookie_header
        return environ

    def _start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        self._status = int(status[:3])
        self._headers = headers
        for name, value in headers:
            if name.lower() == "set-cookie":
                self._store_cookie(value)
        return self._write

    def _write(self, data: bytes) -> None:
        raise BenchError("the app used the legacy write() callable")

    def _call(self, path: str) -> bytes:
        body = self.app(self._environ(path), self._start_response)
        try:
            return b"".join(body)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    # -- requests ------------------------------------------------------------------------
    def get(self, path: str) -> Response:
        """One request, returning the whole response (setup and checks)."""
        if self.activate is not None:
            self.activate()
        self._status, self._headers = 0, []
        try:
            body = self._call(path)
        except Exception as exc:
            raise BenchError(f"GET {path} raised {exc!r}") from exc
        return Response(self._status, list(self._headers), body)

    def runner(self, path: str) -> Callable[[int], Any]:
        """A coroutine function that sends ``n`` GETs for ``path`` and fails loudly if any
        answer was not a 200 (or not ``expect_body``)."""
        call = self._call

        async def run(n: int) -> None:
            if self.activate is not None:
                self.activate()
            bad = 0
            expect = self.expect_body
            body = b""
            try:
                for _ in range(n):
                    body = call(path)
                    if self._status != 200 or (expect is not None and body != expect):
                        bad += 1
            except Exception as exc:
                raise BenchError(f"GET {path} raised {exc!r}") from exc
            if bad:
                raise BenchError(
                    f"{bad}/{n} requests to {path} failed (last: status {self._status}, "
                    f"body {body[:60]!r})"
                )

        return run


# -- configurations and the read / write workloads --------------------------------------------


@dataclass(slots=True)
class Built:
    app: WSGIApp
    cookie_name: str | None
    """The session cookie the first write must set; None for the bare app."""
    probe: Any = None
    """A StoreProbe, or any object with the same ``counting()`` context manager."""
    expect_read_writes: float | None = None
    """Store writes a read-only request may make (coatcheck promises 0 between touches)."""
    activate: Callable[[], None] | None = None
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    shared: bool = False
    """A raw-client floor: no session and no cookie, one counter on the server shared by
    every client (``cookie_name`` is None, yet state is kept)."""


@dataclass(frozen=True, slots=True)
class Config:
    name: str
    role: Role
    build: Callable[[contextlib.ExitStack], Built | None]
    """Returns None when a requirement is missing (the row is skipped with ``skip_note``)."""
    note: str = ""


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise BenchError(what)


def establish(built: Built) -> WsgiClient:
    """Return a client whose session holds n == 3, after proving the config keeps state."""
    client = WsgiClient(built.app, activate=built.activate)
    first = client.get("/write")
    _require(first.status == 200, f"first /write answered {first.status}: {first.body[:200]!r}")
    _require(first.body == b"1", f"first /write answered {first.body!r}, not b'1'")
    if built.cookie_name is None and not built.shared:
        again = client.get("/read")
        _require(again.body == b"0", "the bare app kept state it should not keep")
        return client
    _require(
        built.shared or built.cookie_name in client.cookies,
        f"first /write set no {built.cookie_name} cookie (got {first.header('set-cookie')})",
    )
    for expected in (b"2", b"3"):
        response = client.get("/write")
        _require(response.body == expected, f"/write answered {response.body!r}")
    response = client.get("/read")
    _require(response.body == b"3", f"after 3 writes /read answered {response.body!r}")
    if built.shared:
        return client
    stranger = WsgiClient(built.app, activate=built.activate).get("/read")
    _require(stranger.body == b"0", f"a client without the cookie read {stranger.body!r}")
    return client


def read_case(config: Config, built: Built) -> Case:
    client = establish(built)
    client.expect_body = b"0" if built.cookie_name is None and not built.shared else b"3"
    return Case(
        config.name,
        config.role,
        client.runner("/read"),
        probe=built.probe,
        expect_writes=built.expect_read_writes,
        note=config.note,
    )


def write_case(config: Config, built: Built) -> Case:
    client = establish(built)
    if built.cookie_name is None and not built.shared:
        client.expect_body = b"1"
        return Case(config.name, config.role, client.runner("/write"), note=config.note)

    inner = client.runner("/write")
    sent = 0

    async def run(n: int) -> None:
        nonlocal sent
        await inner(n)
        sent += n

    async def check() -> None:
        # Every write of warm-up and timing must have landed, in order, in one session.
        response = client.get("/read")
        expected = str(3 + sent).encode()
        _require(
            response.body == expected,
            f"after {3 + sent} writes /read answered {response.body!r}, not {expected!r}",
        )

    return Case(config.name, config.role, run, check, built.probe, note=config.note)


async def run_workloads(
    prefix: str,
    label: str,
    configs: list[Config],
    settings: Settings,
    console: Console,
    *,
    targets: Sequence[Target] = (),
    notes: Sequence[str] = (),
) -> list[WorkloadResult]:
    """The read-only and the writing workload over ``configs``, each in one measured run;
    under each table, one line per target of ``targets`` (see ``store_workloads``), then
    ``notes``."""
    results = []
    skipped: set[str] = set()
    for key, title, make in (
        (f"{prefix}.read", f"{label} read-only request (GET /read)", read_case),
        (f"{prefix}.write", f"{label} writing request (GET /write)", write_case),
    ):
        with contextlib.ExitStack() as stack:
            cases = []
            for config in configs:
                if config.name in skipped:
                    continue
                with blame(key, f"setting up {config.name}"):
                    built = config.build(stack)
                    if built is None:
                        skipped.add(config.name)
                        continue
                    for callback in built.cleanup:
                        stack.callback(callback)
                    cases.append(make(config, built))
            result = await measure(key, title, cases, settings, console)
        result.notes.extend(target_notes(result, key.rsplit(".", 1)[1], list(targets)))
        result.notes.extend(notes)
        results.append(result)
    return results


def skip(console: Console, name: str, why: str) -> None:
    """Print why a row is missing (a requirement is absent): never a silent gap."""
    console.print(f"[yellow]skipped {name}: {why}[/]")


__all__ = [
    "Built",
    "Config",
    "Response",
    "StoreProbe",
    "WsgiClient",
    "establish",
    "read_case",
    "run_workloads",
    "skip",
    "write_case",
]
