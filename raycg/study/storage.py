"""Study storage: a local directory, a shared path, or an object store (s3://, gs://).

Every trial writes its model, trajectories and scores into the study storage through
:class:`Store`, never only onto a node's local disk. Local paths use raycg's atomic writers;
URIs go through ``pyarrow.fs`` (the same filesystem layer Ray Tune uses), so one code path serves
both. Only local storage is exercised by the tests.
"""

from __future__ import annotations

import errno
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
#: bytes the start-of-study probe really writes (and fsyncs): a 0-byte file succeeds on a full disk
PROBE_BYTES = 1 << 20
#: free space a study refuses to start below (override: RAYCG_MIN_FREE_MB)
MIN_FREE_BYTES = 64 << 20
#: errnos that mean "the storage is full", not "this trial is wrong"
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_FULL_TEXT = ("no space left on device", "disk quota exceeded", "file too large", "errno 28", "[errno 122]")


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


def is_storage_full(exc: BaseException | str) -> bool:
    """Whether an error (or its text, e.g. Tune's error of a trial) says the storage is full."""
    if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
        return True
    text = str(exc).lower()
    return any(t in text for t in _FULL_TEXT)


def free_bytes(uri: str) -> int | None:
    """Free bytes on the filesystem holding ``uri`` (its nearest existing ancestor); None for object stores."""
    if is_remote(uri):
        return None
    p = Path(normalize(uri))
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def min_free_bytes() -> int:
    env = os.environ.get("RAYCG_MIN_FREE_MB")
    try:
        return int(float(env) * 2**20) if env else MIN_FREE_BYTES
    except ValueError:
        raise ConfigError(f"RAYCG_MIN_FREE_MB must be a number of MiB, got {env!r}") from None


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def check_writable(uri: str, *, where: str = "storage", probe_bytes: int = PROBE_BYTES,
                   min_free: int | None = None) -> None:
    """Raise ConfigError (one line) unless ``uri`` can be written: a real write, and some free space.

    Local paths: the free space must be at least ``min_free`` (default :func:`min_free_bytes`),
    then ``probe_bytes`` are written, fsynced and removed (a 0-byte probe succeeds on a full disk).
    Directories created for the probe are removed again when it fails: a refused study leaves
    nothing behind.
    """
    uri = normalize(uri)
    if is_remote(uri):
        _check_remote(uri, where)
        return
    p = Path(uri)
    existing = p
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise ConfigError(f"{where}: {uri} is not a directory ({existing} is a file)",
                          hint="choose a directory with --storage")
    need = min_free_bytes() if min_free is None else min_free
    free = free_bytes(uri)
    if free is not None and free < need:
        raise ConfigError(f"{where}: only {_mb(free)} free on the disk holding {uri} (a study needs at least "
                          f"{_mb(need)})", hint="free some space or choose another --storage")
    created = [d for d in [p, *p.parents] if not d.exists()]
    try:
        p.mkdir(parents=True, exist_ok=True)
        probe_write(p, probe_bytes)
    except OSError as exc:
        for d in created:  # innermost first: only what the probe made, and only while empty
            try:
                d.rmdir()
            except OSError:
                break
        what = "the disk is full" if is_storage_full(exc) else (exc.strerror or str(exc))
        raise ConfigError(f"{where}: cannot write to {uri} ({what})",
                          hint="free some space or choose a writable directory with --storage") from None


def probe_write(directory: Path, n: int) -> None:
    """Write ``n`` bytes into a temporary file in ``directory``, fsync, remove it; raises OSError."""
    fd, name = tempfile.mkstemp(prefix=".raycg-write-test-", dir=directory)
    try:
        block = os.urandom(min(n, 1 << 16))
        left = n
        while left > 0:
            left -= os.write(fd, block[: min(left, len(block))])
        os.fsync(fd)
    finally:
        os.close(fd)
        os.unlink(name)


def _check_remote(uri: str, where: str) -> None:
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
