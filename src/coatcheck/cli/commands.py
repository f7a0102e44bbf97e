"""The Click layer of ``coatcheck``: it parses options and hands plain values to the
functions of ``common``, ``report`` and ``demo``; an error the operator can fix becomes one
line and exit code 1. Importing this module needs click and rich (the ``cli`` extra).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import rich  # noqa: F401  (a missing rich fails at import, not mid-command)

from coatcheck.cli.analytics import purge_analytics, report, report_tables
from coatcheck.cli.common import (
    DEFAULT_STORE,
    STORE_ENV,
    CommandError,
    make_console,
    managed,
    masked,
    one_line,
    plural,
    printable,
)
from coatcheck.cli.demo import run_demo
from coatcheck.cli.privacy import erase_user, export_document, purge_retained
from coatcheck.cli.rekey import DEFAULT_CURSOR_FILE, run_rekey
from coatcheck.cli.report import keys_table, ring_table, sessions_table, stats_lines, store_stats
from coatcheck.cli.serve import (
    create_key,
    jwt_keys,
    list_keys,
    revoke_key,
    rotate_jwt_key,
    run_serve,
)
from coatcheck.errors import CoatcheckError

store_option = click.option(
    "--store",
    "store_url",
    envvar=STORE_ENV,
    default=DEFAULT_STORE,
    show_default=True,
    show_envvar=True,
    help="Store URL, e.g. sqlite:///coatcheck.db or redis://localhost:6379/0.",
)


@contextmanager
def reported() -> Iterator[None]:
    try:
        yield
    except CommandError as exc:
        raise click.ClickException(str(exc)) from None


class Commands(click.Group):
    """The command group, where whatever a command raises becomes one ``Error:`` line
    and exit code 1, never a traceback: the library's refusals (a user id that names no
    one, a store without the capability a command needs) in their own words, anything
    else named as the bug it is. Passwords in URLs quoted by a message are masked."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except (CommandError, CoatcheckError) as exc:
            raise click.ClickException(masked(one_line(exc))) from None
        except Exception as exc:
            message = f"unexpected {type(exc).__name__}: {one_line(exc)} (a bug in coatcheck)"
            raise click.ClickException(masked(message)) from None


@click.group(
    cls=Commands,
    help="Server-side sessions: the session service, the demo shop, store maintenance.",
)
@click.version_option(package_name="coatcheck", prog_name="coatcheck")
def cli() -> None:
    pass


