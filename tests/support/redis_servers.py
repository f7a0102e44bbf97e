"""Private Redis servers for tests: a standalone server, a 3-master Cluster, a master behind
one Sentinel, each started from the real ``redis-server`` binary on free loopback ports in a
temporary directory.

The cluster and the Sentinel pair are started once per test session (on first use) and
stopped at exit; standalone servers are started per test where a test needs to kill one.
Every server runs with CONFIG renamed away, proving the store never needs it (managed Redis
and Valkey services disable it). When a server cannot be started the caller skips with the
reason, and CI turns that skip into a failure.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")

SHARED_URL = os.environ.get("COATCHECK_TEST_REDIS", "redis://127.0.0.1:6379/0")
"""The machine's own Redis (CI starts it); tests use a random key prefix there."""

NO_CONFIG = ("--rename-command", "CONFIG", "")
"""Disable CONFIG the way managed services do."""


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A free loopback port (and, for cluster nodes, a free bus port at +10000)."""
    for _ in range(200):
        port = 20000 + secrets.randbelow(25000)
        if _port_free(port) and (not with_bus or _port_free(port + 10000)):
            return port
    raise RuntimeError("no free port found")


def require_binaries() -> None:
    if REDIS_SERVER is None or REDIS_CLI is None:
        pytest.skip("redis-server/redis-cli are not installed (apt-get install redis-server)")


def unique_prefix() -> str:
    return f"cctest:{secrets.token_hex(6)}:"


class RedisServer:
    """One ``redis-server`` process we own: start, kill, restart on the same port."""

    def __init__(
        self,
        directory: Path,
        *args: str,
        port: int | None = None,
        sentinel_of: int | None = None,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        require_binaries()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port(with_bus="--cluster-enabled" in args)
        self.args = args
        self.sentinel_of = sentinel_of
        """For a Sentinel: the port of the master it watches."""
        self.client_kwargs = client_kwargs or {}
        """How a client reaches this server (credentials, TLS), for readiness checks."""
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        assert REDIS_SERVER is not None
        if self.sentinel_of is not None:
            conf = self.directory / "sentinel.conf"  # a Sentinel rewrites its own file
            conf.write_text(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
                f"sentinel monitor mymaster 127.0.0.1 {self.sentinel_of} 1\n"
                "sentinel down-after-milliseconds mymaster 5000\n"
            )
            command = [REDIS_SERVER, str(conf), "--sentinel"]
            command += ["--logfile", str(self.directory / "redis.log")]
        else:
            command = self._server_command()
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.directory
        )
        try:
            self.wait_ready(timeout)
        except BaseException:  # a skip included: never leave the process behind
            self.stop()
            raise
        return self

    def _server_command(self) -> list[str]:
        assert REDIS_SERVER is not None
        return [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--logfile",
            str(self.directory / "redis.log"),
            *NO_CONFIG,
            *self.args,
        ]

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=1,
            socket_connect_timeout=1,
            **self.client_kwargs,
        )
        try:
            while True:
                if self.process is not None and self.process.poll() is not None:
                    log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                    pytest.skip(f"redis-server on port {self.port} exited:\n{log}")
                try:
                    if client.ping():
                        return
                except redis.RedisError:
                    pass
                if time.monotonic() > deadline:
                    pytest.skip(f"redis-server on port {self.port} did not answer in {timeout}s")
                time.sleep(0.02)
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            decode_responses=True,
            socket_timeout=5,
            **self.client_kwargs,
        )

    def restart(self) -> RedisServer:
        """Start again on the same port and directory (an AOF, if any, is replayed)."""
        self.kill()
        return self.start()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM):
                self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case a test froze it
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Shared:
    """Servers started once per test session and stopped at interpreter exit."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.servers: list[RedisServer] = []
        self.cluster_url: str | None = None
        self.sentinel_url: str | None = None
        self.master: RedisServer | None = None
        self.failures: dict[str, str] = {}

    def _dir(self, name: str) -> Path:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="coatcheck-redis-"))
            atexit.register(self.stop)
        return self.root / name

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()
        self.servers.clear()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def cluster(self) -> str:
        """URL of a 3-master cluster (``redis+cluster://...``), started on first use."""
        if self.cluster_url is None:
            self.cluster_url = self._once("cluster", self._start_cluster)
        return self.cluster_url

    def _once(self, name: str, start: Callable[[], str]) -> str:
        """Start a shared setup once; a failure is remembered so later tests skip at once."""
        if name in self.failures:
            pytest.skip(self.failures[name])
        try:
            return start()
        except BaseException as exc:  # pytest.skip raises a BaseException
            self.failures[name] = f"{name} could not be started: {exc}"
            raise

    def _start_cluster(self) -> str:
        nodes = [
            RedisServer(
                self._dir(f"cluster-{i}"),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
                "--appendonly",
                "no",
            )
            for i in range(3)
        ]
        for node in nodes:
            self.servers.append(node.start())
        assert REDIS_CLI is not None
        created = subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"127.0.0.1:{n.port}" for n in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if created.returncode != 0:
            pytest.skip(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
        _wait_cluster_ok([n.port for n in nodes])
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in nodes)
        return f"redis+cluster://{hosts}"

    def sentinel(self) -> str:
        """URL of a master watched by one Sentinel (``redis+sentinel://.../mymaster``)."""
        if self.sentinel_url is None:
            self.sentinel_url = self._once("sentinel", self._start_sentinel)
        return self.sentinel_url

    def _start_sentinel(self) -> str:
        master = RedisServer(self._dir("sentinel-master"))
        self.servers.append(master.start())
        self.master = master
        sentinel = RedisServer(self._dir("sentinel"), sentinel_of=master.port)
        self.servers.append(sentinel.start())
        port = sentinel.port
        _wait_sentinel(port, master.port)
        return f"redis+sentinel://127.0.0.1:{port}/mymaster"

    def sentinel_master_url(self) -> str:
        """Direct URL of the master behind the Sentinel (for cleanup and inspection)."""
        self.sentinel()
        assert self.master is not None
        return self.master.url


