"""Bounded-memory dataset writing for importers.

Chunked reading lives in :mod:`raycg.data.npy_reader` (:class:`NpyArray`, re-exported here).
:func:`write_dataset_streaming` writes a dataset chunk by chunk into ``.npy`` files created with
``np.lib.format.open_memmap`` inside a temporary directory that is renamed into place only when
complete and valid.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from raycg.data.format import CGDataset, DatasetMeta, compute_content_hash, write_topology_pdb
from raycg.data.npy_reader import NpyArray
from raycg.data.validate import check_offsets, validate_dataset
from raycg.errors import DatasetError, InputError
from raycg.utils.io import atomic_directory
from raycg.utils.progress import Progress

__all__ = ["NpyArray", "write_dataset_streaming"]


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
    the last chunk, so a chunk generator may still fill in provenance (source hashes). The directory
    appears at ``out`` only after every frame is written, the content hash computed and (with
    ``validate``) the dataset checked by :func:`raycg.data.validate.validate_dataset`. Returns
    ``(path, ValidationReport | None)``.
    """
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
        except DatasetError as exc:  # name the would-be output, and say that nothing was written there
            msg = str(exc).replace(f"{tmp}{os.sep}", "").replace(str(tmp), str(out))
            raise DatasetError(f"refusing to write {out} (nothing written): {msg}") from None
        finally:
            cr.close()
            if fr is not None:
                fr.close()
    return out, report