@cli.command(help="Run the demo shop (needs the demo extra).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@store_option
def demo(host: str, port: int, store_url: str) -> None:
    with reported():
        run_demo(host, port, store_url, make_console())


@cli.command(help="Delete expired sessions, and rows past their retention period, in batches.")
@store_option
def purge(store_url: str) -> None:
    with reported(), managed(store_url) as manager:
        count = manager.purge_expired_sync()
        retained = purge_retained(manager, store_url)
    console = make_console()
    console.print(f"Purged {plural(count, 'expired session')}.")
    for name, rows in retained.items():
        console.print(f"Purged {plural(rows, 'row')} of {name} past its retention period.")


@cli.command(help="Re-seal every stored session under the newest key of COATCHECK_DATA_KEYS.")
@click.option("--batch", default=500, show_default=True, type=click.IntRange(1, 100_000))
@click.option(
    "--cursor-file",
    default=DEFAULT_CURSOR_FILE,
    show_default=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the resumable cursor is kept between batches (deleted when done).",
)
@store_option
def rekey(batch: int, cursor_file: Path, store_url: str) -> None:
    with reported(), managed(store_url) as manager:
        run_rekey(manager.store, batch, cursor_file)


@cli.group(help="A user's rights over their data: export (GDPR Art. 15, 20), erase (Art. 17).")
def privacy() -> None:
    pass


@privacy.command(help="Print, as one JSON document, everything coatcheck holds about a user.")
@click.option("--user", "user_id", required=True, help="User id.")
@store_option
def export(user_id: str, store_url: str) -> None:
    with reported():
        document = export_document(store_url, user_id)
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


@privacy.command(help="End a user's sessions and delete what coatcheck holds about them.")
@click.option("--user", "user_id", required=True, help="User id.")
@click.option("--yes", is_flag=True, help="Confirm: this cannot be undone.")
@store_option
def erase(user_id: str, yes: bool, store_url: str) -> None:
    if not yes:
        raise click.UsageError("erase cannot be undone: add --yes to confirm")
    with reported():
        erasure = erase_user(store_url, user_id)
    removed = ", ".join(f"{name} {count}" for name, count in erasure.removed.items())
    make_console().print(
        f"Erased user {printable(user_id)} ({removed}); tombstone of {erasure.erased_on} kept.",
        markup=False,
    )


@cli.command(help="Show live sessions, those expiring soon, and the users with the most.")
@click.option("--top", default=10, show_default=True, type=click.IntRange(1, 10_000))
@click.option(
    "--soon",
    default=300,
    show_default=True,
    type=click.IntRange(1),
    help="Seconds that count as expiring soon.",
)
@store_option
def stats(top: int, soon: int, store_url: str) -> None:
    with reported(), managed(store_url) as manager:
        numbers = store_stats(manager, top=top, soon=soon)
    console = make_console()
    for line in stats_lines(numbers, soon):
        console.print(line, markup=False)


@cli.group(help="List and revoke a user's sessions.")
def sessions() -> None:
    pass


@sessions.command("list", help="Show a user's live sessions (never a token).")
@click.option("--user", "user_id", required=True, help="User id.")
@store_option
def list_(user_id: str, store_url: str) -> None:
    with reported(), managed(store_url) as manager:
        infos = manager.list_user_sessions_sync(user_id)
    console = make_console()
    if not infos:
        console.print(f"No live sessions for user {printable(user_id)}.", markup=False)
        return
    heading = f"{plural(len(infos), 'live session')} of user {printable(user_id)}:"
    console.print(heading, markup=False)
    console.print(sessions_table(infos))


@sessions.command(help="End all of a user's sessions (--user) or one session (--handle).")
@click.option("--user", "user_id", help="End every session of this user.")
@click.option("--except", "except_handle", help="With --user: keep this session.")
@click.option("--handle", help="End the session with this public handle.")
@store_option
def revoke(
    user_id: str | None, except_handle: str | None, handle: str | None, store_url: str
) -> None:
    if (user_id is None) == (handle is None):
        raise click.UsageError("give exactly one of --user and --handle")
    if except_handle is not None and user_id is None:
        raise click.UsageError("--except only goes with --user")
    with reported(), managed(store_url) as manager:
        if user_id is not None:
            count = manager.revoke_user_sync(user_id, except_handle=except_handle)
            message = f"Revoked {plural(count, 'session')} of user {printable(user_id)}."
        else:
            assert handle is not None
            count = 1 if manager.revoke_sync(handle) else 0
            message = f"Revoked {plural(count, 'session')} (handle {printable(handle)})."
    make_console().print(message, markup=False)


@cli.command(help="Run the session service: the /v1 API, forward-auth, the demo shop at /.")
@click.option(
    "--host", envvar="COATCHECK_HOST", default="127.0.0.1", show_default=True, show_envvar=True
)
@click.option(
    "--port",
    envvar="COATCHECK_PORT",
    default=8000,
    show_default=True,
    show_envvar=True,
    type=click.IntRange(0, 65535),
)
@click.option(
    "--workers",
    envvar="COATCHECK_WORKERS",
    default=1,
    show_default=True,
    show_envvar=True,
    type=click.IntRange(1, 256),
    help="Worker processes.",
)
@store_option
def serve(host: str, port: int, workers: int, store_url: str) -> None:
    with reported():
        run_serve(host, port, workers, store_url, make_console())


@cli.group("api-keys", help="The API keys that may call the service.")
def api_keys() -> None:
    pass


@api_keys.command("create", help="Create a key; prints only the key, which is shown once.")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(["introspect", "sessions", "admin"]),
    help="introspect, sessions or admin (repeatable).",
)
@store_option
def api_keys_create(name: str, scopes: tuple[str, ...], store_url: str) -> None:
    with reported():
        key = create_key(store_url, name, scopes)
    click.echo(key)