def _wait_cluster_ok(ports: list[int], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    for port in ports:
        client = redis.Redis(port=port, decode_responses=True, socket_timeout=2)
        try:
            while "cluster_state:ok" not in str(client.execute_command("CLUSTER", "INFO")):
                if time.monotonic() > deadline:
                    pytest.skip(f"cluster node {port} never reached cluster_state:ok")
                time.sleep(0.05)
        finally:
            client.close()


def _wait_sentinel(port: int, master_port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis(port=port, decode_responses=True, socket_timeout=2)
    try:
        while True:
            addr = client.execute_command("SENTINEL", "get-master-addr-by-name", "mymaster")
            if addr and int(addr[1]) == master_port:
                return
            if time.monotonic() > deadline:
                pytest.skip("sentinel never reported its master")
            time.sleep(0.05)
    finally:
        client.close()


SHARED = _Shared()


def shared_redis_url() -> str:
    """The machine's Redis, or a skip naming how to get one."""
    client = redis.Redis.from_url(SHARED_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {SHARED_URL} is not reachable ({exc}); start redis-server")
    finally:
        client.close()
    return SHARED_URL


def delete_prefix(url: str, prefix: str) -> None:
    """Remove every key under ``prefix`` (standalone or cluster)."""
    if url.startswith("redis+cluster://"):
        hosts = url.split("://", 1)[1].split("/")[0].split(",")
        host, port = hosts[0].rsplit(":", 1)
        cluster = redis.RedisCluster(host=host, port=int(port), decode_responses=True)
        try:
            for key in cluster.scan_iter(match=prefix + "*", count=1000):
                cluster.delete(key)
        finally:
            cluster.close()
        return
    if url.startswith("redis+sentinel://"):
        raise ValueError("pass the master's URL")
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
