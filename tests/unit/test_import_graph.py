"""The import graph of the code: no cycle inside `selfrag/`, and imports only in the documented direction
(docs/architecture.md): the library never imports `critic`, `eval` or `scripts`, and inside `selfrag` nothing below
decoding imports `selfrag.decoding`.

The graph is read from the source with `ast`, so it counts every import statement: module level, inside functions
(lazy imports) and under `TYPE_CHECKING`. A lazy import hides a cycle from Python, not from a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `package` (a package is named by its __init__)."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imported_names(path: Path) -> set[str]:
    """Every dotted name an import statement in `path` may refer to (`from a.b import c` gives `a.b.c`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import; the project imports absolutely"
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest known module `name` starts with (`a.b.c` -> `a.b` when `c` is a function), or None."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(*packages: str) -> dict[str, set[str]]:
    """Module -> the modules of `packages` it imports (edges to package `__init__` files included)."""
    modules = {name: path for package in packages for name, path in _modules(package).items()}
    graph = {}
    for name, path in modules.items():
        targets = {_resolve(n, modules) for n in _imported_names(path)}
        graph[name] = {t for t in targets if t is not None and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path [a, b, ..., a], or None when the graph is acyclic (depth-first search)."""
    state: dict[str, str] = {}  # "open" while on the current path, "done" once fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_find_cycle_finds_a_cycle_and_accepts_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_lazy_and_type_checking_imports():
    graph = import_graph("selfrag")
    # pipeline imports beam at module level; backend imports its implementations inside a function
    assert "selfrag.decoding.beam" in graph["selfrag.decoding.pipeline"]
    assert "selfrag.decoding.hf_backend" in graph["selfrag.decoding.backend"]


def test_selfrag_has_no_import_cycle():
    cycle = find_cycle(import_graph("selfrag"))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_library_never_imports_the_layers_above_it():
    graph = import_graph("selfrag", "critic", "eval", "scripts")
    upward = sorted((a, b) for a, targets in graph.items() if a.startswith("selfrag")
                    for b in targets if not b.startswith("selfrag"))
    assert upward == [], f"selfrag imports critic/eval/scripts: {upward}"
    into_scripts = sorted((a, b) for a, targets in graph.items() if not a.startswith("scripts")
                          for b in targets if b.startswith("scripts"))
    assert into_scripts == [], f"scripts are entry points, not imported: {into_scripts}"


def test_nothing_below_decoding_imports_decoding():
    graph = import_graph("selfrag")
    # selfrag.serving sits above the decoder (docs/architecture.md): it imports it; nothing below imports either
    above = ("selfrag.decoding", "selfrag.serving")
    below = [m for m in graph if not m.startswith(above)]
    wrong = sorted((a, b) for a in below for b in graph[a] if b.startswith(above))
    assert wrong == [], f"modules below decoding import it: {wrong}"


def test_only_the_server_script_imports_the_server():
    graph = import_graph("selfrag", "critic", "eval")
    wrong = sorted((a, b) for a, targets in graph.items() if not a.startswith("selfrag.serving")
                   for b in targets if b.startswith("selfrag.serving"))
    assert wrong == [], f"selfrag.serving is a top layer; only scripts/serve.py imports it: {wrong}"
