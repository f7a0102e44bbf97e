"""coatcheck.js's own tests (``clients/js/test/``, node's test runner over jsdom), run as
part of the suite: ``make test`` fails when they fail.

The npm packages they need are installed here with ``npm ci`` from the committed
``clients/js/package-lock.json`` whenever the lock changed since the last install (a
stamp in ``node_modules`` records its digest), so a fresh clone needs no step of its own.
Without node or npm the test is skipped locally and fails under CI=true, where a missing
tool must never pass as green.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "js"
LOCK = CLIENT / "package-lock.json"
STAMP = CLIENT / "node_modules" / ".coatcheck-lock-sha256"
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what: str) -> None:
    if CI:
        pytest.fail(f"{what} is required under CI=true (apt-get install nodejs npm)")
    pytest.skip(f"{what} not found")


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        missing(name)
    assert path is not None
    return path


def install(npm: str) -> None:
    """``npm ci`` unless node_modules already holds exactly what the lock names."""
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == digest:
        return
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    STAMP.write_text(digest)


def test_node_tests_of_coatcheck_js_pass() -> None:
    node = tool("node")
    install(tool("npm"))
    done = subprocess.run(
        [node, "--test", "--test-reporter=spec", "test/"],
        cwd=CLIENT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    # The runner's summary: nothing failed, and the suite did run (not an empty folder).
    passed = re.search(r"^\S+ pass (\d+)$", report, re.MULTILINE)
    assert re.search(r"^\S+ fail 0$", report, re.MULTILINE), report
    assert passed is not None and int(passed.group(1)) >= 30, report
    print(next(line for line in report.splitlines() if "B minified" in line))
