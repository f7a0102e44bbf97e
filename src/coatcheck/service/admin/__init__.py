"""The admin dashboard at ``/admin``: server-rendered pages (Jinja2, inline SVG charts, no
script, no build step) over the service's store and a provider of figures.

May import: everything the service may (it is part of the service layer), Starlette and
Jinja2; never the demo, the testing helpers or the command line.

Signing in: an API key with the ``admin`` scope, typed into ``/admin/signin``, becomes an
admin session under its own cookie (``auth``). Pages: ``/admin`` (overview),
``/admin/users?q=<user id>`` (a user's sessions and devices, with revoke buttons),
``/admin/security`` (security events), ``/admin/consent`` (consent figures). Forms carry
the session's CSRF token; revoking needs the key again once the last authentication is
more than five minutes old.

The provider
------------
``create_admin(service, data)`` takes any object with the three async methods of
``DashboardData`` (``data``); each may return None for "not configured", which the page
shows as an empty state. ``LocalData`` (the default) has the security events of this
process and nothing else. The shapes, exactly:

``summary(since, until, route=None) -> dict | None``: the document of ``coatcheck
analytics report --json`` for ``[since, until)`` (epoch seconds). The dashboard reads::

    visits, visitors, active_now          int
    bounce_rate, login_share              float, 0 to 1
    pages_per_visit                       float
    duration_p50, duration_p90            float seconds
    time_to_login_p50                     float seconds or None
    top_pages      [{"route": "/products/{id}", "views": 12}, ...]
    entry_pages    [{"route": "/", "visits": 9}, ...]
    exit_pages     [{"route": "/cart", "visits": 4}, ...]
    transitions    [{"from": "/", "to": "/cart", "count": 5}, ...]
    end_reasons    {"logout": 3, "idle_expired": 7, ...}
    browsers       {"Firefox": 4, "Chrome": 6, ...}
    os             {"Linux": 2, "Android": 3, ...}
    devices        {"desktop": 5, "mobile": 4, "tablet": 1, ...}
    events         {"checkout.started": 2, ...}
    series         {"hour": [{"start": <epoch>, "visits": 3, "active": 2}, ...],
                    "day":  [{"start": <epoch>, "visits": 30, "visitors": 12}, ...]}
    duration_histogram  (optional, not a key of the report)
                   [{"upto": 10, "visits": 4}, {"upto": 60, "visits": 7},
                    {"upto": None, "visits": 2}]

Any list of rows may instead be a mapping ``{label: count}`` and any mapping a list of
rows (``figures.pairs`` reads both, with the label under ``route``, ``name``, ``label``,
``reason`` or ``from``/``to`` and the count under ``views``, ``visits``, ``count``,
``sessions`` or ``value``). A missing or malformed key empties its chart only.
"Active sessions per hour" draws ``series.hour[*].active``; "Visits per day"
``series.day[*].visits``.

``security_events(limit) -> list[SessionEvent]``: newest first, at most ``limit``, of the
names in ``data.SECURITY_EVENTS`` (``session.theft_suspected``,
``session.limit_reached``, ``session.client_changed``), as the engine emits them.

``consent(since, until) -> dict | None``::

    sessions      int, sessions the shares are of
    categories    {"analytics": 0.42, "marketing": 0.1, ...}   share granted, 0 to 1
    gpc_share     float, 0 to 1: share of sessions that sent Sec-GPC: 1

To wire the analytics summary: a class whose ``summary`` calls
``coatcheck.analytics.summary(store, since, until, route)`` (in a worker thread if it
is synchronous), whose ``security_events`` reads the analytics store (or keeps
``RecentEvents``) and whose ``consent`` reads the ledger, passed as
``service.app.create_app(..., dashboard=...)``.
"""

from coatcheck.service.admin.app import AdminPaths, create_admin, is_admin_path
from coatcheck.service.admin.data import SECURITY_EVENTS, DashboardData, LocalData, RecentEvents

__all__ = [
    "SECURITY_EVENTS",
    "AdminPaths",
    "DashboardData",
    "LocalData",
    "RecentEvents",
    "create_admin",
    "is_admin_path",
]
