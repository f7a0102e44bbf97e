"""The ``coatcheck`` command: run the demo shop, purge expired sessions, list and revoke a
user's sessions, show a store's statistics.

click and rich come with the ``cli`` extra, so they are imported only when ``main`` runs:
without them the command ends with a one-line hint instead of a traceback, and
``import coatcheck`` never needs them. The work itself lives in small functions that take
plain values (``common``, ``report``, ``demo``); ``commands`` is the Click layer.

The top layer: may import every layer below it; nothing imports it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click

CLI_HINT = "coatcheck: the command line needs click and rich: pip install 'coatcheck[cli]'"


def build_cli() -> click.Group:
    """The Click group behind ``coatcheck`` (raises ImportError without the cli extra)."""
    from coatcheck.cli.commands import cli

    return cli


def main(args: Sequence[str] | None = None) -> None:
    """Entry point of the ``coatcheck`` script."""
    try:
        cli = build_cli()
    except ImportError:
        print(CLI_HINT, file=sys.stderr)
        raise SystemExit(1) from None
    cli.main(args=list(args) if args is not None else None, prog_name="coatcheck")
