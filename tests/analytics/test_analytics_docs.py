"""docs/analytics.md says only what tests keep: outside its headings, code blocks and its
opening lines it is tables, every row names its proofs, and every proof exists; the figure
keys it lists are the summary's keys; the command lines in its code block parse."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

from click.testing import CliRunner

from bench.__main__ import SCENARIOS
from coatcheck.analytics.figures import KEYS
from coatcheck.cli.commands import cli

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "analytics.md"
PROOF = re.compile(r"`(tests/[\w/.-]+\.py)::(\w+)`")
INTRO = (
    "Every row below names the tests that prove it; `tests/analytics/test_analytics_docs.py` "
    "fails when a row names none, names a test that does not exist, or when this page says "
    "something outside its tables and code blocks."
)
FIGURES_INTRO = (
    "Matomo's, Plausible's and Umami's definitions. A known week of visits checks each "
    "against values worked out by hand, on SQLite and PostgreSQL."
)


def parts() -> tuple[list[str], list[list[str]], list[str]]:
    rows: list[str] = []
    code: list[list[str]] = []
    prose: list[str] = []
    fence: list[str] | None = None
    for line in DOC.read_text().splitlines():
        if line == "## Dashboard":
            break  # its own section, kept by tests/service/test_admin_docs.py
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


def defined_tests(path: Path) -> set[str]:
    return {
        node.name
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    }


def test_nothing_but_headings_tables_and_code_after_the_opening_lines() -> None:
    _, _, prose = parts()
    assert prose == [INTRO, FIGURES_INTRO]


def test_every_row_names_proofs_that_exist() -> None:
    rows, _, _ = parts()
    body = [r for r in rows if not r.startswith(("| What", "| Key", "|---"))]
    assert len(body) > 20
    missing = []
    for row in body:
        proofs = PROOF.findall(row)
        assert proofs, f"a row names no proof: {row[:80]}"
        for file, name in proofs:
            path = ROOT / file
            if not path.exists() or name not in defined_tests(path):
                missing.append(f"{file}::{name}")
    assert missing == []


def test_the_figure_table_lists_the_summarys_keys_in_order() -> None:
    rows, _, _ = parts()
    listed: list[str] = []
    for row in rows:
        cells = row.split("|")
        if len(cells) == 5 and cells[1].strip().startswith("`"):  # | Key | What | Proved by |
            listed += re.findall(r"`(\w+)`", cells[1])
    assert listed == list(KEYS)


def test_the_command_lines_parse() -> None:
    _, code, _ = parts()
    shell = next(block for block in code if block[0].startswith("coatcheck"))
    for line in shell:
        words = shlex.split(line, comments=True)
        if words[0] != "coatcheck":
            continue
        result = CliRunner().invoke(cli, [*words[1:], "--help"])
        assert result.exit_code == 0, result.output


def test_the_bench_scenario_is_registered() -> None:
    assert SCENARIOS["analytics"] == "bench.analytics_report"
    assert (
        "analytics report over 1,000,000 page views"
        in (ROOT / "docs" / "performance.md").read_text()
    )
