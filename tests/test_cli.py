"""The ``coatcheck`` command against a real SQLite file: listing shows handles and never a
credential, revocation and purge change the store, operator mistakes give one line and
exit code 1, and ``coatcheck demo`` really serves the shop."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner, Result

from coatcheck.cli import build_cli
from coatcheck.core.client import ClientInfo
from coatcheck.core.config import DAY
from coatcheck.core.record import Patch
from coatcheck.core.tokens import storage_key
from coatcheck.engine.manager import SessionManager
from coatcheck.stores import MemoryStore, SQLiteStore
from tests.support.clock import FakeClock
from tests.support.stats import check_stats
from tests.support.user_agents import CHROME_WINDOWS, COARSE, FIREFOX_LINUX, SAFARI_IPHONE

MakeManager = Callable[[float], SessionManager]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "sessions.db"


@pytest.fixture
def store_url(db: Path) -> str:
    return f"sqlite:///{db}"  # db is absolute: sqlite:////tmp/...


@pytest.fixture
def cli() -> click.Group:
    return build_cli()


@pytest.fixture
def manager_at(db: Path) -> Iterator[MakeManager]:
    """Managers over the test file whose clocks start at a given time."""
    stores: list[SQLiteStore] = []

    def make(start: float) -> SessionManager:
        store = SQLiteStore(db)
        stores.append(store)
        return SessionManager(store, clock=FakeClock(start))

    yield make
    for store in stores:
        store.close_sync()


def log_in_devices(manager: SessionManager, user: str, agents: list[str]) -> list[str]:
    """Log ``user`` in once per user agent; returns the tokens the clients received."""
    tokens = []
    for agent in agents:
        session = manager.load_sync(None, ClientInfo.from_raw(agent, "203.0.113.77"))
        session["cart"] = ["coat"]
        session.login(user)
        result = manager.commit_sync(session)
        assert result.token is not None
        tokens.append(result.token)
    return tokens


def run(cli: click.Group, *args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env)


def test_sessions_list_shows_handles_but_no_credentials(
    cli: click.Group, store_url: str, manager_at: MakeManager
) -> None:
    manager = manager_at(time.time())
    tokens = log_in_devices(manager, "alice", [FIREFOX_LINUX, SAFARI_IPHONE])
    log_in_devices(manager, "bob", [CHROME_WINDOWS])
    infos = manager.list_user_sessions_sync("alice")
    bob_handle = manager.list_user_sessions_sync("bob")[0].handle

    result = run(cli, "sessions", "list", "--user", "alice", "--store", store_url)
    assert result.exit_code == 0, result.output
    for info in infos:
        assert info.handle in result.output
    assert COARSE[FIREFOX_LINUX] in result.output and COARSE[SAFARI_IPHONE] in result.output
    assert "203.0.113.0" in result.output and "203.0.113.77" not in result.output
    assert bob_handle not in result.output
    for token in tokens:
        assert token not in result.output
        assert storage_key(token) not in result.output


def test_sessions_list_reads_the_store_from_the_environment(
    cli: click.Group, store_url: str, manager_at: MakeManager
) -> None:
    manager = manager_at(time.time())
    log_in_devices(manager, "alice", ["Laptop"])
    handle = manager.list_user_sessions_sync("alice")[0].handle

    result = run(cli, "sessions", "list", "--user", "alice", env={"COATCHECK_STORE": store_url})
    assert result.exit_code == 0, result.output
    assert handle in result.output

    empty = run(cli, "sessions", "list", "--user", "carol", "--store", store_url)
    assert empty.exit_code == 0
    assert "No live sessions for user carol." in empty.output


def test_sessions_list_keeps_escape_sequences_off_the_terminal(
    cli: click.Group, store_url: str, manager_at: MakeManager
) -> None:
    # The edges keep a reduced user agent, but a record written before minimisation (or by
    # another client of the store) may hold anything: the listing must still be safe.
    manager = manager_at(time.time())
    (token,) = log_in_devices(manager, "alice", [FIREFOX_LINUX])
    hostile = "evil\x1b]0;owned\x07\x1b[31m [bold]agent[/bold]"
    assert manager.store.apply_sync(storage_key(token), Patch(fields={"user_agent": hostile}))
    result = run(cli, "sessions", "list", "--user", "alice", "--store", store_url)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output
    assert "[bold]agent[/bold]" in result.output  # shown literally, not as Rich markup


def test_sessions_revoke_user_removes_their_sessions(
    cli: click.Group, store_url: str, manager_at: MakeManager
) -> None:
    manager = manager_at(time.time())
    tokens = log_in_devices(manager, "alice", [FIREFOX_LINUX, CHROME_WINDOWS, SAFARI_IPHONE])
    log_in_devices(manager, "bob", ["D"])

    result = run(cli, "sessions", "revoke", "--user", "alice", "--store", store_url)
    assert result.exit_code == 0, result.output
    assert "Revoked 3 sessions of user alice." in result.output
    assert manager.list_user_sessions_sync("alice") == []
    assert all(manager.store.get_sync(storage_key(t)) is None for t in tokens)
    assert len(manager.list_user_sessions_sync("bob")) == 1

    again = run(cli, "sessions", "revoke", "--user", "alice", "--store", store_url)
    assert "Revoked 0 sessions of user alice." in again.output


def test_sessions_revoke_user_except_one_and_by_handle(
    cli: click.Group, store_url: str, manager_at: MakeManager
) -> None:
    manager = manager_at(time.time())
    log_in_devices(manager, "alice", [FIREFOX_LINUX, CHROME_WINDOWS, SAFARI_IPHONE])
    by_agent = {i.user_agent: i.handle for i in manager.list_user_sessions_sync("alice")}
    chrome = COARSE[CHROME_WINDOWS]

    result = run(
        cli, "sessions", "revoke", "--user", "alice", "--except", by_agent[chrome],
        "--store", store_url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Revoked 2 sessions of user alice." in result.output
    assert [i.handle for i in manager.list_user_sessions_sync("alice")] == [by_agent[chrome]]

    result = run(
        cli,
        "sessions",
        "revoke",
        "--handle",
        by_agent[chrome],
        "--store",
        store_url,
    )
    assert result.exit_code == 0, result.output
    assert "Revoked 1 session " in result.output
    assert manager.list_user_sessions_sync("alice") == []


@pytest.mark.parametrize(
    "args",
    [
        ["sessions", "revoke"],
        ["sessions", "revoke", "--user", "alice", "--handle", "h"],
        ["sessions", "revoke", "--handle", "h", "--except", "x"],
    ],
)
def test_sessions_revoke_needs_exactly_one_target(
    cli: click.Group, store_url: str, args: list[str]
) -> None:
    result = run(cli, *args, "--store", store_url)
    assert result.exit_code == 2
    assert "Usage:" in result.output


def test_purge_deletes_only_expired_sessions(
    cli: click.Group, store_url: str, manager_at: MakeManager
) -> None:
    old = manager_at(time.time() - 2 * DAY)  # past the 12 h absolute timeout by now
    stale = log_in_devices(old, "alice", [FIREFOX_LINUX, SAFARI_IPHONE])
    live = manager_at(time.time())
    log_in_devices(live, "alice", [CHROME_WINDOWS])
    assert all(old.store.get_sync(storage_key(t)) is not None for t in stale)

    result = run(cli, "purge", "--store", store_url)
    assert result.exit_code == 0, result.output
    assert "Purged 2 expired sessions." in result.output
    assert all(old.store.get_sync(storage_key(t)) is None for t in stale)
    assert [i.user_agent for i in live.list_user_sessions_sync("alice")] == [COARSE[CHROME_WINDOWS]]

    again = run(cli, "purge", "--store", store_url)
    assert "Purged 0 expired sessions." in again.output


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("bogus://somewhere", "unknown store URL scheme"),
        ("sqlite://host/x.db", "sqlite URLs have no host"),
        ("sqlite:////nonexistent-dir/x/y.db", "store unavailable"),
    ],
)
def test_bad_store_gives_one_line_and_exit_1(cli: click.Group, store: str, message: str) -> None:
    for args in (
        ["purge"],
        ["sessions", "list", "--user", "a"],
        ["sessions", "revoke", "--user", "a"],
    ):
        result = run(cli, *args, "--store", store)
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)
        assert "Traceback" not in result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0]


def test_errors_never_print_the_store_password(cli: click.Group) -> None:
    result = run(cli, "purge", "--store", "bogus://admin:hunter2@db.example/sessions")
    assert result.exit_code == 1
    assert "hunter2" not in result.output
    assert "bogus://admin:***@db.example/sessions" in result.output


def test_bad_setting_in_environment_gives_one_line(cli: click.Group, store_url: str) -> None:
    result = run(cli, "purge", "--store", store_url, env={"COATCHECK_IDLE_TIMEOUT": "soon"})
    assert result.exit_code == 1
    assert result.output.strip() == "Error: COATCHECK_IDLE_TIMEOUT='soon' is not a valid float"


@pytest.mark.parametrize("missing", ["click", "rich"])
def test_missing_cli_extra_gives_install_hint(tmp_path: Path, missing: str) -> None:
    code = f"import sys; sys.modules[{missing!r}] = None; from coatcheck.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=30
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "coatcheck: the command line needs click and rich: pip install 'coatcheck[cli]'"
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_demo_command_serves_the_shop(tmp_path: Path, db: Path, store_url: str) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "coatcheck.cli", "demo", "--port", str(port), "--store", store_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        response = None
        deadline = time.monotonic() + 30
        while response is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
            except httpx.TransportError:
                time.sleep(0.05)  # waiting for the server to start, not for expiry
        assert response is not None, "coatcheck demo did not answer"
        assert response.status_code == 200
        assert "coatcheck demo shop" in response.text
        assert "set-cookie" not in response.headers  # looking stores nothing
        started = httpx.get(f"http://127.0.0.1:{port}/start", timeout=2)
        assert started.headers["set-cookie"].startswith("__Host-session=")
        privacy = httpx.get(f"http://127.0.0.1:{port}/privacy", timeout=2)
        assert privacy.status_code == 200 and "What this shop keeps" in privacy.text
        # The banner's answer reaches the consent ledger beside the store.
        cookie = {"Cookie": started.headers["set-cookie"].split(";")[0]}
        shop = httpx.get(f"http://127.0.0.1:{port}/", headers=cookie, timeout=2)
        token = re.search(r'name=csrf-token content="([^"]+)"', shop.text)
        assert token is not None
        answer = httpx.post(
            f"http://127.0.0.1:{port}/consent",
            data={"choice": "reject_all", "csrf_token": token.group(1)},
            headers=cookie,
            timeout=2,
        )
        assert answer.status_code == 303
        with contextlib.closing(sqlite3.connect(db)) as conn:
            methods = conn.execute("SELECT method FROM coatcheck_consent_ledger").fetchall()
        assert methods == [("reject_all",)]
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
    assert f"http://127.0.0.1:{port}/" in output
    assert "Traceback" not in output
    assert (tmp_path / "sessions.db").exists()


def test_stats_reports_live_expiring_and_top_users(db: Path, store_url: str) -> None:
    store = SQLiteStore(db)
    try:
        check_stats(store, store_url)
    finally:
        store.close_sync()


def test_the_memory_store_has_stats_too() -> None:
    check_stats(MemoryStore(), None)  # (a memory:// URL would be a new, empty store)
