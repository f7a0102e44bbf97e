"""``coatcheck serve`` as the tests run it: a real process on a free loopback port.

Each ``ServiceProcess`` is the command an operator types, started with ``subprocess``; the
tests talk to it over TCP with httpx, read what it printed (the first admin key), and can
kill it. Nothing of the service runs inside the test process.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

KEY_LINE = re.compile(r"^(cc_[A-Za-z0-9_-]{43})$", re.MULTILINE)

TEST_ENV = {
    "COATCHECK_API_KEY_CACHE": "0",
    "COATCHECK_TOMBSTONE_SECRET": "service-tests-tombstone-secret",
    "PYTHONUNBUFFERED": "1",
    "COLUMNS": "200",
}
"""Tests see a revoked key refused at once (an operator's default is 5 s), and erasure
has its tombstone secret."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def coatcheck(*args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> str:
    """Run ``coatcheck ARGS`` to the end; its stdout (it must succeed)."""
    proc = subprocess.run(
        [sys.executable, "-m", "coatcheck.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **TEST_ENV, **(env or {})},
        cwd=cwd,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


class ServiceProcess:
    """One ``coatcheck serve`` we own."""

    def __init__(
        self,
        directory: Path,
        store_url: str,
        *,
        env: Mapping[str, str] | None = None,
        args: tuple[str, ...] = (),
        port: int | None = None,
    ) -> None:
        self.directory = directory
        self.store_url = store_url
        self.port = port or free_port()
        self.env = {**os.environ, **TEST_ENV, "COATCHECK_STORE": store_url, **(env or {})}
        self.args = args
        self.process: subprocess.Popen[str] | None = None
        self.log = directory / f"serve-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ServiceProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "coatcheck.cli", "serve", "--port", str(self.port)]
        with self.log.open("w") as out:
            self.process = subprocess.Popen(
                [*command, *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=self.directory,
                env=self.env,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"coatcheck serve exited:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"coatcheck serve did not answer:\n{self.output()}")
            time.sleep(0.05)  # waiting for a process to start, not for expiry

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def printed_key(self) -> str | None:
        """The admin key the first start printed, if this one printed it."""
        found = KEY_LINE.findall(self.output())
        return found[0] if found else None

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, **kwargs)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
