"""The import graph of glmbridge and glmbridge_server has no cycle, and no function-local
import of a project module (the usual way a cycle is hidden).

The graph is read with :mod:`ast`, not by importing: an edge is a module-level ``import``
(``if TYPE_CHECKING:`` blocks excluded, they never run). ``from pkg import name`` is an edge
to ``pkg.name`` when that is a module, else to ``pkg`` (its ``__init__``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("glmbridge", "glmbridge_server")


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package ``__init__``) for every module of both packages."""
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            found[".".join(parts)] = (path, is_package)
    return found


MODULES = _modules()


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The project modules one import statement names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = module.split(".") if is_package else module.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        names = [
            f"{target}.{alias.name}" if f"{target}.{alias.name}" in MODULES else target
            for alias in node.names
        ]
    return [name for name in names if name.split(".")[0] in PACKAGES]


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _scan() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """Module-level edges, and every function-local project import (importer, imported,
    line)."""
    edges: dict[str, set[str]] = {}
    local: list[tuple[str, str, int]] = []
    for module, (path, is_package) in MODULES.items():
        out: set[str] = set()
        pending: list[tuple[ast.AST, bool, bool]] = [(ast.parse(path.read_text()), False, False)]
        while pending:
            node, in_function, type_only = pending.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Import | ast.ImportFrom):
                    for target in _targets(module, is_package, child):
                        if in_function:
                            local.append((module, target, child.lineno))
                        elif not type_only:
                            out.add(target)
                function = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
                pending.append(
                    (child, in_function or function, type_only or _is_type_checking(child))
                )
        edges[module] = {target for target in out if target in MODULES and target != module}
    return edges, local


EDGES, LOCAL_IMPORTS = _scan()


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_scan_sees_the_packages() -> None:
    # guards the test itself: an empty graph would pass every check below
    assert "glmbridge.exchange" in EDGES
    assert "glmbridge.roles" in EDGES["glmbridge.exchange"]
    assert len(MODULES) > 50


def test_the_cycle_finder_finds_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package: str) -> None:
    edges = {m: e for m, e in EDGES.items() if m.split(".")[0] == package}
    edges = {m: {t for t in e if t in edges} for m, e in edges.items()}
    assert _cycles(edges) == []


def test_no_import_cycle_across_packages() -> None:
    assert _cycles(EDGES) == []


def test_library_has_no_function_local_import() -> None:
    assert [hit for hit in LOCAL_IMPORTS if hit[0].split(".")[0] == "glmbridge"] == []


def test_no_function_local_import_hides_a_cycle() -> None:
    # The server imports a few modules inside functions so that a command starts fast (the
    # statusline, the launchers) or an optional part costs nothing when it is off (Redis,
    # the quota poller). Such an import is allowed only where it would not close a cycle if
    # it stood at the top of its module: counted as edges, the graph stays acyclic.
    edges = {module: set(targets) for module, targets in EDGES.items()}
    for importer, imported, _line in LOCAL_IMPORTS:
        if imported in MODULES and imported != importer:
            edges[importer].add(imported)
    assert _cycles(edges) == []
