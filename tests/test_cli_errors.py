"""The ``coatcheck`` command never prints a traceback: a store that is down, a URL that
names nothing, an argument the library refuses, a store that lacks what the command
needs each end with one clear ``Error:`` line and exit code 1.

Run as the operator runs it (a subprocess of ``python -m coatcheck.cli``), and through
Click's runner with ``catch_exceptions=False``, where an exception would escape the
command instead of being turned into its message.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from coatcheck.cli import build_cli
from coatcheck.security.sealing import new_key


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PORT = closed_port()
COOKIE_ENV = {"COATCHECK_COOKIE_KEYS": new_key()}

FAILURES: list[tuple[list[str], dict[str, str], str]] = [
    # a store that is down
    (["stats", "--store", f"redis://127.0.0.1:{PORT}/0"], {}, "store unavailable"),
    (
        ["sessions", "list", "--user", "a", "--store", f"memcached://127.0.0.1:{PORT}"],
        {},
        "store unavailable",
    ),
    (
        ["purge", "--store", f"postgresql://127.0.0.1:{PORT}/x?pool_timeout=1&connect_timeout=1"],
        {},
        "store unavailable",
    ),
    (
        ["stats", "--store", f"redis+sentinel://127.0.0.1:{PORT}/mymaster"],
        {},
        "No master found for 'mymaster': network:ConnectionError",
    ),
    # a URL that names nothing
    (["stats", "--store", "bogus://x"], {}, "unknown store URL scheme"),
    (["stats", "--store", "redis://:secret@[::1"], {}, "opens [ without closing it"),
    (["stats", "--store", "sqlite:///"], {}, "names no file"),
    (["stats", "--store", "sqlite:////nonexistent/dir/x.db"], {}, "unable to open"),
    # an argument the library refuses
    (["sessions", "list", "--user", "", "--store", "memory://"], {}, "is not a user id"),
    (["sessions", "revoke", "--user", "", "--store", "memory://"], {}, "is not a user id"),
    # a store without what the command needs
    (["sessions", "list", "--user", "a", "--store", "cookie://"], COOKIE_ENV, "UserIndex"),
    (["sessions", "revoke", "--handle", "h", "--store", "cookie://"], COOKIE_ENV, "HandleIndex"),
    (["sessions", "revoke", "--user", "a", "--store", "cookie://"], COOKIE_ENV, "revocation"),
    (["api-keys", "list", "--store", "cookie://"], COOKIE_ENV, "server-side store"),
]


@pytest.mark.parametrize(("args", "env", "says"), FAILURES)
def test_an_error_is_one_line_and_exit_code_1_never_a_traceback(
    args: list[str], env: dict[str, str], says: str, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "coatcheck.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and says in errors[0], proc.stderr
    assert "secret" not in proc.stderr  # a URL's password is never printed

    result = CliRunner(env=env).invoke(build_cli(), args, catch_exceptions=False)
    assert result.exit_code == 1
    assert says in result.output
