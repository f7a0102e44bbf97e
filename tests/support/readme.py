"""The README's code blocks, as a newcomer copies them: by section heading and language.

Tests run these blocks as pasted, so the README cannot drift from what works.
"""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def section(heading: str, path: Path = README) -> str:
    """The text under ``## heading`` (any level), up to the next heading of that level."""
    text = path.read_text()
    match = re.search(rf"^(#+) {re.escape(heading)}\n", text, re.MULTILINE)
    if match is None:
        raise AssertionError(f"README has no section {heading!r}")
    level = match.group(1)
    rest = text[match.end() :]
    end = re.search(rf"^{level} ", rest, re.MULTILINE)
    return rest[: end.start()] if end else rest


def code_blocks(heading: str, language: str, path: Path = README) -> list[str]:
    """The fenced ``language`` blocks of a section, in order."""
    return [body for lang, body in _FENCE.findall(section(heading, path)) if lang == language]


def expected_output(line: str) -> tuple[str, str | None]:
    """A shell line and the output its ``# → ...`` comment promises (None: no promise)."""
    command, arrow, promise = line.partition("# →")
    if not arrow:
        return line.rstrip(), None
    return command.rstrip(), promise.strip()


def matches(promise: str, output: str) -> bool:
    """Does ``output`` keep ``promise``? ``...`` in a promise stands for anything."""
    pattern = ".*?".join(re.escape(part) for part in promise.split("..."))
    return re.fullmatch(pattern, output.strip(), re.DOTALL) is not None
