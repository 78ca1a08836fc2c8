"""``STUDY/prepared``: the artefacts a pipeline computes once per study and every trial reads.

A pipeline's ``prepare`` builds them in a local directory and :func:`publish` uploads it with its
``prepared.json`` (whose ``hash`` of the inputs is the cache key, see :func:`cached`). Trials read
them through :func:`local_dir`: the study directory itself on local/shared storage, a per-node
download for object stores.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from raycg.study.storage import Store, node_cache_dir
from raycg.utils.io import atomic_write_json

PREPARED = "prepared"
INFO = "prepared.json"


def cached(store: Store, key: str) -> dict[str, Any] | None:
    """The stored ``prepared.json`` if it was made from inputs with hash ``key``, else None."""
    old = store.try_read_json(f"{PREPARED}/{INFO}")
    return old if old and old.get("hash") == key else None


def publish(store: Store, local: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Write ``info`` as ``local/prepared.json`` and upload ``local`` as ``STUDY/prepared``."""
    atomic_write_json(local / INFO, info)
    store.upload_dir(local, PREPARED)
    return info


def local_dir(store: Store) -> Path:
    """A local directory with the study's prepared artefacts (downloaded once per node for URIs)."""
    if not store.remote:
        return store.local_path(PREPARED)
    info = store.read_json(f"{PREPARED}/{INFO}")
    dest = node_cache_dir() / PREPARED / info["hash"]
    if not (dest / INFO).exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=dest.parent))
        store.download_dir(PREPARED, tmp)
        try:
            os.replace(tmp, dest)
        except OSError:  # another trial on this node got there first
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def read_info(directory: Path) -> dict[str, Any]:
    return json.loads((directory / INFO).read_text())
