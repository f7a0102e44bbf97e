"""docs/privacy.md: every statement (each bullet of its sections) names the tests that
keep it, and every test it names exists; so the page cannot promise what nothing proves."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "privacy.md"
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


OPERATOR = "## What stays the operator's job"
"""Its bullets are the operator's tasks, not statements about coatcheck
(tests/test_privacy_docs.py keeps the ones that make a claim)."""


def bullets() -> list[str]:
    """Each bullet of the page outside the operator's section, continuation lines joined."""
    found: list[str] = []
    skipping = False
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            skipping = line == OPERATOR
        if skipping:
            continue
        if line.startswith("- "):
            found.append(line)
        elif line.startswith("  ") and found:
            found[-1] += " " + line.strip()
    return found


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_the_page_starts_with_consent_gpc_and_minimisation() -> None:
    headings = [line for line in DOC.read_text().splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## Consent, decided on the server", "## Global Privacy Control"]
    assert "## Minimisation, by default" in headings
    text = DOC.read_text()
    for anchor in ("Art. 5(1)(c)", "Art. 7(1)", "Art. 7(3)", "Art. 25", "Art. 5(3)", "CCPA/CPRA"):
        assert anchor in text, anchor


def test_every_statement_names_a_proof() -> None:
    found = bullets()
    assert len(found) > 15
    assert [b[:60] for b in found if not TEST_ID.search(b)] == []


def test_every_named_test_exists() -> None:
    missing = []
    for file, name in TEST_ID.findall(DOC.read_text()):
        path = ROOT / file
        if not path.exists() or name not in defined_tests(path):
            missing.append(f"{file}::{name}")
    assert missing == []
