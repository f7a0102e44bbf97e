"""docs/service.md is kept by tests: its shell, Python and Node examples run against a real
``coatcheck serve`` and must answer what the page shows; each section names the tests that
prove it, and those tests exist; its tables of errors and settings are the service's own;
the Traefik and Envoy recipes name what forward-auth answers."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from coatcheck.core.config import SessionConfig
from coatcheck.service import problems
from coatcheck.service.forward_auth import PATH, RESPONSES
from coatcheck.service.settings import ServiceSettings
from tests.service.conftest import start_running
from tests.service.server import TEST_ENV

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "service.md"
TRAEFIK = ROOT / "docs" / "gateways" / "traefik.yml"
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.DOTALL | re.MULTILINE)
ANY = "…"
EXPRESS_IMPORT = 'from "coatcheck-express"'
NODE_DOCS_TEST = ROOT / "clients" / "node" / "test" / "docs.test.js"


@dataclass
class Block:
    lang: str
    text: str


def blocks() -> list[Block]:
    return [Block(m.group(1), m.group(2)) for m in FENCE.finditer(DOC.read_text())]


def runnable() -> list[tuple[Block, Block | None]]:
    """Each example (sh, python, js) with the answer block right after it, if any."""
    found = blocks()
    out = []
    for i, block in enumerate(found):
        if block.lang in ("sh", "python", "js"):
            after = found[i + 1] if i + 1 < len(found) else None
            answer = after if after is not None and after.lang in ("json", "text") else None
            out.append((block, answer))
    return out


def matches(expected: Any, actual: Any) -> bool:
    """``actual`` has ``expected``'s shape and values, ``"…"`` matching anything."""
    if expected == ANY:
        return True
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and set(expected) == set(actual)
            and all(matches(v, actual[k]) for k, v in expected.items())
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual, strict=True))
        )
    return bool(expected == actual and type(expected) is type(actual))


def check_answer(answer: Block | None, output: str, where: str) -> None:
    if answer is None:
        return
    if answer.lang == "json":
        assert matches(json.loads(answer.text), json.loads(output)), f"{where}:\n{output}"
    else:
        assert output.strip() == answer.text.strip(), f"{where}:\n{output}"


def test_the_examples_answer_what_the_page_shows(tmp_path: Path) -> None:
    service = start_running(tmp_path / "service")
    try:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        wrapper = bin_dir / "coatcheck"
        wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m coatcheck.cli "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IEXEC)
        env = {
            **os.environ,
            **TEST_ENV,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "SERVICE": service.url,
            "COATCHECK_STORE": service.store_url,
        }
        examples = runnable()
        shells = [(b, a) for b, a in examples if b.lang == "sh"]
        script = ["set -euo pipefail"]
        for n, (block, _) in enumerate(shells):
            script += [f"printf '\\n@@@ {n}\\n'", block.text]
        script.append('printf "%s" "$JWT" > final.jwt')
        work = tmp_path / "work"
        work.mkdir()
        proc = subprocess.run(
            ["bash", "-c", "\n".join(script)],
            capture_output=True,
            text=True,
            env=env,
            cwd=work,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs = re.split(r"\n@@@ \d+\n", proc.stdout)[1:]
        assert len(outputs) == len(shells)
        for n, ((block, answer), output) in enumerate(zip(shells, outputs, strict=True)):
            check_answer(answer, output, f"shell example {n}: {block.text[:60]!r}")
        env["JWT"] = (work / "final.jwt").read_text()
        for block, answer in examples:
            if block.lang == "python":
                command = [sys.executable, "-c", block.text]
            elif block.lang == "js":
                if EXPRESS_IMPORT in block.text:
                    continue  # run by clients/node/test/docs.test.js, beside its package
                if shutil.which("node") is None:
                    pytest.skip("node is not installed")
                script_file = work / "verify.mjs"
                script_file.write_text(block.text)
                command = ["node", str(script_file)]
            else:
                continue
            run = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=60, check=False
            )
            assert run.returncode == 0, run.stderr
            check_answer(answer, run.stdout, f"{block.lang} example")
    finally:
        service.server.stop()


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_section_names_proofs_that_exist() -> None:
    text = DOC.read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    assert len(sections) >= 7
    for section in sections:
        assert "Proof:" in section, f"section {section.splitlines()[0]!r} names no proof"
    missing = []
    for file, name in TEST_ID.findall(text):
        path = ROOT / file
        if not path.exists() or name not in defined_tests(path):
            missing.append(f"{file}::{name}")
    assert missing == []


