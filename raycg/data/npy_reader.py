"""Reading ``.npy`` files in row chunks without memory maps (the reader shared by validation and importers).

:class:`NpyArray` reads rows of a ``.npy`` file by seeking (no memory map, so resident memory stays at
one chunk), checks the file length against its header (a truncated file is named, not half-read) and
can hash the bytes it reads sequentially. It lives apart from the writer (:mod:`raycg.data.streaming`)
so that validation, which the writer calls, never imports the writer.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from raycg.errors import DatasetError, InputError
from raycg.utils.io import not_regular_file


class NpyArray:
    """A read-only ``.npy`` (or one member of an ``.npz``) read in row chunks.

    ``.npz`` members are loaded whole (they may be compressed); ``key`` picks the member (default:
    ``forces`` if present, else the only one).
    """

    def __init__(self, path: str | os.PathLike, key: str | None = None):
        self.path = Path(path)
        self._array: np.ndarray | None = None
        self._fh = None
        problem = not_regular_file(self.path)
        if problem == "not found":
            raise InputError(f"array file not found: {self.path}", hint="check the path")
        if problem is not None:
            raise InputError(f"{self.path}: {problem}", hint="give a .npy or .npz file")
        if self.path.suffix.lower() == ".npz":
            self._open_npz(key)
            return
        try:
            fh = open(self.path, "rb")
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        except (ValueError, OSError, EOFError) as exc:
            raise DatasetError(f"unreadable .npy file ({str(exc).splitlines()[0]})", where=str(self.path),
                               hint="is it a NumPy .npy file? re-create it") from None
        if dtype.hasobject:
            fh.close()
            raise DatasetError("array holds Python objects (pickled); refusing to load it", where=str(self.path),
                               hint="save a numeric array")
        self.shape, self.dtype, self.offset = tuple(shape), np.dtype(dtype), fh.tell()
        need = self.offset + int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        have = os.path.getsize(self.path)
        if have < need:
            fh.close()
            raise DatasetError(f"truncated array file: header says shape {self.shape} {self.dtype} "
                               f"({need} bytes) but the file has {have} bytes", where=str(self.path),
                               hint="the copy/download was cut short; fetch or re-create the file")
        if fortran:
            fh.close()
            self._array = np.load(self.path, mmap_mode="r")
            return
        self._fh = fh
        self._row_elems = int(np.prod(self.shape[1:], dtype=np.int64)) if len(self.shape) > 1 else 1

    def _open_npz(self, key: str | None) -> None:
        try:
            with np.load(self.path, allow_pickle=False) as z:
                keys = list(z.keys())
                if key is None:
                    key = "forces" if "forces" in keys else (keys[0] if len(keys) == 1 else None)
                if key is None or key not in keys:
                    raise InputError(f"choose the array with --forces-key; members: {keys}", where=str(self.path))
                self._array = np.asarray(z[key])
        except (ValueError, OSError, EOFError) as exc:
            raise DatasetError(f"unreadable or truncated .npz file ({str(exc).splitlines()[0]})",
                               where=str(self.path), hint="re-create the file") from None
        self.shape, self.dtype = self._array.shape, self._array.dtype

    _raycg_lazy_array = True  # compute_content_hash / validate_dataset read it in row chunks
    _SPAN_BYTES = 64 << 20

    def __len__(self) -> int:
        return int(self.shape[0]) if self.shape else 0

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, index) -> np.ndarray:
        """Rows by slice or by an integer index array (read by seeking, never mapped).

        Indices are read in windows of at most ``_SPAN_BYTES`` of the file (one read per window, so a
        sparse sample of a long file costs a few large reads, not one read per row).
        """
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            return self.read(start, stop)[::step] if step > 0 else np.array(self.read(0, len(self))[index])
        idx = np.asarray(index, np.int64).reshape(-1)
        if idx.size == 0:
            return np.empty((0,) + tuple(self.shape[1:]), self.dtype)
        row_bytes = self.dtype.itemsize * (int(np.prod(self.shape[1:], dtype=np.int64)) if self.ndim > 1 else 1)
        rows = max(1, self._SPAN_BYTES // row_bytes)
        order = np.argsort(idx, kind="stable")
        sidx = idx[order]
        out = np.empty((idx.size,) + tuple(self.shape[1:]), self.dtype)
        start = 0
        while start < sidx.size:
            lo = int(sidx[start])
            stop = int(np.searchsorted(sidx, lo + rows, side="left"))
            out[order[start:stop]] = self.read(lo, int(sidx[stop - 1]) + 1)[sidx[start:stop] - lo]
            start = stop
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as a new array."""
        if self._array is not None:
            return np.array(self._array[start:stop])
        stop = min(stop, len(self))
        n = max(0, stop - start)
        self._fh.seek(self.offset + start * self._row_elems * self.dtype.itemsize)
        out = np.fromfile(self._fh, dtype=self.dtype, count=n * self._row_elems)
        if out.size != n * self._row_elems:
            raise DatasetError(f"short read at rows {start}:{stop}", where=str(self.path), hint="file truncated?")
        return out.reshape((n,) + self.shape[1:])

    def iter_chunks(self, size: int, sha256: hashlib._Hash | None = None) -> Iterable[np.ndarray]:
        """Rows in order, ``size`` at a time; feeds every file byte to ``sha256`` when given."""
        if sha256 is not None:
            with open(self.path, "rb") as fh:
                sha256.update(fh.read(getattr(self, "offset", 0)) if self._fh is not None else fh.read())
        for s in range(0, len(self), size):
            block = self.read(s, s + size)
            if sha256 is not None and self._fh is not None:
                sha256.update(block.tobytes())
            yield block

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> NpyArray:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
