"""``coatcheck analytics report`` and ``coatcheck analytics purge`` over a real SQLite
analytics file holding the known week of ``test_figures``; the service's default
analytics store beside its session store."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from coatcheck.analytics.figures import KEYS
from coatcheck.analytics.sqlite_store import SQLiteAnalytics
from coatcheck.cli.commands import cli
from coatcheck.service.settings import ServiceSettings, default_analytics_url
from tests.analytics.test_figures import WEEK

JSON_KEYS = [
    "visits",
    "visitors",
    "active_now",
    "bounce_rate",
    "pages_per_visit",
    "duration_p50",
    "duration_p90",
    "top_pages",
    "entry_pages",
    "exit_pages",
    "transitions",
    "login_share",
    "time_to_login_p50",
    "end_reasons",
    "browsers",
    "os",
    "devices",
    "events",
    "series",
]
"""The stable keys, as the issue and docs/analytics.md name them."""


def seeded(tmp_path: Path) -> str:
    store = SQLiteAnalytics(str(tmp_path / "sessions-analytics.db"))
    store.write_batch(WEEK)
    store.close()
    return f"sqlite:///{tmp_path}/sessions-analytics.db"


def test_report_json_has_the_stable_keys_and_the_weeks_figures(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    args = ["analytics", "report", "--since", "2026-03-02", "--until", "2026-03-09", "--json"]
    result = CliRunner().invoke(cli, [*args, "--analytics", url])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert list(doc) == JSON_KEYS == list(KEYS)
    assert doc["visits"] == 6
    assert doc["bounce_rate"] == 0.3333
    route = CliRunner().invoke(cli, [*args, "--analytics", url, "--route", "/about"])
    assert json.loads(route.output)["visits"] == 2


def test_report_finds_the_store_beside_the_session_store_and_prints_tables(tmp_path: Path) -> None:
    seeded(tmp_path)
    store = f"sqlite:///{tmp_path}/sessions.db"
    args = ["analytics", "report", "--since", "2026-03-02", "--until", "2026-03-09"]
    result = CliRunner().invoke(cli, [*args, "--store", store], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    for title in ("Visits", "Top pages", "Transitions", "How sessions end", "Custom events"):
        assert title in result.output
    assert "33.3%" in result.output  # the bounce rate


def test_a_bad_range_is_one_line_and_exit_code_1(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    result = CliRunner().invoke(cli, ["analytics", "report", "--since", "soon", "--analytics", url])
    assert result.exit_code == 1
    assert "is not a span" in result.output
    assert "Traceback" not in result.output


def test_purge_deletes_rows_older_than_the_span(tmp_path: Path) -> None:
    url = seeded(tmp_path)
    # every row of the week is from March 2026; a cutoff of 0 days ago takes them all
    result = CliRunner().invoke(
        cli, ["analytics", "purge", "--older-than", "0d", "--analytics", url]
    )
    assert result.exit_code == 0, result.output
    assert f"Purged {len(WEEK)} analytics rows." in result.output


def test_serve_records_beside_its_sqlite_store_unless_switched_off() -> None:
    env = {"COATCHECK_STORE": "sqlite:////var/lib/app/sessions.db"}
    settings = ServiceSettings.from_env(env)
    assert settings.analytics_url == "sqlite:////var/lib/app/sessions-analytics.db"
    assert ServiceSettings.from_env({**env, "COATCHECK_ANALYTICS_URL": "off"}).analytics_url is None
    chosen = ServiceSettings.from_env({**env, "COATCHECK_ANALYTICS_URL": "postgresql://db/a"})
    assert chosen.analytics_url == "postgresql://db/a"
    assert default_analytics_url("redis://localhost/0") == "sqlite:///coatcheck-analytics.db"
    assert ServiceSettings().analytics_url is None  # built in code: off unless named
