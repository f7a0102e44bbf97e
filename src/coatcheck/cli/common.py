"""What every ``coatcheck`` command shares: the store option's defaults, a manager over a
store URL with the operator's errors turned into one line, and safe printing (passwords
redacted, control characters from client-supplied values replaced)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from coatcheck.core.config import SessionConfig
from coatcheck.engine.manager import SessionManager
from coatcheck.errors import StoreUnavailable
from coatcheck.stores import from_url

if TYPE_CHECKING:
    from rich.console import Console

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


_URL_PASSWORD = re.compile(r"(://[^:/@\s]*:)[^@\s]*@")


def masked(text: str) -> str:
    """``text`` with the password of any URL in it replaced (``redis://:***@host``): for
    messages that quote a URL the command was not given as such."""
    return _URL_PASSWORD.sub(r"\1***@", text)


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
