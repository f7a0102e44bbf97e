"""A real nginx in front of a test app: docs/nginx.conf as a site, in a private prefix.

The site file is the one in docs/, with only what a test must change replaced (its
upstream, its listen ports, its certificate paths): each replacement must match exactly
once, so the documented example cannot drift from the tested one. nginx runs in the
foreground on loopback ports, as the current user, with every path under a temporary
directory; a self-signed certificate (for 127.0.0.1) is made with ``cryptography``.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
SITE = Path(__file__).resolve().parents[2] / "docs" / "nginx.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (and shop.example.com) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "shop.example.com")])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName("shop.example.com"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        raise AssertionError(f"docs/nginx.conf must contain {old!r} exactly once")
    return text.replace(old, new)


@dataclass(frozen=True)
class Front:
    """A running nginx: its https and http base URLs, and a client context trusting it."""

    https: str
    http: str
    tls: ssl.SSLContext
    error_log: Path


def _site(upstream: str, https_port: int, http_port: int, cert: Path, key: Path) -> str:
    site = SITE.read_text()
    for old, new in (
        ("server 127.0.0.1:8000;", f"server {upstream};"),
        ("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;"),
        ("listen 80;", f"listen 127.0.0.1:{http_port};"),
        ("/etc/ssl/certs/shop.example.com.pem", str(cert)),
        ("/etc/ssl/private/shop.example.com.key", str(key)),
    ):
        site = _replace_once(site, old, new)
    return site


def _main_config(prefix: Path) -> str:
    """The nginx.conf around the site: foreground, one worker, every path in ``prefix``."""
    temp = "\n".join(
        f"    {kind}_temp_path {prefix / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read the prefix
    return (
        f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} notice;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n    access_log off;\n{temp}\n    include {prefix / 'site.conf'};\n}}\n"
    )


@contextlib.contextmanager
def nginx_in_front(upstream: str, prefix: Path) -> Iterator[Front]:
    """Run nginx with docs/nginx.conf proxying to ``upstream`` (``host:port``)."""
    prefix.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed(prefix)
    https_port, http_port = free_port(), free_port()
    (prefix / "site.conf").write_text(_site(upstream, https_port, http_port, cert, key))
    (prefix / "nginx.conf").write_text(_main_config(prefix))
    command = [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for(https_port, proc, prefix)
        tls = ssl.create_default_context(cafile=str(cert))
        yield Front(
            f"https://127.0.0.1:{https_port}",
            f"http://127.0.0.1:{http_port}",
            tls,
            prefix / "error.log",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for(port: int, proc: subprocess.Popen[bytes], prefix: Path) -> None:
    deadline = time.monotonic() + 10
    while True:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            output = proc.stdout.read().decode() if proc.stdout else ""
            log = (prefix / "error.log").read_text() if (prefix / "error.log").exists() else ""
            raise AssertionError(f"nginx did not start: {output}\n{log}")
        time.sleep(0.02)  # waiting for nginx to listen
