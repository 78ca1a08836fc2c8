"""Study storage: a local directory, a shared path, or an object store (s3://, gs://).

Every trial writes its model, trajectories and scores into the study storage through
:class:`Store`, never only onto a node's local disk. Local paths use raycg's atomic writers;
URIs go through ``pyarrow.fs`` (the same filesystem layer Ray Tune uses), so one code path serves
both. Only local storage is exercised by the tests.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any

from raycg.errors import ConfigError
from raycg.utils.io import atomic_directory, atomic_write_bytes, atomic_write_json, to_json

REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "hdfs://", "abfs://", "abfss://")


def is_remote(uri: str) -> bool:
    return str(uri).startswith(REMOTE_SCHEMES)


def join(uri: str, *parts: str) -> str:
    if is_remote(uri):
        return "/".join([str(uri).rstrip("/"), *[p.strip("/") for p in parts]])
    return str(Path(uri, *parts))


def normalize(uri: str) -> str:
    """Absolute local path (``~`` expanded), or the URI unchanged."""
    if is_remote(uri):
        return str(uri).rstrip("/")
    if str(uri).startswith("file://"):
        uri = str(uri)[len("file://"):]
    return str(Path(os.path.expanduser(str(uri))).resolve())


class Store:
    """Files under one root (a study directory), local or remote."""

    def __init__(self, root: str):
        self.root = normalize(root)
        self.remote = is_remote(self.root)
        if self.remote:
            import pyarrow.fs as pafs

            self.fs, self._base = pafs.FileSystem.from_uri(self.root)
        else:
            self.fs, self._base = None, self.root

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    # paths
    def uri(self, rel: str = "") -> str:
        return join(self.root, rel) if rel else self.root

    def local_path(self, rel: str = "") -> Path:
        if self.remote:
            raise ValueError("remote storage has no local path")
        return Path(self.root, rel)

    def _p(self, rel: str) -> str:
        return "/".join([self._base.rstrip("/"), rel.strip("/")]) if rel else self._base

    # queries
    def exists(self, rel: str) -> bool:
        if not self.remote:
            return Path(self.root, rel).exists()
        import pyarrow.fs as pafs

        return self.fs.get_file_info(self._p(rel)).type != pafs.FileType.NotFound

    def listdir(self, rel: str = "") -> list[str]:
        if not self.remote:
            p = Path(self.root, rel)
            return sorted(x.name for x in p.iterdir()) if p.is_dir() else []
        import pyarrow.fs as pafs

        sel = pafs.FileSelector(self._p(rel), allow_not_found=True)
        return sorted(Path(info.path).name for info in self.fs.get_file_info(sel))

    # reading
    def read_bytes(self, rel: str) -> bytes:
        if not self.remote:
            return Path(self.root, rel).read_bytes()
        with self.fs.open_input_stream(self._p(rel)) as fh:
            return fh.read()

    def read_text(self, rel: str) -> str:
        return self.read_bytes(rel).decode("utf-8")

    def read_json(self, rel: str, default: Any = None) -> Any:
        try:
            return json.loads(self.read_text(rel))
        except (FileNotFoundError, OSError, json.JSONDecodeError):
            if default is not None:
                return default
            raise

    def try_read_json(self, rel: str) -> Any | None:
        try:
            return json.loads(self.read_text(rel))
        except (FileNotFoundError, OSError, json.JSONDecodeError, ValueError):
            return None

    # writing (atomic: a reader never sees half a file)
    def write_bytes(self, rel: str, data: bytes) -> None:
        if not self.remote:
            atomic_write_bytes(Path(self.root, rel), data)
            return
        self.fs.create_dir(self._p(str(Path(rel).parent)), recursive=True)
        with self.fs.open_output_stream(self._p(rel)) as fh:  # object stores publish on close
            fh.write(data)

    def write_text(self, rel: str, text: str) -> None:
        self.write_bytes(rel, text.encode("utf-8"))

    def write_json(self, rel: str, obj: Any) -> None:
        if not self.remote:
            atomic_write_json(Path(self.root, rel), obj)
        else:
            self.write_text(rel, to_json(obj) + "\n")

    def upload_dir(self, local: str | os.PathLike, rel: str) -> None:
        """Copy a local directory to ``rel`` (replacing what was there, atomically where local)."""
        local = Path(local)
        if not self.remote:
            with atomic_directory(Path(self.root, rel), overwrite=True) as tmp:
                shutil.copytree(local, tmp, dirs_exist_ok=True, symlinks=False)
            return
        import pyarrow.fs as pafs

        self.delete(rel)
        self.fs.create_dir(self._p(rel), recursive=True)
        pafs.copy_files(str(local), self._p(rel), source_filesystem=pafs.LocalFileSystem(),
                        destination_filesystem=self.fs)

    def download_dir(self, rel: str, local: str | os.PathLike) -> Path:
        local = Path(local)
        local.mkdir(parents=True, exist_ok=True)
        if not self.remote:
            shutil.copytree(Path(self.root, rel), local, dirs_exist_ok=True)
            return local
        import pyarrow.fs as pafs

        pafs.copy_files(self._p(rel), str(local), source_filesystem=self.fs,
                        destination_filesystem=pafs.LocalFileSystem())
        return local

    def delete(self, rel: str) -> None:
        if not self.remote:
            p = Path(self.root, rel)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            elif p.exists() or p.is_symlink():
                p.unlink()
            return
        import pyarrow.fs as pafs

        info = self.fs.get_file_info(self._p(rel))
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(self._p(rel))
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(self._p(rel))


def check_writable(uri: str, *, where: str = "storage") -> None:
    """Raise ConfigError (one line) unless ``uri`` can be written; creates local directories."""
    uri = normalize(uri)
    if not is_remote(uri):
        p = Path(uri)
        probe_parent = p
        while not probe_parent.exists() and probe_parent != probe_parent.parent:
            probe_parent = probe_parent.parent
        if probe_parent.exists() and not probe_parent.is_dir():
            raise ConfigError(f"{where}: {uri} is not a directory ({probe_parent} is a file)",
                              hint="choose a directory with --storage")
        try:
            p.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=".raycg-write-test-", dir=p)
            os.close(fd)
            os.unlink(name)
        except OSError as exc:
            raise ConfigError(f"{where}: cannot write to {uri} ({exc.strerror or exc})",
                              hint="choose a writable directory with --storage") from None
        return
    try:
        store = Store(uri)
        probe = f".raycg-write-test-{uuid.uuid4().hex}"
        store.write_bytes(probe, b"ok")
        store.delete(probe)
    except Exception as exc:  # noqa: BLE001 - any failure means "cannot write"
        raise ConfigError(f"{where}: cannot write to {uri} ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                          hint="check the bucket name and credentials") from None


def node_cache_dir() -> Path:
    base = os.environ.get("RAYCG_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "raycg")
    return Path(base)
