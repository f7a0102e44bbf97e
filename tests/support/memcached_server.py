"""Private memcached servers for tests: real processes on free loopback ports.

``shared_memcached()`` starts one server the first time a test asks for it and stops it
when the test process exits (a session-scoped server that plain context-manager
factories can use too). Tests that break their server (stop it, fill it up) start their
own with ``MemcachedServer`` instead. When the ``memcached`` binary is missing the test is
skipped with the reason, and the shared conftest turns that skip into a failure under CI.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from urllib.parse import unquote

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def memcached_binary() -> str:
    """The memcached executable, or skip the test saying how to get it."""
    path = shutil.which("memcached")
    if path is None:
        pytest.skip("memcached binary not found: apt-get install memcached (.ci/run does)")
    return path


class MemcachedServer:
    """One memcached process on 127.0.0.1, listening on TCP only (``-U 0``)."""

    def __init__(self, memory_mb: int = 64, port: int | None = None) -> None:
        self.binary = memcached_binary()
        self.memory_mb = memory_mb
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"memcached://127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0"]
        args += ["-m", str(self.memory_mb), "-c", "256"]
        if os.geteuid() == 0:
            args += ["-u", "root"]  # memcached refuses to run as root without it
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"memcached exited with {self.process.returncode}: {err}")
            try:
                if self.command(b"version\r\n").startswith(b"VERSION"):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"memcached did not start on port {self.port}")

    def stop(self) -> None:
        """Kill the process: memcached keeps nothing on disk, so a clean shutdown would
        lose exactly as much, only slower (it waits for its maintenance threads)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> MemcachedServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- a raw text-protocol client, independent of the store under test ---------------
    def command(self, line: bytes, end: bytes = b"\r\n") -> bytes:
        """Send one command and read until the reply ends with ``end`` (or is an error
        line such as ``BUSY ...``, which memcached sends instead of a dump)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(line)
            reply = b""
            while not reply.endswith(end):
                if reply.endswith(b"\r\n") and reply.startswith((b"BUSY", b"ERROR")):
                    break
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return reply

    def dump(self) -> list[dict[str, str]]:
        """Metadata of every item, from a walk of the hash table.

        ``lru_crawler metadump all`` walks the LRUs instead and silently skips a slab
        class that the background crawler is busy with, so it can miss items.
        """
        deadline = time.monotonic() + 10
        while True:
            reply = self.command(b"lru_crawler metadump hash\r\n", end=b"END\r\n")
            if reply.endswith(b"END\r\n"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"memcached would not dump its keys: {reply[:100]!r}")
            time.sleep(0.05)  # the crawler is busy with a background pass
        items = []
        for line in reply.decode().splitlines():
            if line.startswith("key="):
                fields = dict(part.split("=", 1) for part in line.split())
                fields["key"] = unquote(fields["key"])
                items.append(fields)
        return items

    def keys(self, prefix: str = "") -> list[str]:
        """Every live item name that starts with ``prefix``."""
        return [item["key"] for item in self.dump() if item["key"].startswith(prefix)]

    def value(self, name: str) -> bytes | None:
        reply = self.command(f"get {name}\r\n".encode(), end=b"END\r\n")
        if not reply.startswith(b"VALUE"):
            return None
        header, _, rest = reply.partition(b"\r\n")
        size = int(header.split()[3])
        return rest[:size]

    def stats(self) -> dict[str, str]:
        reply = self.command(b"stats\r\n", end=b"END\r\n")
        out = {}
        for line in reply.decode().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "STAT":
                out[parts[1]] = parts[2]
        return out


_shared: MemcachedServer | None = None
_shared_lock = threading.Lock()


def shared_memcached() -> MemcachedServer:
    """The test process's shared server, started on first use and stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            server = MemcachedServer()
            server.start()
            atexit.register(server.stop)
            _shared = server
        return _shared


def fresh_prefix() -> str:
    """A key prefix no other test uses, so tests sharing a server never see each other."""
    return f"t{uuid.uuid4().hex[:12]}:"
