"""Whether a trial checkpoint is complete: a manifest of its files, written before Tune copies it.

Tune copies a trial's checkpoint directory into the study storage file by file; a full disk, a
killed driver or a lost node can leave a copy with missing or truncated files, and Tune still
offers it for restore. Before each report the trial writes ``checkpoint_manifest.json`` (every
file's relative path and size) into the directory it checkpoints; :func:`problem` checks a copy
against it. Checkpoints made before manifests existed are judged by their ``state.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from raycg.utils.io import atomic_write_json

MANIFEST = "checkpoint_manifest.json"
STATE = "state.json"
_CKPT_RE = re.compile(r"^checkpoint_(\d+)$")


def write_manifest(directory: Path) -> None:
    files = {str(p.relative_to(directory)): p.stat().st_size for p in sorted(directory.rglob("*"))
             if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}
    atomic_write_json(directory / MANIFEST, {"version": 1, "files": files})


def problem(directory: Path) -> str | None:
    """Why the checkpoint in ``directory`` cannot be restored (None: it is complete)."""
    if not directory.is_dir():
        return f"{directory} is missing"
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except FileNotFoundError:
        manifest = None
    except (OSError, ValueError):
        return f"{directory / MANIFEST} is unreadable or truncated"
    if manifest is None:  # older checkpoint: its state must parse
        try:
            json.loads((directory / STATE).read_text())
        except (OSError, ValueError):
            return f"{directory / STATE} is missing or truncated"
        return None
    for rel, size in manifest.get("files", {}).items():
        try:
            actual = (directory / rel).stat().st_size
        except OSError:
            return f"{directory / rel} is missing"
        if actual != size:
            return f"{directory / rel} has {actual} of {size} bytes"
    return None


def index(directory: Path) -> int | None:
    """The number of a Tune checkpoint directory (``checkpoint_000012`` -> 12)."""
    m = _CKPT_RE.match(directory.name)
    return int(m.group(1)) if m else None


def candidates(offered: Path) -> list[tuple[str, Path]]:
    """Tune checkpoints of ``offered``'s trial, newest first, labelled "tune" (the offered one),
    "newer" (made after the saved state Tune restored from) or "older"."""
    own = index(offered)
    try:
        found = {index(p): p for p in offered.parent.iterdir() if index(p) is not None}
    except OSError:
        found = {}
    if own is not None:
        found.setdefault(own, offered)
    out = []
    for i, p in sorted(found.items(), reverse=True):
        label = "tune" if i == own else ("newer" if own is not None and i > own else "older")
        out.append((label, p))
    return out


def newest_complete(trial_dir: Path) -> Path | None:
    """The newest complete ``checkpoint_*`` directory of a Tune trial directory."""
    try:
        found = sorted(((index(p), p) for p in trial_dir.iterdir() if index(p) is not None), reverse=True)
    except OSError:
        return None
    return next((p for _, p in found if problem(p) is None), None)
