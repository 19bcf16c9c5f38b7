"""House rules checked on the source itself: no import circle among zoo's modules.

The graph is read with `ast`, not by importing: every import statement counts, the ones inside
functions and under `if TYPE_CHECKING:` too, because a lazy import is still a dependency (it only
moves the circle's failure from import time to call time). An edge goes from a module to the zoo
module an import names: `from zoo import runs` and `from . import runs` name `zoo.runs`;
`from zoo import get` names the package `zoo`; `import zoo.tuning.search` names
`zoo.tuning.search`. The parent packages Python imports on the way are not edges: every module
imports `zoo/__init__.py` that way, which is how packages work, not a circle in the design.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ZOO = Path(__file__).resolve().parent.parent / "zoo"


def module_names(root: Path = ZOO) -> dict[str, Path]:
    """`{dotted module name: file}` of every module of the package at `root` (packages by their
    `__init__.py`)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imported(module: str, is_package: bool, node: ast.AST, modules: Iterable[str]) -> set[str]:
    """The modules of `modules` that one import statement of `module` names."""
    known = set(modules)
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    if not isinstance(node, ast.ImportFrom):
        return set()
    if node.level:  # relative: from the module's package, one level up per extra dot
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = package[: len(package) - (node.level - 1)]
        source = ".".join([*base, *([node.module] if node.module else [])])
    else:
        source = node.module or ""
    names = set()
    for alias in node.names:
        submodule = f"{source}.{alias.name}"
        if submodule in known:  # `from zoo import runs`: the submodule
            names.add(submodule)
        elif source in known:  # `from zoo.registry import Entry`: the module itself
            names.add(source)
    return names


def import_graph(root: Path = ZOO) -> dict[str, set[str]]:
    """`{module: {zoo modules it imports}}` for every module under `root`, from every import
    statement in it (module level, in functions, in classes)."""
    modules = module_names(root)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        edges = set()
        for node in ast.walk(tree):
            edges |= _imported(name, is_package, node, modules)
        edges.discard(name)
        graph[name] = edges
    return graph


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One import circle of `graph` as `[a, b, ..., a]`, or `None` when there is none (a depth
    first search; a node met again while still on the path closes a circle)."""
    on_path: list[str] = []
    state: dict[str, str] = {}  # "open" while on the path, "done" once fully explored

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        on_path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*on_path[on_path.index(nxt):], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        on_path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start)
            if found:
                return found
    return None


def reachable(graph: Mapping[str, Iterable[str]], start: str) -> set[str]:
    """The modules `start` imports, directly or through others."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        for nxt in graph.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


#: The layers of the house (/work/shared/DESIGN.md), from the bottom: errors, files, precision,
#: hparams; the registry (data only); the run directory, Keras saving and the weight sets; the
#: factory (zoo.get / list / describe); the workflow; the package's public API and the command
#: line. Each module here must not import the ones listed, directly or through others.
NOT_BELOW = {
    "zoo.hparams": {"zoo.registry"},
    "zoo.registry": {"zoo.runs", "zoo.saving", "zoo.weights", "zoo.factory"},
    "zoo.runs": {"zoo.weights", "zoo.factory"},
    "zoo.weights": {"zoo.factory"},
    "zoo.factory": {"zoo.workflow"},
    "zoo.workflow": {"zoo.cli"},
}


@pytest.mark.parametrize("module", sorted(NOT_BELOW))
def test_each_layer_imports_only_the_layers_below_it(module):
    graph = import_graph()
    above = {*NOT_BELOW[module], "zoo", "zoo.cli"} - {module}
    assert module in graph, f"{module} is gone: update NOT_BELOW"
    assert not reachable(graph, module) & above, (
        f"{module} imports {sorted(reachable(graph, module) & above)}, which sit above it"
    )


def test_no_import_circle_among_zoos_modules():
    graph = import_graph()
    assert len(graph) > 30 and any(graph.values()), "the graph is empty: the parser found nothing"
    cycle = find_cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


@pytest.mark.parametrize("graph,expected", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, ["a", "b", "c", "a"]),
    ({"x": {"x"}}, ["x", "x"]),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),  # a diamond is not a circle
])
def test_find_cycle_finds_a_circle_and_only_a_circle(graph, expected):
    assert find_cycle(graph) == expected


def test_every_kind_of_import_statement_is_an_edge(tmp_path):
    """A synthetic package whose only circle goes through a lazy, relative import inside a
    function and a `from pkg import submodule`: the check cannot pass vacuously."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from pkg.a import thing\n")
    (package / "a.py").write_text("import os\nfrom pkg import b\nthing = 1\n")
    (package / "b.py").write_text("def late():\n    from .sub import c\n    return c\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("from .. import a\nimport pkg.sub\n")
    graph = import_graph(package)
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.sub.c"},
                     "pkg.sub": set(), "pkg.sub.c": {"pkg.a", "pkg.sub"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"]
    assert reachable(graph, "pkg.sub") == set()
    assert reachable(graph, "pkg.b") == {"pkg.sub.c", "pkg.a", "pkg.sub", "pkg.b"}


# The house's size rules (issue 23, /work/shared/DESIGN.md): a module past them holds more than
# one concern, and the split is due.
MAX_MODULE_LINES = 500
MAX_TRAINING_LINES = 300


def test_no_module_outgrows_one_concern():
    sizes = {path.relative_to(ZOO.parent): len(path.read_text().splitlines())
             for path in ZOO.rglob("*.py")}
    over = {str(path): lines for path, lines in sizes.items()
            if lines > (MAX_TRAINING_LINES if path.parts[1] == "training" else MAX_MODULE_LINES)}
    assert not over, f"split these by concern (500 lines; zoo/training/: 300): {over}"
    assert sizes[Path("zoo/cli.py")] <= 450, "zoo/cli.py is argparse and printing: keep it short"


def test_the_command_line_imports_no_training_internals():
    """zoo/cli.py parses and prints over zoo.workflow: it reaches training only through it."""
    direct = import_graph()["zoo.cli"]
    assert not {name for name in direct if name.startswith(("zoo.training", "zoo.tuning.search"))}
    assert "zoo.workflow" in direct or any(name.startswith("zoo.workflow.") for name in direct)