def test_the_error_table_lists_every_problem_type() -> None:
    rows = re.findall(r"^\| `(urn:coatcheck:problem:[\w-]+)` \| (\d+) \|", DOC.read_text(), re.M)
    assert sorted((t, int(s)) for t, s in rows) == sorted(
        (k.type, k.status) for k in problems.KINDS
    )


def test_the_settings_table_is_what_the_service_reads() -> None:
    section = DOC.read_text().split("## Settings", 1)[1]
    rows = dict(re.findall(r"^\| `(COATCHECK_\w+)` \| ([^|]+) \|", section, re.M))
    sources = (ROOT / "src/coatcheck/service/settings.py").read_text() + (
        ROOT / "src/coatcheck/cli/commands.py"
    ).read_text()
    read = set(re.findall(r'"(COATCHECK_[A-Z_]+)"', sources))
    engine = {f"COATCHECK_{name.upper()}" for name in SessionConfig.__dataclass_fields__}
    assert set(rows) == read - engine
    defaults = ServiceSettings()
    documented = {
        "COATCHECK_STORE": f"`{defaults.store_url}`",
        "COATCHECK_API_KEY_CACHE": f"`{defaults.api_key_cache:g}`",
        "COATCHECK_READY_TIMEOUT": f"`{defaults.ready_timeout:g}`",
        "COATCHECK_JWT_AUDIENCE": f"`{defaults.jwt_audience}`",
        "COATCHECK_JWT_TTL": f"`{defaults.jwt_ttl}`",
        "COATCHECK_JWT_ALGORITHM": f"`{defaults.jwt_algorithm}`",
        "COATCHECK_PASSIVE_PATHS": "none" if not defaults.passive_paths else "?",
        "COATCHECK_FORWARD_AUTH_JWT": "none" if defaults.forward_auth_jwt is None else "?",
    }
    for var, default in documented.items():
        assert rows[var].strip() == default, var


def test_the_traefik_and_envoy_recipes_name_what_forward_auth_answers() -> None:
    answered = {name for name in RESPONSES[200]["headers"] if name.startswith("X-Coatcheck-")}
    traefik = yaml.safe_load(TRAEFIK.read_text())
    forward = traefik["http"]["middlewares"]["coatcheck"]["forwardAuth"]
    assert forward["address"].endswith(PATH)
    assert set(forward["authResponseHeaders"]) == answered
    assert forward["addAuthCookiesToResponse"] == [SessionConfig().cookie_name]
    assert traefik["http"]["routers"]["app"]["middlewares"] == ["coatcheck"]
    (envoy,) = [b for b in blocks() if b.lang == "yaml"]
    service = yaml.safe_load(envoy.text)["http_filters"][0]["typed_config"]["http_service"]
    assert service["path_prefix"] == PATH
    allowed = {p["exact"] for p in service["authorization_request"]["allowed_headers"]["patterns"]}
    assert {"cookie", "authorization"} <= allowed
    response = service["authorization_response"]
    assert response["allowed_upstream_headers"]["patterns"] == [{"prefix": "x-coatcheck-"}]
    assert all(h.lower().startswith("x-coatcheck-") for h in answered)
    assert response["allowed_client_headers_on_success"]["patterns"] == [{"exact": "set-cookie"}]


def test_the_express_example_is_the_one_the_node_tests_run() -> None:
    """The Express block needs its package beside it, so node's own runner runs it
    (``docs.test.js``, run by ``test_express_client``), not the loop above."""
    express = [b for b in blocks() if b.lang == "js" and EXPRESS_IMPORT in b.text]
    assert len(express) == 1
    assert "export default app;" in express[0].text
    driver = NODE_DOCS_TEST.read_text()
    assert '"docs", "service.md"' in driver  # the page itself, read as it is
    assert f"b.includes('{EXPRESS_IMPORT}')" in driver  # this very block
