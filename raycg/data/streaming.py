"""Bounded-memory array I/O for importers: chunked .npy reading and incremental dataset writing.

:class:`NpyArray` reads rows of a ``.npy`` file by seeking (no memory map, so resident memory stays at
one chunk), checks the file length against its header (a truncated file is named, not half-read) and
can hash the bytes it reads sequentially. :func:`write_dataset_streaming` writes a dataset chunk by
chunk into ``.npy`` files created with ``np.lib.format.open_memmap`` inside a temporary directory that
is renamed into place only when complete and valid.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from raycg.data.format import CGDataset, DatasetMeta, compute_content_hash, write_topology_pdb
from raycg.errors import DatasetError, InputError
from raycg.utils.io import atomic_directory
from raycg.utils.progress import Progress


class NpyArray:
    """A read-only ``.npy`` (or one member of an ``.npz``) read in row chunks.

    ``.npz`` members are loaded whole (they may be compressed); ``key`` picks the member (default:
    ``forces`` if present, else the only one).
    """

    def __init__(self, path: str | os.PathLike, key: str | None = None):
        self.path = Path(path)
        self._array: np.ndarray | None = None
        self._fh = None
        if not self.path.is_file():
            raise InputError(f"array file not found: {self.path}", hint="check the path")
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
        """Rows by slice or by an increasing integer index array (read by seeking, never mapped)."""
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            return self.read(start, stop)[::step] if step > 0 else np.array(self.read(0, len(self))[index])
        idx = np.asarray(index, np.int64).reshape(-1)
        if idx.size == 0:
            return np.empty((0,) + tuple(self.shape[1:]), self.dtype)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        row_bytes = self.dtype.itemsize * (int(np.prod(self.shape[1:], dtype=np.int64)) if self.ndim > 1 else 1)
        if (hi - lo) * row_bytes <= self._SPAN_BYTES:
            return self.read(lo, hi)[idx - lo]
        return np.concatenate([self.read(int(i), int(i) + 1) for i in idx])

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


class _NpyOut:
    """An output ``.npy`` created at full size with open_memmap, then filled by positioned writes."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype=np.float32):
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
        self.offset = int(mm.offset)
        del mm
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self.fh = open(path, "r+b")

    def write(self, start: int, block: np.ndarray) -> None:
        self.fh.seek(self.offset + start * self.row_bytes)
        self.fh.write(np.ascontiguousarray(block, dtype=self.dtype).tobytes())

    def close(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())
        self.fh.close()


def write_dataset_streaming(out: str | os.PathLike, meta: DatasetMeta, traj_offsets: np.ndarray,
                            chunks: Iterable[tuple[np.ndarray, np.ndarray | None]], *,
                            weights: np.ndarray | None = None, overwrite: bool = False,
                            validate: bool = True, progress: bool = True, desc: str = "import"):
    """Write a dataset from ``chunks`` of (coords Å, forces kcal/mol/Å or None), frames in order.

    ``meta`` must have n_frames/n_beads/has_forces set; it is completed in place (counts, hash) after
    the last chunk, so a chunk generator may still fill in provenance (source hashes). The directory appears at ``out`` only after
    every frame is written, the content hash computed and (with ``validate``) the dataset checked by
    :func:`raycg.data.validate.validate_dataset`. Returns ``(path, ValidationReport | None)``.
    """
    from raycg.data.validate import check_offsets, validate_dataset

    out = Path(out)
    n, b = meta.n_frames, meta.n_beads
    offsets = np.asarray(traj_offsets, np.int64)
    check_offsets(offsets, n, "trajectory boundaries")
    meta.n_trajectories = int(len(offsets) - 1)
    meta.has_weights = weights is not None
    if out.exists() and not overwrite:
        raise InputError(f"output {out} exists", hint="choose another path or pass --overwrite")
    report = None
    with atomic_directory(out, overwrite=overwrite) as tmp:
        co = _NpyOut(tmp / "coords.npy", (n, b, 3))
        fo = _NpyOut(tmp / "forces.npy", (n, b, 3)) if meta.has_forces else None
        pos, first = 0, None
        with Progress(n, desc=desc, unit="frames", disable=not progress) as bar:
            for c, f in chunks:
                k = len(c)
                if c.shape[1:] != (b, 3) or (fo is not None and (f is None or f.shape != c.shape)):
                    raise DatasetError(f"chunk at frame {pos}: coordinates/forces shape mismatch: coords "
                                       f"{tuple(c.shape)}, forces {None if f is None else tuple(f.shape)}, "
                                       f"expected [*, {b}, 3]")
                if pos + k > n:
                    raise DatasetError(f"more frames than announced ({pos + k} > {n})")
                if first is None and k:
                    first = np.array(c[0], np.float32)
                co.write(pos, c)
                if fo is not None:
                    fo.write(pos, f)
                pos += k
                bar.update(k)
        co.close()
        if fo is not None:
            fo.close()
        if pos != n:
            raise DatasetError(f"got {pos} frames but expected {n}", hint="inputs changed while importing?")
        np.save(tmp / "traj_offsets.npy", offsets)
        if weights is not None:
            np.save(tmp / "weights.npy", np.asarray(weights, np.float64))
        # read back by seeking, not by memory map, so resident memory stays at one chunk
        cr = NpyArray(tmp / "coords.npy")
        fr = NpyArray(tmp / "forces.npy") if fo is not None else None
        ds = CGDataset(coords=cr, forces=fr, traj_offsets=offsets, meta=meta,  # type: ignore[arg-type]
                       weights=None if weights is None else np.asarray(weights, np.float64))
        meta.content_hash = compute_content_hash(ds)
        meta.provenance = dict(meta.provenance, data_hash=meta.content_hash)
        write_topology_pdb(tmp / "topology.pdb", meta.beads, np.asarray(meta.bonds, np.int64).reshape(-1, 2),
                           first if first is not None else np.zeros((b, 3), np.float32))
        (tmp / "meta.json").write_text(meta.model_dump_json(indent=2) + "\n")
        try:
            if validate:
                ds.path = tmp
                report = validate_dataset(ds, check_hash=False)
                report.path = str(out)
        except DatasetError as exc:
            raise DatasetError(str(exc).replace(str(tmp), str(out))) from None
        finally:
            cr.close()
            if fr is not None:
                fr.close()
    return out, report
