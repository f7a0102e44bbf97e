"""The README's quickstart, as a newcomer pastes it: its Python block saved as ``app.py`` and
served by uvicorn in a fresh directory, its shell block run line by line with real curl.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from coatcheck import SessionManager
from coatcheck.stores import SQLiteStore
from coatcheck.testing import force_login
from tests.support.readme import code_blocks, expected_output, matches, section

QUICKSTART = "Quickstart: Starlette / FastAPI"
SRC = Path(__file__).resolve().parents[1] / "src"
COOKIE = "__Host-session"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    """The environment of a fresh shell: this tree's coatcheck, no COATCHECK_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COATCHECK_")}
    env["PYTHONPATH"] = str(SRC)
    return env


@dataclass
class Served:
    url: str
    port: int
    directory: Path


@pytest.fixture
def quickstart(tmp_path: Path) -> Iterator[Served]:
    """``app.py`` from the README, served as the README says (``uvicorn app:app``)."""
    (block,) = code_blocks(QUICKSTART, "python")
    (tmp_path / "app.py").write_text(block)
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port)]
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/docs", timeout=2)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"app.py did not start: {proc.communicate()[0]}")
                time.sleep(0.05)  # waiting for the server to start
        yield Served(url, port, tmp_path)
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=15)
        assert "Traceback" not in output, output


def test_devices_shows_nothing_to_an_anonymous_visitor(quickstart: Served) -> None:
    """Even when a user is literally named "None", an anonymous visitor (whose user_id is
    None) sees nobody's devices; a logged-in user sees exactly theirs."""
    store = SQLiteStore(quickstart.directory / "sessions.db")
    try:
        manager = SessionManager(store)
        force_login(manager, "None")
        alice = force_login(manager, "alice")
        anonymous = httpx.get(f"{quickstart.url}/devices")
        assert anonymous.status_code == 401
        assert anonymous.json() == {"detail": "log in first"}
        mine = httpx.get(f"{quickstart.url}/devices", headers={"Cookie": f"{COOKIE}={alice}"})
        assert mine.status_code == 200
        assert [device["user_id"] for device in mine.json()] == ["alice"]
    finally:
        store.close_sync()


def test_the_quickstart_curl_session_works_as_pasted(quickstart: Served) -> None:
    """Each line of the shell block, run in one bash in the app's directory (the README's
    port replaced by the test's); each ``# → ...`` promise is what that line prints."""
    (block,) = code_blocks(QUICKSTART, "sh")
    lines = [expected_output(line) for line in block.splitlines() if line.strip()]
    marker = "--coatcheck-line-done--"
    here = f"127.0.0.1:{quickstart.port}"
    script = "set -euo pipefail\n" + "".join(
        f"{command.replace('127.0.0.1:8000', here)}\necho\necho {marker}\n" for command, _ in lines
    )
    proc = subprocess.run(
        ["bash", "-c", script],
        cwd=quickstart.directory,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    outputs = proc.stdout.split(marker + "\n")[: len(lines)]
    assert len(outputs) == len(lines)
    promised = [(command, promise, output) for (command, promise), output in zip(lines, outputs)]
    for command, promise, output in promised:
        if promise is not None:
            assert matches(promise, output), (
                f"{command}\n  printed {output!r}\n  promised {promise!r}"
            )
    assert sum(promise is not None for _, promise, _ in promised) == 6


# -- the command line ---------------------------------------------------------------------
def test_the_cli_runs_from_the_virtualenv_as_the_readme_says() -> None:
    """``.venv/bin/coatcheck`` is the virtualenv's console script (here: the one of the
    interpreter running the suite, which ``make test`` installs the same way), and each
    command line of the README's block, with each of its options, is one it accepts."""
    assert "`.venv/bin/coatcheck ...`" in section("Command line")
    script = Path(sys.executable).parent / "coatcheck"
    assert script.exists(), f"no console script at {script}"
    (block,) = code_blocks("Command line", "sh")
    commands = [line.split("#")[0].strip() for line in block.splitlines()]
    commands = [c for c in commands if c]
    assert len(commands) == 11
    groups = {"sessions", "api-keys", "jwt-keys", "privacy"}  # commands with subcommands
    for line in commands:
        words = line.split()
        assert words[0] == "coatcheck"
        sub = [w for w in words[1:] if re.fullmatch(r"[a-z][a-z-]*", w)][:2]
        sub = sub if sub[:1] and sub[0] in groups else sub[:1]
        help_text = subprocess.run(
            [str(script), *sub, "--help"],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        for option in re.findall(r"--[a-z]+", line):
            assert option in help_text, f"{line}: {option} not in `coatcheck {' '.join(sub)}`"
