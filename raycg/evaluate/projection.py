"""The one projection evaluate uses for reference and model frames: each frame's TIC coordinates
depend only on that frame.

``ReferenceTICA.transform`` contracts the features with a BLAS matrix product, whose rounding depends
on how many rows are multiplied at once (OpenBLAS picks kernels and blockings by shape): the same
frame projected inside the whole reference and inside one replica differed in the last bit (2.7e-15),
enough to move a frame across a bin edge, so identical samples did not give identical histograms
(KL(ref‖model) = 3.7e-4 instead of 0). Here the contraction is a per-row sum along the contiguous
feature axis (NumPy's pairwise summation over one row, whatever the number of rows), in float64, so
a frame gets bit-identical coordinates in any batch, chunk or position.
"""

from __future__ import annotations

import numpy as np

from raycg.cv.tica import ReferenceTICA
from raycg.errors import InputError

#: Feature values (floats) per chunk: bounds the float64 temporaries for any number of beads.
CHUNK_VALUES = 1 << 21


def project(tica: ReferenceTICA, coords: np.ndarray, k: int, *, where: str | None = None) -> np.ndarray:
    """TIC coordinates ``[F, k]`` (float64) of ``coords`` ``[F, B, 3]`` (Å), frame by frame exact.

    Same values as ``tica.transform`` up to rounding, but row-deterministic (see the module docstring).
    """
    coords = coords if isinstance(coords, np.ndarray) else np.asarray(coords)
    if coords.ndim != 3 or coords.shape[-1] != 3:
        raise InputError(f"coordinates must have shape [frames, beads, 3], got {tuple(coords.shape)}", where=where)
    tica.check_compatible(int(coords.shape[1]), where=where)
    if not 1 <= k <= tica.dim:
        raise InputError(f"asked for {k} TICA components but the reference TICA has {tica.dim}",
                         hint="lower n_components or refit the TICA with a larger dim")
    u = [np.ascontiguousarray(tica.coefficients[:, c], dtype=np.float64) for c in range(k)]
    mean = np.asarray(tica.mean, dtype=np.float64)
    out = np.empty((coords.shape[0], k), dtype=np.float64)
    step = max(1, CHUNK_VALUES // max(tica.n_features, 1))
    for s in range(0, coords.shape[0], step):
        x = tica.features(coords[s : s + step]).astype(np.float64)
        x -= mean
        tmp = np.empty_like(x)
        for c in range(k):
            np.multiply(x, u[c], out=tmp)
            out[s : s + len(x), c] = tmp.sum(axis=1)
    return out
