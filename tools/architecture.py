"""The layers of ``src/coatcheck`` read from its code: the import graph, the layer of each
module, and the diagram kept in ``docs/architecture.md``.

``python -m tools.architecture`` prints the diagram; ``--check`` exits non-zero when the
copy in the docs no longer matches the code (``tests/test_architecture.py`` runs the same
comparison, so a layer arrow that changes without its diagram fails the build). The graph
is built from the source with ``ast``, so every import counts: module level, inside a
function (a lazy import is still an arrow) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import sys
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "coatcheck"
DOC = ROOT / "docs" / "architecture.md"
BEGIN = "<!-- layers:begin (python -m tools.architecture) -->"
END = "<!-- layers:end -->"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("core",),
    ("security",),
    ("stores",),
    ("engine",),
    ("privacy",),
    ("analytics",),
    ("http",),
    ("integrations",),
    ("demo", "testing", "service"),
    ("cli",),
)
"""Lowest first. A module may import modules of its own layer or of a lower one. The
modules beside these at the package root (``__init__`` and the re-export modules that keep
public paths such as ``coatcheck.asgi`` stable) sit above every layer and no layer may
import them."""

RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name."""
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(
    node: ast.AST, module: str, is_package: bool, known: dict[str, Path]
) -> Iterator[str]:
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - node.level + 1]
            target = ".".join([*base, node.module] if node.module else base)
        else:
            target = node.module or ""
        # ``from pkg import submodule`` is an arrow to the submodule only; a name defined in
        # ``pkg/__init__.py`` itself (``from coatcheck.stores import from_url``) is an
        # arrow to the package.
        names = [f"{target}.{alias.name}" for alias in node.names]
        yield from names
        if any(name not in known for name in names):
            yield target


def graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (names that are not modules, such as
    ``from coatcheck.core.tokens import new_token``, resolve to their module)."""
    known = modules()
    edges: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        targets = {
            target
            for node in ast.walk(tree)
            for target in _imported(node, name, path.name == "__init__.py", known)
            if target in known and target != name
        }
        edges[name] = targets
    return edges


def layer(module: str) -> str | None:
    """The layer a module belongs to; None for the package root and its re-exports."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in RANK else None


def upward(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Imports that break the layering: a layer importing a higher one, or any layer
    importing the package root or a re-export module."""
    wrong = []
    for source, targets in edges.items():
        here = layer(source)
        if here is None:
            continue
        for target in sorted(targets):
            there = layer(target)
            if there is None or RANK[there] > RANK[here]:
                wrong.append((source, target))
    return wrong


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def diagram() -> str:
    """The layers, top first, each with its modules and the lower layers it imports
    (with how many imports), as plain text that reads the same in a terminal and in
    Markdown."""
    edges = graph()
    members: dict[str, list[str]] = {}
    for module in modules():
        name = layer(module)
        if name is not None:
            members.setdefault(name, []).append(module.split(".", 2)[-1])
    arrows: Counter[tuple[str, str]] = Counter()
    for source, targets in edges.items():
        for target in targets:
            a, b = layer(source), layer(target)
            if a is not None and b is not None and a != b:
                arrows[(a, b)] += 1
    lines = ["```"]
    for names in reversed(LAYERS):
        for name in names:
            inner = sorted(m for m in members.get(name, []) if m != name)
            count = len(members.get(name, []))
            uses = ", ".join(
                f"{b} ({n})"
                for (a, b), n in sorted(arrows.items(), key=lambda kv: -RANK[kv[0][1]])
                if a == name
            )
            lines.append(f"{name:<13} {count:>2} module(s)   imports: {uses or '-'}")
            for row in textwrap.wrap(", ".join(inner), width=76):
                lines.append(f"{'':<14}{row}")
        lines.append(f"{'':<13} {'^':>2}")
    lines[-1:] = ["```"]
    return "\n".join(lines) + "\n"


def documented() -> str | None:
    """The diagram as kept in docs/architecture.md, or None when it has no such block."""
    if not DOC.exists():
        return None
    text = DOC.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return None
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def main(argv: list[str]) -> int:
    current = diagram()
    if "--check" in argv:
        if documented() != current:
            print("docs/architecture.md: the layer diagram is out of date; run")
            print("  python -m tools.architecture --write")
            return 1
        return 0
    if "--write" in argv:
        text = DOC.read_text(encoding="utf-8")
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        DOC.write_text(f"{head}{BEGIN}\n{current}{END}{tail}", encoding="utf-8")
        return 0
    sys.stdout.write(current)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
