"""A real nginx (Debian's package) on loopback running ``docs/gateways/nginx.conf``, and
the small app behind it that reports which headers reached it.

The shipped configuration is used as it is, only its addresses replaced (the listen port,
the coatcheck nodes, the app), and each replacement must find its line, so the file the
docs ship cannot drift from the one the tests run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.service.server import free_port

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "docs" / "gateways" / "nginx.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def templated(text: str, listen: int, nodes: list[int], app: int) -> str:
    """The shipped file with the test's ports in place of the example ones."""
    replacements = [
        ("    listen 80;\n", f"    listen 127.0.0.1:{listen};\n"),
        (
            "    server 127.0.0.1:8000;\n",
            "".join(f"    server 127.0.0.1:{port};\n" for port in nodes),
        ),
        ("    server 127.0.0.1:8080;\n", f"    server 127.0.0.1:{app};\n"),
    ]
    for old, new in replacements:
        assert text.count(old) == 1, f"docs/gateways/nginx.conf lost its line {old!r}"
        text = text.replace(old, new)
    return text


class Upstream:
    """The app behind nginx: answers 200 with the request's headers as JSON, and keeps
    each request's headers in ``seen``."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                seen.append({"path": self.path, **headers})
                body = json.dumps(headers).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Upstream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Nginx:
    """One nginx master we own, in a directory of its own."""

    def __init__(
        self, directory: Path, nodes: list[int], app: int, *, config: str | None = None
    ) -> None:
        """nginx running ``docs/gateways/nginx.conf``, or ``config`` (a server block with
        the port already in place) when given."""
        if NGINX is None:
            pytest.skip("nginx is not installed (apt-get install nginx)")
        self.directory = directory
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        snippet = directory / "coatcheck.conf"
        if config is None:
            config = templated(SHIPPED.read_text(), self.port, nodes, app)
        snippet.write_text(config.replace("@LISTEN@", str(self.port)))
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "".join(
            f"    {name}_temp_path {directory / name};\n"
            for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (directory / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {directory / 'nginx.pid'};\n"
            f"error_log {directory / 'error.log'} info;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    access_log {directory / 'access.log'};\n{temp}"
            f"    include {snippet};\n}}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> Nginx:
        assert NGINX is not None
        command = [NGINX, "-p", str(self.directory), "-c", "nginx.conf", "-e", "error.log"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.directory
        )
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"nginx exited: {err}\n{self.log()}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not listen:\n{self.log()}")
            time.sleep(0.02)  # waiting for nginx to start

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: workers finish, then exit
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
