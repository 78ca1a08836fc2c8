"""The modules of raycg.data import each other without cycles (function-level imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import raycg.data

PKG = Path(raycg.data.__file__).parent


def _data_imports(path: Path) -> set[str]:
    """raycg.data.<module> names imported anywhere in ``path`` (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for n in names:
            parts = n.split(".")
            if parts[:2] == ["raycg", "data"] and len(parts) >= 3 and (PKG / f"{parts[2]}.py").is_file():
                out.add(parts[2])
    return out


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> list[str] | None:
        state[n] = 1
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m, stack + [m])):
                return c
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n, [n])):
            return c
    return None


def test_no_import_cycle_inside_raycg_data():
    graph = {p.stem: _data_imports(p) - {p.stem} for p in PKG.glob("*.py") if p.stem != "__init__"}
    assert "streaming" not in graph["validate"] and "npy_reader" in graph["validate"]
    assert _find_cycle(graph) is None, _find_cycle(graph)


def test_cycle_finder_finds_a_cycle():
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
