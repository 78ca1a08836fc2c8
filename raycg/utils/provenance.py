"""Provenance recorded next to every result: config, package versions, git commit, data hash."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as _md
import platform
import subprocess
from pathlib import Path
from typing import Any

import raycg

_PACKAGES = (
    "raycg", "numpy", "torch", "torch_geometric", "mdtraj", "deeptime", "ray", "optuna",
    "pandas", "scipy", "pot", "h5py", "openmm",
)


def package_versions() -> dict[str, str | None]:
    """Installed versions of raycg's main dependencies (None where absent)."""
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = _md.version(name.replace("_", "-"))
        except _md.PackageNotFoundError:
            out[name] = None
    out["python"] = platform.python_version()
    return out


def git_commit(path: str | Path | None = None) -> str | None:
    """The git commit of the raycg source tree (with ``-dirty`` when modified), or None."""
    root = Path(path) if path else Path(raycg.__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(config: Any = None, data_hash: str | None = None, **extra: Any) -> dict[str, Any]:
    """A JSON-serialisable provenance record."""
    if hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    rec: dict[str, Any] = {
        "raycg_version": raycg.__version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "host": platform.node(),
        "config": config,
        "data_hash": data_hash,
    }
    rec.update(extra)
    return rec
