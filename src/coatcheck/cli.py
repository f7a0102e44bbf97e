"""The ``coatcheck`` command: run the demo shop, purge expired sessions, list and revoke a
user's sessions, show a store's statistics.

click and rich come with the ``cli`` extra, so they are imported only when ``main`` runs:
without them the command ends with a one-line hint instead of a traceback, and
``import coatcheck`` never needs them. The work itself lives in small functions that take
plain values; the Click layer only parses options and turns the errors an operator can fix
(a bad store URL, an unreachable store, a bad ``COATCHECK_*`` setting) into one line and
exit code 1.
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from coatcheck import __version__
from coatcheck.core.config import SessionConfig
from coatcheck.engine.manager import SessionInfo, SessionManager
from coatcheck.errors import StoreUnavailable
from coatcheck.stores import from_url

if TYPE_CHECKING:
    import click
    from rich.console import Console
    from rich.table import Table

STORE_ENV = "COATCHECK_STORE"
DEFAULT_STORE = "sqlite:///coatcheck.db"
CLI_HINT = "coatcheck: the command line needs click and rich: pip install 'coatcheck[cli]'"

PIPE_WIDTH = 200
PROBE_KEY = "0" * 64
"""A storage key no token hashes to in practice: reading it checks the store is reachable."""


class CommandError(Exception):
    """A failure the operator can fix; shown as one line, exit code 1."""


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@contextmanager
def managed(store_url: str) -> Iterator[SessionManager]:
    """A SessionManager over the store ``store_url`` names, configured from the environment.

    Errors an operator can fix become CommandError; the store is closed afterwards.
    """
    try:
        config = SessionConfig.from_env()
        store = from_url(store_url)
    except ImportError as exc:
        raise CommandError(
            f"the store {redacted(store_url)!r} needs the Python package {exc.name!r}: install the "
            "coatcheck extra for this store"
        ) from None
    except ValueError as exc:  # unknown scheme, malformed URL, bad COATCHECK_* setting
        raise CommandError(redacted(store_url, one_line(exc))) from None
    try:
        yield SessionManager(store, config)
    except StoreUnavailable as exc:
        raise CommandError(f"store unavailable: {redacted(store_url, one_line(exc))}") from None
    finally:
        with suppress(StoreUnavailable):
            store.close_sync()


# -- what the commands do ------------------------------------------------------------------
def printable(value: str | None) -> str:
    """A stored value made safe for a terminal: user agents come from clients, and an
    escape sequence in one must not reach the operator's terminal."""
    if not value:
        return "-"
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in value)


def password_of(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None


def redacted(url: str, text: str | None = None) -> str:
    """``text`` (the URL itself by default) with the URL's password replaced, fit to print
    on a shared screen or into a log: error messages of stores may quote their URL."""
    text = url if text is None else text
    password = password_of(url)
    return text.replace(password, "***") if password else text


def utc(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def sessions_table(sessions: Sequence[SessionInfo]) -> Table:
    """A user's sessions as a Rich table: public handles and metadata, never a credential."""
    from rich.table import Table
    from rich.text import Text

    table = Table()
    table.add_column("handle", no_wrap=True)
    for name in ("created (UTC)", "last seen (UTC)", "expires (UTC)"):
        table.add_column(name)
    table.add_column("user agent", overflow="fold")
    table.add_column("ip", no_wrap=True)
    for info in sessions:
        table.add_row(
            Text(info.handle),
            utc(info.created_at),
            utc(info.last_seen_at),
            utc(info.expires_at),
            Text(printable(info.user_agent)),
            Text(printable(info.ip)),
        )
    return table


def is_loopback(host: str) -> bool:
    """True for hosts where browsers accept Secure cookies over plain HTTP."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_console() -> Console:
    """A Rich console; when output goes to a pipe or file, wide enough that each session
    stays on one line for grep and scripts (a terminal keeps its own width)."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal and console.width < PIPE_WIDTH:
        console = Console(width=PIPE_WIDTH)
    return console


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def store_stats(manager: SessionManager, *, top: int, soon: float) -> dict[str, Any]:
    """``active`` live sessions, and where the store offers them (a ``stats_sync`` method),
    ``expiring_soon`` (within ``soon`` seconds) and ``top_users`` as (user id, sessions)."""
    now = manager.clock()
    store = manager.store
    gather = getattr(store, "stats_sync", None)
    if gather is not None:
        return dict(gather(now, top=top, soon=soon))
    try:
        return {"active": store.count_sync(now)}
    except NotImplementedError:
        raise CommandError("this store cannot count its sessions") from None


def stats_lines(stats: dict[str, Any], soon: float) -> list[str]:
    lines = [f"Active sessions: {stats['active']}"]
    if "expiring_soon" in stats:
        lines.append(f"Expiring within {soon:g} s: {stats['expiring_soon']}")
    if "top_users" in stats:
        lines.append("Sessions per user (top):" if stats["top_users"] else "No logged-in users.")
        lines += [f"  {printable(user)}  {count}" for user, count in stats["top_users"]]
    if len(lines) == 1:
        lines.append("(this store counts sessions only)")
    return lines


def run_demo(host: str, port: int, store_url: str, console: Console) -> None:
    """Serve the demo shop with uvicorn until interrupted."""
    try:
        import uvicorn

        from coatcheck.demo import create_app
        from coatcheck.integrations.asgi import SessionMiddleware
    except ImportError as exc:
        raise CommandError(f"the demo needs {exc.name!r}: pip install 'coatcheck[demo]'") from None
    with managed(store_url) as manager:
        manager.store.get_sync(PROBE_KEY)  # an unreachable store fails here, not per request
        app = SessionMiddleware(create_app(manager), manager=manager)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/"
        console.print(f"[bold]coatcheck demo shop[/bold] on [link={url}]{url}[/link]")
        console.print(f"store: {printable(redacted(store_url))}", markup=False)
        if manager.config.secure and not is_loopback(host):
            console.print(
                "[yellow]note:[/yellow] browsers keep Secure cookies over plain HTTP only on "
                "localhost and 127.0.0.1; elsewhere, serve the demo behind HTTPS."
            )
        uvicorn.run(app, host=host, port=port, log_level="info")


# -- the Click layer -------------------------------------------------------------------------
def build_cli() -> click.Group:
    """The Click group behind ``coatcheck`` (raises ImportError without the cli extra)."""
    import click
    import rich  # noqa: F401  (imported here so a missing rich fails now, not mid-command)

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
    @click.version_option(__version__, prog_name="coatcheck")
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

    return cli


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``coatcheck`` script."""
    try:
        cli = build_cli()
    except ImportError:
        print(CLI_HINT, file=sys.stderr)
        raise SystemExit(1) from None
    cli.main(args=list(args) if args is not None else None, prog_name="coatcheck")


if __name__ == "__main__":
    main()
