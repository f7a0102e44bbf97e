"""The "Dashboard" section of docs/analytics.md is kept by tests: every test it names
exists, its screenshots exist and are PNG images, the paths it lists are the dashboard's
routes, and ``coatcheck serve`` (the real command) serves the dashboard it describes."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from coatcheck.service.admin import app as admin_app
from tests.service.conftest import Running
from tests.support.browser import Browser

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "analytics.md"
TEST_ID = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")
PNG = b"\x89PNG\r\n\x1a\n"


def section() -> str:
    text = DOC.read_text()
    start = text.index("## Dashboard")
    end = text.find("\n## ", start + 1)
    return text[start:] if end == -1 else text[start:end]


def test_every_named_test_exists() -> None:
    named = TEST_ID.findall(section())
    assert len(named) >= 8
    for path, name in named:
        source = (ROOT / path).read_text()
        if name:
            functions = {
                node.name
                for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.FunctionDef)
            }
            assert name in functions, f"{path}::{name}"


def test_the_screenshots_are_embedded_and_exist() -> None:
    images = re.findall(r"!\[[^\]]+\]\((images/[\w.-]+)\)", section())
    assert images == ["images/admin-overview.png", "images/admin-user.png"]
    for image in images:
        assert (DOC.parent / image).read_bytes()[:8] == PNG, image


def test_the_pages_it_lists_are_routes_of_the_dashboard() -> None:
    listed = set(re.findall(r"`(/admin[\w/]*)`", section()))
    routes = {route.path for route in admin_app.ROUTES}
    assert listed == {"/admin", "/admin/users", "/admin/security", "/admin/consent"}
    assert listed <= routes


def test_coatcheck_serve_serves_the_dashboard(running: Running) -> None:
    with Browser(running.url, csrf_path="/admin/signin") as client:
        first = client.get("/admin")
        assert (first.status_code, first.headers["location"]) == (303, "/admin/signin")
        assert client.post("/admin/signin", data={"key": running.admin_key}).status_code == 303
        assert "__Host-coatcheck-admin" in client.cookies
        overview = client.get("/admin")
        assert overview.status_code == 200
        # `coatcheck serve` records analytics by default: the overview reads its summary.
        assert "Analytics not configured" not in overview.text
        assert "Visits per day" in overview.text
        assert "Live sessions in the store" in overview.text
        security = client.get("/admin/security")
        assert "No theft suspected" in security.text
        consent = client.get("/admin/consent").text  # the ledger beside the SQLite store
        assert "Consent ledger not configured" not in consent and "0%" in consent
    assert "dashboard: " in running.server.output()
