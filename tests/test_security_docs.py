"""docs/security.md lists, for every requirement, the tests that prove it. A listed test
that does not exist fails here, so the table cannot drift from the suite."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "security.md"
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_listed_test_id_exists() -> None:
    ids = TEST_ID.findall(DOC.read_text())
    assert len(ids) > 40, "the table lost its proofs"
    missing = []
    cache: dict[str, set[str]] = {}
    for file, name in ids:
        path = ROOT / file
        if not path.exists():
            missing.append(f"{file} (no such file)")
            continue
        names = cache.setdefault(file, defined_tests(path))
        if name not in names:
            missing.append(f"{file}::{name}")
    assert missing == []


def test_every_requirement_row_names_a_proof() -> None:
    rows = [
        line
        for line in DOC.read_text().splitlines()
        if line.startswith("| ") and not line.startswith(("| Requirement", "|---"))
    ]
    assert rows
    without = [row.split("|")[1].strip() for row in rows if not TEST_ID.search(row)]
    assert without == []
