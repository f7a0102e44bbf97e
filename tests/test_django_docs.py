"""README.md's Django section lists the tests of Django's own session suite that fail by
design, each with its reason. Here that list is read back and compared with the table the
suite runs by (``tests/django_contract/harness.py``), so neither can change alone."""

from __future__ import annotations

import re
from pathlib import Path

from tests.django_contract import harness, sdist

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BEGIN = "<!-- django-accepted:begin"
END = "<!-- django-accepted:end -->"
ITEM = re.compile(r"- `(?P<name>[\w.]+)`: (?P<reason>.+)\.")


def documented() -> dict[str, str]:
    """The list between the markers: ``- `name`: reason.`` items, each wrapped over
    lines indented by two spaces."""
    text = README.read_text()
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    block = text.split(BEGIN, 1)[1].split("\n", 1)[1].split(END, 1)[0]
    listed: dict[str, str] = {}
    for item in re.split(r"\n(?=- )", block.strip()):
        joined = " ".join(line.strip() for line in item.splitlines())
        match = ITEM.fullmatch(joined)
        assert match is not None, f"not a `- `name`: reason.` item: {item!r}"
        assert match["name"] not in listed, f"listed twice: {match['name']}"
        listed[match["name"]] = match["reason"]
    return listed


def test_the_documented_accepted_failures_are_the_table() -> None:
    assert documented() == harness.ACCEPTED


def test_the_readme_claims_about_the_suite_hold() -> None:
    """ "All pass except these", on the stores and the Django release it names."""
    assert harness.KNOWN_BROKEN == {}, "a known bug would make 'all pass except' false"
    section = README.read_text().split(BEGIN, 1)[0].rsplit("Django's own session tests", 1)[1]
    assert f"Django {sdist.SUPPORTED[0]}.{sdist.SUPPORTED[1]}" in section
    assert set(harness.STORES) == {"memory", "sqlite", "redis", "postgres", "memcached"}
    assert "(memory, SQLite, Redis, PostgreSQL, Memcached)" in " ".join(section.split())


def test_tests_named_in_the_reasons_exist() -> None:
    from tests.test_security_docs import defined_tests

    named = [
        ref for reason in harness.ACCEPTED.values() for ref in re.findall(r"tests/\S+", reason)
    ]
    assert named, "the model-reading test names where the rest of it is checked"
    for ref in named:
        file, _, name = ref.partition("::")
        assert name in defined_tests(ROOT / file), ref
