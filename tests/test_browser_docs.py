"""docs/browser.md says only what tests keep: outside its headings, code blocks and its
opening paragraph (which describes this file) it is tables, every row names its proofs,
and every proof exists. The attribute table, the code blocks and the paths are checked
against the code itself."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from coatcheck.http import browser

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "browser.md"
SCRIPT = ROOT / "src" / "coatcheck" / "static" / "coatcheck.js"
PROOF = re.compile(r"`((?:tests|clients/js/test)/[\w/.-]+\.(?:py|mjs))::([^`]+)`")
INTRO = (
    "Every row below names the tests that prove it; `tests/test_browser_docs.py` fails when a "
    "row names none, names a test that does not exist, or when this page says something "
    "outside its tables and code blocks."
)


def doc_lines() -> list[str]:
    return DOC.read_text().splitlines()


def blocks() -> tuple[list[str], list[list[str]], list[str]]:
    """The page's table rows, its code blocks, and every other non-blank line."""
    rows: list[str] = []
    code: list[list[str]] = []
    prose: list[str] = []
    fence: list[str] | None = None
    for line in doc_lines():
        if line.startswith("```"):
            if fence is None:
                fence = []
            else:
                code.append(fence)
                fence = None
        elif fence is not None:
            fence.append(line)
        elif line.startswith("|"):
            rows.append(line)
        elif line.strip() and not line.startswith("#"):
            prose.append(line)
    return rows, code, prose


def python_tests(path: Path) -> set[str]:
    return {
        node.name
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_nothing_but_headings_tables_and_code_after_the_opening_paragraph() -> None:
    _, _, prose = blocks()
    assert " ".join(prose) == INTRO


def test_every_row_names_a_proof_and_every_proof_exists() -> None:
    rows, _, _ = blocks()
    claims = [r for r in rows if not r.startswith(("| What", "| Attribute", "|---"))]
    assert len(claims) >= 25
    missing: list[str] = []
    for row in claims:
        proofs = PROOF.findall(row.split("|")[-2])
        assert proofs, f"a row without a proof: {row}"
        for file, name in proofs:
            path = ROOT / file
            if not path.exists():
                missing.append(f"{file} (no such file)")
            elif file.endswith(".py"):
                if name not in python_tests(path):
                    missing.append(f"{file}::{name}")
            elif f'test("{name}"' not in path.read_text():
                missing.append(f"{file}::{name}")
    assert missing == []


def test_the_attribute_table_is_what_the_script_reads() -> None:
    source = SCRIPT.read_text()
    read = dict(re.findall(r'attr\("([a-z-]+)"\) \|\| ("[^"]*"|\d+)', source))
    documented = {}
    for row in blocks()[0]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if cells[0].startswith("`data-coatcheck-"):
            documented[cells[0].strip("`").removeprefix("data-coatcheck-")] = cells[1].strip("`")
    assert documented.keys() == read.keys()
    for name, default in read.items():
        expected = default.strip('"') if default.startswith('"') else default
        assert documented[name] in (expected, '""' if expected == "" else expected), name


def test_the_code_blocks_name_what_exists() -> None:
    python, page = blocks()[1]
    for module, name in re.findall(r"coatcheck\.(\w+)\.(\w+)\(", "\n".join(python)):
        assert callable(getattr(importlib.import_module(f"coatcheck.{module}"), name))
    html = "\n".join(page)
    assert f'src="{browser.SCRIPT_PATH}"' in html
    source = SCRIPT.read_text()
    assert 'meta[name="csrf-token"]' in source
    for attribute in re.findall(r"data-coatcheck-([a-z-]+)=", html):
        assert f'attr("{attribute}")' in source
    text = DOC.read_text()
    assert f"`{browser.SCRIPT_PATH}`" in text and f"`{browser.KEEP_ALIVE_PATH}`" in text
