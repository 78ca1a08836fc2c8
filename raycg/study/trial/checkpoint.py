"""A trial's checkpoints, kept in its own folder of the study storage (the only copy that counts).

``trials/<id>/checkpoints/<n>/`` (``n`` = 000001, 000002, ...) is a copy of the attempt's work
directory with ``checkpoint_manifest.json`` (every file's relative path and size) written into it
before the copy. Locally the copy is renamed into place in one step; on an object store the files
arrive one by one, so a copy is trusted only if every file of its manifest is there at its size.
A new attempt restores the newest complete checkpoint and numbers its own after it; only the
:data:`KEEP` newest are kept. Nothing here imports Ray.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from raycg.study.storage import Store
from raycg.utils.io import atomic_write_json

MANIFEST = "checkpoint_manifest.json"
CHECKPOINTS = "checkpoints"
#: complete checkpoints kept per trial (the newest; one spare in case the newest is unreadable)
KEEP = 2


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
        files = dict(manifest["files"])
    except FileNotFoundError:
        return f"{directory / MANIFEST} is missing"
    except (OSError, ValueError, KeyError, TypeError):
        return f"{directory / MANIFEST} is unreadable or truncated"
    for rel, size in files.items():
        try:
            actual = (directory / rel).stat().st_size
        except OSError:
            return f"{directory / rel} is missing"
        if actual != size:
            return f"{directory / rel} has {actual} of {size} bytes"
    return None


class TrialCheckpoints:
    """Save and restore one trial's checkpoints (``trials/<id>/checkpoints/``) through a :class:`Store`."""

    def __init__(self, store: Store, trial_rel: str):
        self.store, self.rel = store, f"{trial_rel}/{CHECKPOINTS}"
        found = self.numbers()
        self.last = found[0] if found else 0

    def numbers(self) -> list[int]:
        """The numbers of the stored checkpoints, newest first (complete or not)."""
        return sorted((int(x) for x in self.store.listdir(self.rel) if x.isdigit()), reverse=True)

    def restore_into(self, work: Path) -> int | None:
        """Copy the newest complete checkpoint into ``work`` (empty); return its number (None: none)."""
        log = logging.getLogger(__name__)
        for n in self.numbers():
            rel = f"{self.rel}/{n:06d}"
            try:
                self.store.download_dir(rel, work)
                why = problem(work)
            except OSError as exc:  # deleted meanwhile, or unreadable
                why = str(exc)
            if why is None:
                return n
            log.warning("not restoring from %s: %s", self.store.uri(rel), why)
            _empty(work)
        return None

    def save(self, work: Path) -> int:
        """Store ``work`` as the next checkpoint, then drop all but the :data:`KEEP` newest."""
        write_manifest(work)
        self.last += 1
        self.store.upload_dir(work, f"{self.rel}/{self.last:06d}")
        for n in self.numbers():
            if n <= self.last - KEEP:
                self.store.delete(f"{self.rel}/{n:06d}")
        return self.last


def _empty(directory: Path) -> None:
    for p in list(directory.iterdir()):
        shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
