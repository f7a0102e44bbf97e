"""docs/privacy.md is kept by tests: each section names the tests that prove it and they
exist; its legal anchors are there; its tables are the code's own (holders, retention
periods and their defaults, settings, table names); its export example has the shape of a
real export; the operator's section names commands and tables that exist."""

from __future__ import annotations

import ast
import asyncio
import json
import re
from pathlib import Path

import click

from coatcheck.cli import build_cli
from coatcheck.core.config import SessionConfig
from coatcheck.privacy import settings as privacy_settings
from coatcheck.privacy.activity import ActivityLog
from coatcheck.privacy.database import database_from_url
from coatcheck.privacy.registry import PrivacyRegistry
from coatcheck.privacy.settings import DAY, PrivacySettings, RetentionPeriods
from coatcheck.privacy.tombstones import Tombstones
from coatcheck.service.holders import declared_holders
from tests.support.privacy import SECRET, world
from tests.support.user_agents import FIREFOX_LINUX, KEPT

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "privacy.md"
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")
OURS = (
    "Holders of personal data",
    "Access and portability",
    "Erasure",
    "Retention",
    "Where the privacy tables live",
    "What stays the operator's job",
)


def sections() -> dict[str, str]:
    parts = re.split(r"^## ", DOC.read_text(), flags=re.MULTILINE)[1:]
    return {part.splitlines()[0].strip(): part for part in parts}


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def table(section: str) -> list[list[str]]:
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[1:]]


def test_every_section_names_proofs_that_exist() -> None:
    found = sections()
    assert set(OURS) <= set(found)
    missing = []
    for title in OURS:
        assert "Proof:" in found[title], f"section {title!r} names no proof"
        for file, name in TEST_ID.findall(found[title]):
            path = ROOT / file
            if not path.exists() or name not in defined_tests(path):
                missing.append(f"{file}::{name}")
    assert missing == []


def test_each_right_stands_beside_its_legal_anchor() -> None:
    found = sections()
    assert "Art. 15" in found["Access and portability"]
    assert "Art. 20" in found["Access and portability"]
    assert "Art. 17" in found["Erasure"] and "Art. 32" in found["Erasure"]
    assert "Art. 5(1)(e)" in found["Retention"]


def test_the_holders_table_names_declared_holders() -> None:
    rows = table(sections()["Holders of personal data"])
    names = {row[0].strip("`") for row in rows}
    assert names == {"sessions", "consent", "page_views", "activity"}
    assert names == set(declared_holders())


def test_the_settings_tables_are_what_the_code_reads() -> None:
    found = sections()
    periods = RetentionPeriods()
    rows = table(found["Retention"])
    assert [row[0].strip("`") for row in rows] == list(RetentionPeriods.names())
    for name, default, setting, _ in rows:
        days = int(default.split()[0])
        assert getattr(periods, name.strip("`")) == days * DAY
        assert setting == f"`COATCHECK_RETENTION_{name.strip('`').upper()}`"
        read = PrivacySettings.from_env({setting.strip("`"): "3"}).retention
        assert getattr(read, name.strip("`")) == 3 * DAY
    assert "COATCHECK_PURGE_BATCH_SIZE" in found["Retention"]
    assert "purge_batch_size" in SessionConfig.__dataclass_fields__
    assert "`COATCHECK_RETENTION_INTERVAL` seconds (3600 by default" in found["Retention"]
    assert PrivacySettings().retention_interval == 3600
    where = table(found["Where the privacy tables live"])
    assert [row[0].strip("`") for row in where] == [
        privacy_settings.PRIVACY_DB_ENV,
        privacy_settings.TOMBSTONE_SECRET_ENV,
        privacy_settings.ACTIVITY_LOG_ENV,
    ]
    assert PrivacySettings().activity_log is True
    assert PrivacySettings().tombstone_secret is None


def test_the_table_names_are_those_the_docs_give(tmp_path: Path) -> None:
    sqlite = database_from_url(f"sqlite:///{tmp_path / 'x.db'}")
    assert ActivityLog(sqlite).table == "coatcheck_activity"
    assert Tombstones(sqlite, SECRET).table == "coatcheck_tombstones"
    beside = database_from_url("postgresql://db.example/app?table=app_sessions&pool_max=4")
    assert (ActivityLog(beside).table, Tombstones(beside, None).table) == (
        "app_sessions_activity",
        "app_sessions_tombstones",
    )
    assert "table=app_sessions`, `app_sessions_activity` and `app_sessions_tombstones`" in (
        sections()["Where the privacy tables live"].replace("\n", " ")
    )
    sqlite.close()


def test_the_export_example_has_the_shape_of_a_real_export(tmp_path: Path) -> None:
    text = sections()["Access and portability"]
    block = re.search(r"```json\n(.*?)```", text, re.DOTALL)
    assert block is not None
    example = json.loads(block.group(1))
    with world("sqlite", tmp_path) as w:
        w.log_in("alice", FIREFOX_LINUX, "203.0.113.9", grant=("analytics",), note="x")
        real = asyncio.run(w.registry.export("alice"))
    assert set(example) == set(real)
    assert set(example["holders"]) == set(real["holders"])
    event = example["holders"]["activity"]["events"][0]
    row = example["holders"]["consent"]["rows"][0]
    session = example["holders"]["sessions"]["sessions"][0]
    real_event = real["holders"]["activity"]["events"][0]
    [real_row] = real["holders"]["consent"]["rows"]
    real_session = real["holders"]["sessions"]["sessions"][0]
    assert set(event) == set(real_event)
    assert set(row) == set(real_row)
    assert set(session) - {"…"} <= set(real_session)
    # The values the example shows are what that login leaves (handles aside).
    for shown, kept in ((event, real_event), (row, real_row), (session, real_session)):
        for key in shown.keys() - {"handle", "…", "data"}:
            assert shown[key] == kept[key], key
    assert event["user_agent"] == KEPT[FIREFOX_LINUX]


def test_the_operator_section_names_the_commands_that_exist() -> None:
    text = sections()["What stays the operator's job"]
    assert "VACUUM (FULL) coatcheck_activity" in text
    assert "is_erased" in text and callable(PrivacyRegistry.is_erased)
    cli = build_cli()
    assert "purge" in cli.commands
    privacy = cli.commands["privacy"]
    assert isinstance(privacy, click.Group) and {"export", "erase"} <= set(privacy.commands)
    assert "COATCHECK_TOMBSTONE_SECRET" in text
    assert "Art. 12" in text
