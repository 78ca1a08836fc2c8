"""No import cycles anywhere in raycg: every import counts (module level and inside functions).

Imports under ``if TYPE_CHECKING:`` are not executed and are left out. Importing ``a.b.c`` also
runs the packages ``a`` and ``a.b``: those count too, except the importer's own packages
(``a.b.d`` importing ``a.b.c`` runs inside ``a.b``'s initialisation already).
"""

from __future__ import annotations

import ast
from pathlib import Path

import raycg

ROOT = Path(raycg.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _imported_names(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    skip = _type_checking_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in mods.items():
        own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 2)}
        edges = set()
        for name in _imported_names(module, path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the module and every package it runs
                target = ".".join(parts[:i])
                if target in mods and target not in own:
                    edges.add(target)
        graph[module] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
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


def test_no_import_cycle_in_raycg():
    graph = import_graph()
    assert len(graph) > 100 and "raycg.study.trial.run" in graph["raycg.study.driver.tuner"]
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_checker_sees_function_level_imports_and_finds_cycles():
    graph = import_graph()
    assert "raycg.synth" in graph["raycg.study.pipelines.cgschnet.prepare"]  # imported inside a function
    assert "raycg.study.spec" not in graph["raycg.study.pipelines.base"]  # TYPE_CHECKING only
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


#: the only modules that may import Ray (at module level or inside a function)
RAY_USERS = ("raycg.study", "raycg.cluster", "raycg.allatom.distributed", "raycg.ray_compat")


def ray_importers() -> set[str]:
    return {module for module, path in _modules().items()
            if any(n == "ray" or n.startswith("ray.") for n in _imported_names(module, path))}


def test_only_the_study_and_cluster_layers_import_ray():
    users = ray_importers()
    assert "raycg.study.driver.tuner" in users and "raycg.cluster.fake_provider" in users
    strays = sorted(m for m in users if not any(m == u or m.startswith(u + ".") for u in RAY_USERS))
    assert strays == [], strays


def _export_tables() -> dict[str, set[str]]:
    """package -> the names its ``__init__.py`` exports (``_LAZY`` keys and ``__all__``), read from
    the source so that a package whose import fails is still listed."""
    out: dict[str, set[str]] = {}
    for module, path in _modules().items():
        if path.name != "__init__.py":
            continue
        names: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else \
                [node.target] if isinstance(node, ast.AnnAssign) else []
            for t in targets:
                if isinstance(t, ast.Name) and t.id == "_LAZY" and isinstance(node.value, ast.Dict):
                    names.update(k.value for k in node.value.keys if isinstance(k, ast.Constant))
                if isinstance(t, ast.Name) and t.id == "__all__" and isinstance(node.value, (ast.List, ast.Tuple)):
                    names.update(e.value for e in node.value.elts if isinstance(e, ast.Constant))
        if names:
            out[module] = names
    return out


def missing_exports(tables: dict[str, set[str]]) -> list[str]:
    """``package.name`` of every exported name that cannot be imported from its package."""
    import importlib

    missing = []
    for package, names in sorted(tables.items()):
        mod = importlib.import_module(package)
        for name in sorted(names | set(getattr(mod, "__all__", ()))):
            try:
                getattr(mod, name)
            except (AttributeError, ImportError) as exc:
                missing.append(f"{package}.{name} ({type(exc).__name__}: {exc})")
    return missing


def test_every_exported_name_of_every_package_imports():
    tables = _export_tables()
    assert {"raycg.study", "raycg.study.hpo", "raycg.data", "raycg.cv"} <= set(tables)
    assert "run_hpo" in tables["raycg.study.hpo"] and "run_study" in tables["raycg.study"]
    assert missing_exports(tables) == []


def test_the_export_check_finds_a_name_that_does_not_exist():
    assert missing_exports({"raycg.study": {"run_study", "no_such_name"}}) == [
        "raycg.study.no_such_name (AttributeError: module 'raycg.study' has no attribute 'no_such_name')"]
    assert "raycg.study.hpo.nope" in missing_exports({"raycg.study.hpo": {"nope"}})[0]
