"""Count how typed the stage contracts are; prints one JSON object.

- ``untyped_or_any_params``: parameters (not ``self``/``cls``) of the public stage API with no
  annotation or annotated ``Any``: every function exported by raycg.data, raycg.priors, raycg.cv,
  raycg.model, raycg.train, raycg.sim, raycg.evaluate, raycg.stats, raycg.report (their ``__all__``,
  eager imports and ``_LAZY`` tables), and for an exported class its ``__init__`` and public methods.
- ``getattr_hasattr_probes``: ``getattr(`` / ``hasattr(`` calls in raycg/ (``hasattr`` alone too).
- ``long_module_docstrings``: module docstrings over 15 lines in raycg/ (and in the packages
  listed in ``DOCSTRING_SCOPE``).

Static (``ast``): nothing is imported. Run: ``python benchmarks/count_contracts.py``.
"""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "raycg"
STAGES = ("data", "priors", "cv", "model", "train", "sim", "evaluate", "stats", "report")
DOCSTRING_SCOPE = ("raycg/device.py", "raycg/data/", "raycg/cv/", "raycg/evaluate/", "raycg/model/",
                   "raycg/priors/", "raycg/synth/", "raycg/utils/", "raycg/units.py", "raycg/config.py")
LONG = 15


def _path(module: str) -> Path | None:
    base = PKG.parent / Path(*module.split("."))
    for p in (base.with_suffix(".py"), base / "__init__.py"):
        if p.exists():
            return p
    return None


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text())


def _resolve(module: str, level: int, name: str | None, package: str) -> str:
    if not level:
        return name or ""
    parts = package.split(".")[: len(package.split(".")) - level + 1]
    return ".".join(parts + ([name] if name else []))


def _exports(package: str) -> dict[str, str]:
    """exported name -> module it is imported from."""
    path = _path(package)
    tree = _tree(path)
    names: set[str] = set()
    where: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            mod = _resolve(package, node.level, node.module, package)
            for a in node.names:
                where[a.asname or a.name] = mod
        targets = []
        if isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets, value = [node.target.id], node.value
        if "_LAZY" in targets and isinstance(value, ast.Dict):
            for k, v in zip(value.keys, value.values):
                mod = v.value if v.value[0] != "." else _resolve(package, 1, v.value.lstrip("."), package)
                where[k.value] = mod
                names.add(k.value)
        if "__all__" in targets and isinstance(value, ast.List):
            names.update(e.value for e in value.elts if isinstance(e, ast.Constant))
    return {n: where[n] for n in names if n in where}


def _definition(module: str, name: str, depth: int = 0) -> ast.AST | None:
    path = _path(module)
    if path is None or depth > 5:
        return None
    tree = _tree(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name:
            return node
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any((a.asname or a.name) == name for a in node.names):
            real = next(a.name for a in node.names if (a.asname or a.name) == name)
            return _definition(_resolve(module, node.level, node.module, package), real, depth + 1)
    return None


def _is_any(ann: ast.expr | None) -> bool:
    if ann is None:
        return True
    text = ast.unparse(ann).strip("'\"")
    return text in ("Any", "typing.Any")


def _loose_params(fn: ast.FunctionDef | ast.AsyncFunctionDef, method: bool) -> list[str]:
    a = fn.args
    params = [*a.posonlyargs, *a.args, *a.kwonlyargs]
    if method and params and params[0].arg in ("self", "cls"):
        params = params[1:]
    params += [p for p in (a.vararg, a.kwarg) if p is not None]
    return [p.arg for p in params if _is_any(p.annotation)]


def untyped_params() -> tuple[int, dict[str, list[str]]]:
    found: dict[str, list[str]] = {}
    for stage in STAGES:
        for name, module in sorted(_exports(f"raycg.{stage}").items()):
            node = _definition(module, name)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                loose = _loose_params(node, method=False)
                if loose:
                    found[f"raycg.{stage}.{name}"] = loose
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                            item.name == "__init__" or not item.name.startswith("_")):
                        static = any(ast.unparse(d) == "staticmethod" for d in item.decorator_list)
                        loose = _loose_params(item, method=not static)
                        if loose:
                            found[f"raycg.{stage}.{name}.{item.name}"] = loose
    return sum(len(v) for v in found.values()), found


def probes() -> dict[str, int]:
    text = [p.read_text() for p in PKG.rglob("*.py")]
    return {"getattr_hasattr": sum(len(re.findall(r"\b(?:getattr|hasattr)\(", t)) for t in text),
            "hasattr": sum(len(re.findall(r"\bhasattr\(", t)) for t in text)}


def long_docstrings() -> dict[str, object]:
    long: dict[str, int] = {}
    for p in sorted(PKG.rglob("*.py")):
        doc = ast.get_docstring(_tree(p), clean=False)
        if doc is not None and len(doc.splitlines()) > LONG:
            long[str(p.relative_to(ROOT))] = len(doc.splitlines())
    scope = {k: v for k, v in long.items() if k.startswith(DOCSTRING_SCOPE)}
    return {"all": len(long), "in_scope": len(scope), "in_scope_files": scope}


def main() -> None:
    n, where = untyped_params()
    verbose = "-v" in sys.argv[1:]
    out = {"untyped_or_any_params": n, "probes": probes(), "long_module_docstrings": long_docstrings(),
           "readme_lines": len((ROOT / "README.md").read_text().splitlines())}
    if verbose:
        out["untyped_or_any_where"] = where
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
