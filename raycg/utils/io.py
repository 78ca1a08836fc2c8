"""Atomic output and hashing.

Every file raycg writes goes to a temporary name next to its destination and is then
renamed over it, so a killed run never leaves a half-written result behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from raycg.errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_path(dest: Path, suffix: str = "") -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=f".tmp-{os.getpid()}{suffix}", dir=dest.parent)
    # mkstemp makes 0600 files; results are meant to be shared like any file this user writes
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; on success it is renamed to ``dest`` (fsynced), on error removed."""
    dest = Path(dest)
    tmp = _tmp_path(dest, dest.suffix)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write_bytes(dest: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return Path(dest)


def atomic_write_text(dest: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(dest, text.encode("utf-8"))


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def to_json(obj: Any, *, indent: int | None = 2) -> str:
    return json.dumps(obj, indent=indent, sort_keys=True, default=_json_default)


def atomic_write_json(dest: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(dest, to_json(obj) + "\n")


def not_regular_file(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be opened as a plain file (``"not found"``, ``"is a FIFO (named pipe), not a
    regular file"``, ...), or None when it is a regular file. Opening a FIFO or device could block forever."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "not found"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    return f"is {kind}, not a regular file"


def read_record(path: str | os.PathLike, fmt: str, version: int, what: str, hint: str) -> dict[str, Any]:
    """A JSON record raycg wrote: the mapping in ``path`` whose ``format`` is ``fmt`` and ``version`` is
    ``version``. Anything else raises one ``InputError`` line naming the file (``what``: e.g. "noise
    floor"; ``hint``: how to make it again)."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable {what} ({exc.__class__.__name__}: {exc})", hint=hint) from None
    if not isinstance(d, dict) or d.get("format") != fmt:
        raise InputError(f"{path}: not a raycg {what}", hint=hint)
    if d.get("version") != version:
        raise InputError(f"{path}: {what} version {d.get('version')}, this raycg reads {version}", hint=hint)
    return d


def atomic_save_npy(dest: str | os.PathLike, array: np.ndarray) -> Path:
    with atomic_path(dest) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
    return Path(dest)


@contextlib.contextmanager
def atomic_directory(dest: str | os.PathLike, *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory under a temporary name, then rename it to ``dest`` in one step.

    With ``overwrite`` an existing ``dest`` is replaced only after the new one is complete.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise FileExistsError(f"{dest} exists; pass overwrite=True (CLI: --overwrite) to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=f".tmp-{os.getpid()}", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (memory bounded)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def update_hash_with_array(h: Any, array: np.ndarray, chunk_rows: int = 1 << 16) -> None:
    """Feed an array's dtype, shape and raw bytes into a hashlib object, chunk by chunk."""
    h.update(str(array.dtype.str).encode())
    h.update(str(tuple(array.shape)).encode())
    if array.ndim == 0 or array.shape[0] == 0:
        h.update(np.ascontiguousarray(array).tobytes())
        return
    for start in range(0, array.shape[0], chunk_rows):
        h.update(np.ascontiguousarray(array[start : start + chunk_rows]).tobytes())
