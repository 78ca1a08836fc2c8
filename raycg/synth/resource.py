"""The embedded reference as shipped in the package: ``raycg/resources/embedded_cln025.npz``.

The generator rounds coordinates to a grid of ``COORD_RESOLUTION_A`` (finer than the 0.01 Å of a GROMACS
xtc file) and forces to ``FORCE_RESOLUTION`` (their per-component spread is ~8 kcal/mol/Å, mostly noise),
so the float32 arrays are exactly ``integer × resolution`` and pack losslessly: coordinates as
per-trajectory frame-to-frame differences, forces as integers, both byte-shuffled (high bytes
together) and LZMA-compressed in a zip that ``numpy.load`` reads. The member ``meta.json`` holds the
dataset's metadata, content hash included.

:func:`unpack_resource` writes the dataset directory in about a second and checks that the content hash
of what it wrote equals the recorded one; :func:`pack_resource` makes the resource from a dataset made
by :func:`raycg.synth.make_embedded_reference` (``python -m raycg.synth.resource DATASET``).
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from importlib import resources
from pathlib import Path

import numpy as np

from raycg.errors import DatasetError

RESOURCE_NAME = "embedded_cln025.npz"
#: coordinates are multiples of this (Å) and forces of FORCE_RESOLUTION (kcal/mol/Å)
COORD_RESOLUTION_A = 1e-3
FORCE_RESOLUTION = 1e-2
LAYOUT = "raycg-embedded-resource-1"


def quantize(x: np.ndarray, resolution: float) -> np.ndarray:
    """``x`` rounded to a multiple of ``resolution``, as float32 (what the generator saves); zeros are +0.0
    (a rounded small negative value would be -0.0, which an integer cannot carry)."""
    return (np.rint(np.asarray(x, np.float64) / resolution) * resolution + 0.0).astype(np.float32)


def _to_int(x: np.ndarray, resolution: float, what: str) -> np.ndarray:
    q = np.rint(np.asarray(x, np.float64) / resolution).astype(np.int64)
    back = (q * resolution).astype(np.float32)
    if back.tobytes() != np.ascontiguousarray(x, np.float32).tobytes():      # bitwise (-0.0 is not 0.0)
        raise DatasetError(f"{what} are not on the {resolution:g} grid; the resource would not be lossless",
                           hint="pack a dataset made by raycg.synth.make_embedded_reference")
    return q


def _shuffle(a: np.ndarray) -> np.ndarray:
    """int32 array -> [4, N] uint8 byte planes (little-endian)."""
    return np.ascontiguousarray(np.asarray(a, "<i4").reshape(-1).view(np.uint8).reshape(-1, 4).T)


def _unshuffle(planes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return np.ascontiguousarray(planes.T).view("<i4").reshape(shape)


def _int32(q: np.ndarray, what: str) -> np.ndarray:
    if q.size and (q.min() < np.iinfo(np.int32).min or q.max() > np.iinfo(np.int32).max):
        raise DatasetError(f"{what} overflow int32 at this resolution")
    return q.astype(np.int32)


def pack_resource(dataset: str | os.PathLike, dest: str | os.PathLike | None = None) -> Path:
    """Write the compact resource of ``dataset`` to ``dest`` (default: the packaged resource path)."""
    from raycg.data.format import load
    from raycg.utils.io import atomic_path

    ds = load(dataset, mmap=False)
    if ds.forces is None or ds.weights is not None:
        raise DatasetError(f"{dataset}: the embedded resource needs forces and no weights")
    off = np.asarray(ds.traj_offsets, np.int64)
    qc = _to_int(ds.coords, COORD_RESOLUTION_A, "coordinates")
    dc = qc.copy()
    for a, b in zip(off[:-1], off[1:]):
        dc[a + 1:b] = qc[a + 1:b] - qc[a:b - 1]               # first frame absolute, then differences
    qf = _to_int(ds.forces, FORCE_RESOLUTION, "forces")
    meta = ds.meta.model_copy(deep=True)
    meta.content_hash = ds.content_hash
    arrays = {
        "coords_delta": _shuffle(_int32(dc, "coordinates")), "forces": _shuffle(_int32(qf, "forces")),
        "traj_offsets": off, "shape": np.asarray(ds.coords.shape, np.int64),
        "resolution": np.asarray([COORD_RESOLUTION_A, FORCE_RESOLUTION]),
    }
    dest = Path(dest) if dest is not None else packaged_resource_path(must_exist=False)
    with atomic_path(dest) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_LZMA) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            zf.writestr(f"{name}.npy", buf.getvalue())
        zf.writestr("meta.json", json.dumps({"layout": LAYOUT, "meta": meta.model_dump(mode="json")}, indent=1))
    return dest


def packaged_resource_path(must_exist: bool = True) -> Path:
    """Path of ``raycg/resources/embedded_cln025.npz``."""
    path = Path(str(resources.files("raycg").joinpath("resources", RESOURCE_NAME)))
    if must_exist and not path.is_file():
        raise DatasetError(f"packaged embedded reference {path} is missing",
                           hint="reinstall raycg, or make the dataset with 'raycg data synth --out PATH' and use PATH")
    return path


def resource_meta(path: str | os.PathLike | None = None) -> dict:
    """The dataset metadata recorded in the resource (a dict of ``DatasetMeta`` fields)."""
    path = Path(path) if path is not None else packaged_resource_path()
    try:
        with zipfile.ZipFile(path) as zf:
            doc = json.loads(zf.read("meta.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path}: unreadable embedded resource ({exc})", hint="reinstall raycg") from None
    if doc.get("layout") != LAYOUT:
        raise DatasetError(f"{path}: resource layout {doc.get('layout')!r}, expected {LAYOUT!r}",
                           hint="reinstall raycg")
    return doc["meta"]


def unpack_resource(out_dir: str | os.PathLike, path: str | os.PathLike | None = None, *,
                    overwrite: bool = False) -> Path:
    """Write the dataset directory of the resource (atomically) and check its content hash."""
    from raycg.data.format import CGDataset, DatasetMeta, save

    path = Path(path) if path is not None else packaged_resource_path()
    meta = DatasetMeta.model_validate(resource_meta(path))
    with np.load(path, allow_pickle=False) as z:
        shape = tuple(int(s) for s in z["shape"])
        res_c, res_f = (float(r) for r in z["resolution"])
        off = np.asarray(z["traj_offsets"], np.int64)
        qc = _unshuffle(z["coords_delta"], shape).astype(np.int64)
        qf = _unshuffle(z["forces"], shape)
    for a, b in zip(off[:-1], off[1:]):
        qc[a:b] = np.cumsum(qc[a:b], axis=0)
    want = meta.content_hash
    ds = CGDataset(coords=(qc * res_c).astype(np.float32), forces=(qf * res_f).astype(np.float32),
                   traj_offsets=off, meta=meta)
    save(ds, out_dir, overwrite=overwrite)
    if ds.meta.content_hash != want:
        import shutil

        shutil.rmtree(out_dir, ignore_errors=True)
        raise DatasetError(f"{path}: unpacked content hash {ds.meta.content_hash} differs from the recorded {want}",
                           hint="the resource is corrupt: reinstall raycg")
    return Path(out_dir)


if __name__ == "__main__":  # python -m raycg.synth.resource DATASET [DEST]
    if len(sys.argv) not in (2, 3):
        print("usage: python -m raycg.synth.resource DATASET [DEST]", file=sys.stderr)
        sys.exit(2)
    out = pack_resource(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else None)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
