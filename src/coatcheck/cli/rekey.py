"""``coatcheck rekey``: re-seal every stored session under the newest data key, in batches,
with a progress bar, resumable.

The cursor is kept in a file (``--cursor-file``, ``coatcheck-rekey.cursor`` in the
working directory by default) after every batch: a JSON object with the newest key's id
and the store's cursor. A run that finds it goes on from there (an interrupted rekey
resumes where it stopped); one whose newest key differs starts over; a finished run
deletes it. The store is never locked: traffic runs meanwhile (``stores.rekey``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from coatcheck.cli.common import CommandError, make_console, plural
from coatcheck.stores.base import Countable
from coatcheck.stores.rekey import Tally, rekey_page, scanner

DEFAULT_CURSOR_FILE = "coatcheck-rekey.cursor"


def _resume(path: Path, kid: str) -> str:
    """The cursor a previous run under the same newest key left, or "" to start."""
    try:
        saved = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return ""
    except (OSError, ValueError) as exc:
        raise CommandError(f"the cursor file {path} is not one rekey wrote ({exc})") from None
    if not isinstance(saved, dict) or saved.get("kid") != kid:
        return ""
    cursor = saved.get("cursor")
    return cursor if isinstance(cursor, str) else ""


def run_rekey(store: object, batch: int, cursor_file: Path) -> Tally:
    """Walk the store from the saved cursor to the end, saving it after each batch."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    encrypted, _ = scanner(store)
    kid = encrypted.sealer.primary_kid()
    cursor: str | None = _resume(cursor_file, kid)
    total = None
    if isinstance(encrypted, Countable):
        total = encrypted.count_sync(time.time())
    tally = Tally()
    console = make_console()
    if cursor:
        console.print(f"Resuming from the cursor in {cursor_file}.")
    columns = (TextColumn("re-sealing"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("rekey", total=total)
        while cursor is not None:
            cursor = rekey_page(store, cursor, batch, tally)
            if cursor is not None:
                cursor_file.write_text(json.dumps({"kid": kid, "cursor": cursor}), "utf-8")
            progress.update(task, completed=tally.seen)
    cursor_file.unlink(missing_ok=True)
    console.print(
        f"Re-sealed {plural(tally.resealed, 'session')} under key {kid!r}; "
        f"{tally.current} already were, {tally.gone} ended meanwhile."
    )
    if tally.unreadable:
        console.print(
            f"{plural(tally.unreadable, 'session')} did not open with the data keys and "
            "were left as they are (they load as no session)."
        )
    return tally


__all__ = ["DEFAULT_CURSOR_FILE", "run_rekey"]
