"""Django records page views under its resolver's route (``products/<int:id>/``), through
coatcheck's SessionMiddleware and Django's own test client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.http import HttpRequest, HttpResponse
from django.urls import path

from coatcheck.analytics.setup import Analytics
from coatcheck.analytics.sqlite_store import SQLiteAnalytics
from coatcheck.engine.manager import SessionManager
from coatcheck.integrations.django import configure
from coatcheck.stores import MemoryStore
from tests.support import django_settings

AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def product(request: HttpRequest, id: int) -> HttpResponse:
    request.session["seen"] = id
    request.session.core.track("product.viewed")  # type: ignore[attr-defined]
    return HttpResponse("product")


def untouched(request: HttpRequest) -> HttpResponse:
    return HttpResponse("static page")


urlpatterns = [path("products/<int:id>/", product), path("about/", untouched)]


@pytest.fixture
def analytics(tmp_path: Path) -> Iterator[Analytics]:
    from django.test import override_settings

    django_settings.setup()
    manager = SessionManager(MemoryStore())
    recorded = Analytics.build(SQLiteAnalytics(str(tmp_path / "a.db")), gate=lambda s: True)
    recorded.attach(manager)
    configure(manager)
    with override_settings(
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["coatcheck.django.SessionMiddleware"],
    ):
        yield recorded
    configure(None)
    recorded.close()


def test_django_records_the_resolver_route_and_tracked_events(analytics: Analytics) -> None:
    from django.test import Client

    client = Client(HTTP_ACCEPT="text/html", HTTP_USER_AGENT=AGENT)
    assert client.get("/products/3/", secure=True).status_code == 200
    about = client.get("/about/", secure=True)  # the view reads no session
    assert about.status_code == 200
    assert "Cookie" not in about.get("Vary", "")  # recording it did not make it vary
    assert analytics.writer.flush()
    rows = [(r["kind"], r["name"], r["status"], r["previous"]) for r in analytics.store.rows()]
    assert [r for r in rows if r[0] != "lifecycle"] == [
        ("page", "/products/{id}/", 200, None),
        ("event", "product.viewed", None, "/products/{id}/"),
        ("page", "/about/", 200, "/products/{id}/"),
    ]
