"""How the session commands show what they found: a user's sessions as a table, a store's
statistics as lines. Public handles and metadata only, never a credential."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from coatcheck.cli.common import CommandError, printable, utc
from coatcheck.engine.manager import SessionInfo, SessionManager
from coatcheck.stores.base import Countable, Statistics

if TYPE_CHECKING:
    from rich.table import Table


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


def store_stats(manager: SessionManager, *, top: int, soon: float) -> dict[str, Any]:
    """``active`` live sessions, and where the store offers them (``Statistics``),
    ``expiring_soon`` (within ``soon`` seconds) and ``top_users`` as (user id, sessions)."""
    now = manager.clock()
    store = manager.store
    if isinstance(store, Statistics):
        return dict(store.stats_sync(now, top=top, soon=soon))
    if isinstance(store, Countable):
        return {"active": store.count_sync(now)}
    raise CommandError(
        f"this store cannot count its sessions ({type(store).__name__} is not Countable)"
    )


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