@api_keys.command("list", help="Names, scopes, created and last-used times; never a key.")
@store_option
def api_keys_list(store_url: str) -> None:
    with reported():
        keys = list_keys(store_url)
    console = make_console()
    if not keys:
        console.print("No API keys.")
        return
    console.print(keys_table(keys))


@api_keys.command("revoke", help="Revoke the key NAME.")
@click.argument("name")
@store_option
def api_keys_revoke(name: str, store_url: str) -> None:
    with reported():
        revoke_key(store_url, name)
    make_console().print(f"Revoked API key {printable(name)}.", markup=False)


@cli.group("jwt-keys", help="The key ring that signs the service's JWTs.")
def jwt_keys_group() -> None:
    pass


@jwt_keys_group.command("rotate", help="Sign with a new key; the old one stays in the JWKS.")
@click.option(
    "--algorithm",
    type=click.Choice(["EdDSA", "ES256"]),
    default="EdDSA",
    show_default=True,
)
@store_option
def jwt_keys_rotate(algorithm: str, store_url: str) -> None:
    with reported():
        key = rotate_jwt_key(store_url, algorithm)
    click.echo(key.kid)


@jwt_keys_group.command("list", help="The ring's keys: kid, algorithm, times.")
@store_option
def jwt_keys_list(store_url: str) -> None:
    with reported():
        keys, now = jwt_keys(store_url)
    console = make_console()
    if not keys:
        console.print("No JWT signing keys yet (serve creates the first).")
        return
    console.print(ring_table(keys, now))


analytics_option = click.option(
    "--analytics",
    "analytics_url",
    envvar="COATCHECK_ANALYTICS_URL",
    default=None,
    show_envvar=True,
    help="Analytics store URL (default: the SQLite file beside --store, as serve uses).",
)


def _analytics_url(analytics_url: str | None, store_url: str) -> str:
    from coatcheck.analytics.setup import OFF
    from coatcheck.service.settings import default_analytics_url

    if analytics_url is None or analytics_url.strip().lower() in OFF:
        return default_analytics_url(store_url)
    return analytics_url


@cli.group(help="Session analytics: the report and the retention purge.")
def analytics() -> None:
    pass


@analytics.command("report", help="Visits, pages, logins and how sessions end, over a range.")
@click.option("--since", default="7d", show_default=True, help="A span (7d, 24h) or a date.")
@click.option("--until", default=None, help="A span or a date (default: now).")
@click.option("--route", default=None, help="Only the visits that viewed this route.")
@click.option("--json", "as_json", is_flag=True, help="One JSON document instead of tables.")
@analytics_option
@store_option
def analytics_report(
    since: str,
    until: str | None,
    route: str | None,
    as_json: bool,
    analytics_url: str | None,
    store_url: str,
) -> None:
    with reported():
        doc = report(_analytics_url(analytics_url, store_url), since, until, route)
    if as_json:
        import json

        click.echo(json.dumps(doc, indent=2))
        return
    console = make_console()
    for table in report_tables(doc):
        console.print(table)


@analytics.command("purge", help="Delete analytics rows older than a span (13 months default).")
@click.option("--older-than", default="396d", show_default=True, help="A span: 396d, 52w.")
@click.option("--batch", default=10_000, show_default=True, type=click.IntRange(1, 1_000_000))
@analytics_option
@store_option
def analytics_purge(older_than: str, batch: int, analytics_url: str | None, store_url: str) -> None:
    with reported():
        count = purge_analytics(_analytics_url(analytics_url, store_url), older_than, batch)
    make_console().print(f"Purged {plural(count, 'analytics row')}.")
