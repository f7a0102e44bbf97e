"""Proof 5: an app process killed with SIGKILL while it writes to SQLite loses nothing it
acknowledged, and leaves a database that passes ``PRAGMA integrity_check``.

Each round starts a uvicorn process on the same SQLite file, lets four clients write one
new key per request to their own sessions, and kills the process mid-traffic (no chance to
flush or close anything). WAL with ``synchronous=NORMAL`` puts every committed transaction
in the OS page cache before the reply, so an app crash (unlike a power loss) cannot lose it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from coatcheck.core import tokens
from coatcheck.stores import SQLiteStore
from tests.support.browser import Browser
from tests.support.postgres_server import free_port

ROOT = Path(__file__).resolve().parent.parent
COOKIE = "__Host-session"
ROUNDS = 3


def start_app(db: Path, log: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """uvicorn serving tests/apps/shop_app.py over ``sqlite:///db``, once it answers."""
    port = free_port()
    env = {
        **os.environ,
        "COATCHECK_STORE": f"sqlite:///{db}",
        "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}",
    }
    command = [sys.executable, "-m", "uvicorn", "tests.apps.shop_app:app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"app exited ({proc.returncode}):\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/noop", timeout=1).status_code == 200:
                return base, proc
        assert time.monotonic() < deadline, f"app did not start:\n{log.read_text()}"
        time.sleep(0.05)


class Client:
    """One browser session that outlives the app processes (it keeps its cookie)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.cookies: dict[str, str] = {}
        self.acked: dict[str, int] = {}
        self.unanswered: dict[str, int] = {}
        self.n = 0
        self.failures: list[str] = []

    def write_until(self, base: str, stop: threading.Event) -> None:
        with Browser(base) as b:
            b.cookies = self.cookies
            while not stop.is_set():
                self.n += 1
                key = f"{self.name}-{self.n}"
                try:
                    r = b.post("/set", json={key: self.n})
                except httpx.HTTPError:
                    self.unanswered[key] = self.n  # cut off by the kill: may or may not be
                    return  # stored, as the client was never told
                if r.status_code != 200:
                    self.failures.append(f"{r.status_code} {r.text[:200]}")
                    return
                self.acked[key] = self.n


@pytest.mark.slow
def test_5_sigkill_while_writing_to_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "sessions.db"
    log = tmp_path / "app.log"
    clients = [Client(f"c{i}") for i in range(4)]
    for _ in range(ROUNDS):
        base, proc = start_app(db, log)
        stop = threading.Event()
        target = {c.name: len(c.acked) + 15 for c in clients}
        threads = [threading.Thread(target=c.write_until, args=(base, stop)) for c in clients]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while any(len(c.acked) < target[c.name] for c in clients):
            assert [f for c in clients for f in c.failures] == []
            assert time.monotonic() < deadline, "clients made no progress"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)  # while the clients keep writing
        proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(10)
        assert [f for c in clients for f in c.failures] == [], log.read_text()

        with contextlib.closing(sqlite3.connect(db)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        store = SQLiteStore(db)
        try:
            for c in clients:
                record = store.get_sync(tokens.storage_key(c.cookies[COOKIE]))
                assert record is not None, f"{c.name}'s session vanished"
                lost = {k: v for k, v in c.acked.items() if record.data.get(k) != v}
                assert lost == {}, f"{c.name} lost acknowledged writes {sorted(lost)}"
        finally:
            store.close_sync()

    # A new process on the crashed file serves every session with all of its data.
    base, proc = start_app(db, log)
    try:
        for c in clients:
            with Browser(base) as b:
                b.cookies = c.cookies
                data = b.get("/read").json()["data"]
                assert data.items() >= c.acked.items()
                assert data.items() - c.acked.items() <= c.unanswered.items()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(
        f"\n{ROUNDS} kills; acknowledged writes {sum(len(c.acked) for c in clients)}; "
        f"requests cut off by a kill {sum(len(c.unanswered) for c in clients)}"
    )
