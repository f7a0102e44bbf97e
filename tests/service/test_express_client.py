"""The Node client, ``clients/node`` (coatcheck-express), run by node's own test runner:
``node --test clients/node/test/`` starts its own ``coatcheck serve`` processes (this
Python, this source tree) and a real Express app, and must pass every test it has.

``npm ci`` installs Express from the lock file first when ``node_modules`` is missing or
older than the lock. Without node the test is skipped on a developer's machine and fails
under CI=true, where .ci/run installs it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "node"


def need(tool: str) -> str:
    found = shutil.which(tool)
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is not installed, and CI must run the Node client's tests")
        pytest.skip(f"{tool} is not installed")
    return found


def npm_ci(project: Path) -> None:
    """``npm ci`` in ``project`` unless its node_modules already match the lock file."""
    installed = project / "node_modules" / ".package-lock.json"
    lock = project / "package-lock.json"
    if installed.exists() and installed.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = need("npm")
    proc = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def node_env() -> dict[str, str]:
    """The environment the Node tests start ``coatcheck serve`` with: this Python, with
    this tree's source first on its path."""
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "COATCHECK_PYTHON": sys.executable, "PYTHONPATH": path}


def test_the_node_client_passes_its_own_tests_against_a_real_service() -> None:
    node = need("node")
    npm_ci(CLIENT)
    proc = subprocess.run(
        [node, "--test", str(CLIENT / "test") + os.sep],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env=node_env(),
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    counts = dict(re.findall(r"^# (tests|pass|fail|cancelled|skipped|todo) (\d+)$", output, re.M))
    assert int(counts["pass"]) == int(counts["tests"]) >= 40, output
    assert (counts["fail"], counts["cancelled"], counts["skipped"], counts["todo"]) == (
        "0",
        "0",
        "0",
        "0",
    ), output


def test_the_package_is_plain_javascript_with_no_dependency_of_its_own() -> None:
    package = json.loads((CLIENT / "package.json").read_text())
    assert package["name"] == "coatcheck-express"
    assert package["type"] == "module"  # ES modules
    assert "dependencies" not in package and "scripts" in package
    assert "build" not in package["scripts"]  # no build step: src/ is what runs
    assert package["exports"] == {".": "./src/index.js"}
    assert package["engines"] == {"node": ">=20"}
    assert package["peerDependencies"] == {"express": "^5.0.0"}
    assert set(package["devDependencies"]) == {"express"}
    lock = json.loads((CLIENT / "package-lock.json").read_text())
    assert lock["packages"][""]["devDependencies"] == package["devDependencies"]
    sources = sorted(p.suffix for p in (CLIENT / "src").iterdir())
    assert set(sources) == {".js"}
