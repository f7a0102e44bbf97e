"""The Click layer of ``coatcheck``: it parses options and hands plain values to the
functions of ``common``, ``report`` and ``demo``; an error the operator can fix becomes one
line and exit code 1. Importing this module needs click and rich (the ``cli`` extra).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
import rich  # noqa: F401  (a missing rich fails at import, not mid-command)

from coatcheck.cli.common import (
    DEFAULT_STORE,
    STORE_ENV,
    CommandError,
    make_console,
    managed,
    plural,
    printable,
)
from coatcheck.cli.demo import run_demo
from coatcheck.cli.report import sessions_table, stats_lines, store_stats

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


@click.group(help="Server-side sessions: the demo shop and store maintenance.")
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


@cli.command(help="Delete expired sessions, in batches.")
@store_option
def purge(store_url: str) -> None:
    with reported(), managed(store_url) as manager:
        count = manager.purge_expired_sync()
    make_console().print(f"Purged {plural(count, 'expired session')}.")


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
