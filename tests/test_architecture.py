"""The house keeps its shape: layers import only downward, no module imports itself in a
circle, modules and functions stay small enough to read, each layer says what it may
import, and the layer diagram in docs/architecture.md is the one the code draws.

The checks read the source (``tools.architecture``); the first two tests feed the checkers
a graph with a known fault, so a checker that stopped finding faults would fail here too.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tools import architecture

ROOT = Path(__file__).resolve().parents[1]

MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 60


def test_the_checkers_find_an_upward_arrow_and_a_cycle() -> None:
    edges = {
        "coatcheck.core.policy": {"coatcheck.engine.manager"},  # core must not see the engine
        "coatcheck.engine.manager": {"coatcheck.core.policy", "coatcheck.asgi"},
        "coatcheck.http.edge": {"coatcheck.core.session"},
    }
    assert architecture.upward(edges) == [
        ("coatcheck.core.policy", "coatcheck.engine.manager"),
        ("coatcheck.engine.manager", "coatcheck.asgi"),  # a re-export module: above all
    ]
    assert architecture.cycles(edges) == [["coatcheck.core.policy", "coatcheck.engine.manager"]]


def test_the_graph_sees_imports_inside_functions() -> None:
    # A lazy import is still an arrow: the real package has some, and each must be in the graph.
    graph = architecture.graph()
    lazy = [
        (source, target)
        for source, path in architecture.modules().items()
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef)
        for inner in ast.walk(node)
        if isinstance(inner, ast.ImportFrom) and (inner.module or "").startswith("coatcheck.")
        for target in [inner.module or ""]
        if target in graph
    ]
    assert lazy, "expected at least one import inside a function in the package"
    for source, target in lazy:
        assert target in graph[source]


def test_every_layer_imports_only_the_layers_below_it() -> None:
    assert architecture.upward(architecture.graph()) == []


def test_no_import_cycles() -> None:
    assert architecture.cycles(architecture.graph()) == []


def test_modules_and_functions_stay_small() -> None:
    too_long: list[str] = []
    for name, path in architecture.modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_MODULE_LINES:
            too_long.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{name}.{node.name}: {length} lines")
    assert too_long == []


@pytest.mark.parametrize("layer", sorted(architecture.RANK))
def test_each_layer_says_what_it_may_import(layer: str) -> None:
    modules = architecture.modules()
    name = f"coatcheck.{layer}"
    assert name in modules, f"no layer {layer}"
    doc = ast.get_docstring(ast.parse(modules[name].read_text()))
    assert doc, f"{name} has no docstring"
    if modules[name].name == "__init__.py":
        assert "May import" in doc or "may import" in doc, f"{name} does not state its imports"


def test_the_documented_diagram_is_the_one_the_code_draws() -> None:
    assert architecture.documented() == architecture.diagram(), (
        "docs/architecture.md is out of date: python -m tools.architecture --write"
    )


def test_the_import_linter_contract_holds() -> None:
    """The same layers, as import-linter reads them from pyproject.toml (``make lint``)."""
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " 0 broken" in result.stdout.split("Contracts:")[-1].split("\n")[0]


def test_importing_a_store_does_not_load_the_engine() -> None:
    code = (
        "import sys, coatcheck.stores.sqlite, coatcheck.stores.memory;"
        "print(sorted(m for m in sys.modules if m.startswith('coatcheck.engine')"
        " or m.startswith('coatcheck.http') or m.startswith('coatcheck.integrations')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("public", "home"),
    [
        ("coatcheck.asgi", "coatcheck.integrations.asgi"),
        ("coatcheck.wsgi", "coatcheck.integrations.wsgi"),
        ("coatcheck.starlette", "coatcheck.integrations.starlette"),
        ("coatcheck.fastapi", "coatcheck.integrations.fastapi"),
        ("coatcheck.flask", "coatcheck.integrations.flask"),
        ("coatcheck.django", "coatcheck.integrations.django"),
        ("coatcheck.sealing", "coatcheck.security.sealing"),
        ("coatcheck.events", "coatcheck.core.events"),
        ("coatcheck.config", "coatcheck.core.config"),
    ],
)
def test_public_paths_re_export_their_new_home(public: str, home: str) -> None:
    old, new = importlib.import_module(public), importlib.import_module(home)
    assert old.__all__ == new.__all__ and old.__all__
    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name)


def test_the_changelog_names_where_each_moved_module_went() -> None:
    """CHANGELOG's "Moved" table: every new home it names exists, and every old public
    path the section says is kept still imports."""
    text = (ROOT / "CHANGELOG.md").read_text()
    section = text.split("### Moved", 1)[1].split("\n### ", 1)[0]
    homes = set(re.findall(r"`(coatcheck(?:\.[a-z_]+)+)", section))
    assert len(homes) >= 10
    for name in sorted(homes):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:  # a name in a module (``coatcheck.stores.from_url``)
            module, _, attr = name.rpartition(".")
            assert hasattr(importlib.import_module(module), attr), name
