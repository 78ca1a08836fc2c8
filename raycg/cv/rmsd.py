"""Cα RMSD to a native structure (Å), shared by the embedded reference, scoring and reports."""

from __future__ import annotations

import numpy as np

from raycg import units as U

#: frames per mdtraj call (bounded memory on memory-mapped inputs)
RMSD_CHUNK = 500_000


def _simple_topology(n: int):
    import mdtraj

    top = mdtraj.Topology()
    chain = top.add_chain()
    for i in range(n):
        top.add_atom("CA", mdtraj.element.carbon, top.add_residue("CG", chain, resSeq=i + 1))
    return top


def rmsd_to(xyz_A: np.ndarray, native_A: np.ndarray, *, atoms: np.ndarray | None = None,
            stride: int = 1) -> np.ndarray:
    """Cα RMSD (Å) of frames ``xyz_A[::stride]`` (``[N, B, 3]``, restricted to ``atoms``) to
    ``native_A`` ``[n, 3]`` after optimal superposition (mdtraj's QCP; proper rotations only, so a
    mirror image is *not* superposable). Reads ``xyz_A`` (e.g. a memory map) chunk by chunk."""
    import mdtraj

    n = native_A.shape[0]
    top = _simple_topology(n)
    ref = mdtraj.Trajectory((np.asarray(native_A, np.float32) * np.float32(U.ANGSTROM_TO_NM))[None], top)
    total = len(range(0, len(xyz_A), stride))
    out = np.empty(total, dtype=np.float64)
    step = RMSD_CHUNK * stride
    k = 0
    for s in range(0, len(xyz_A), step):
        x = np.asarray(xyz_A[s : s + step : stride], dtype=np.float32)
        if atoms is not None:
            x = x[:, atoms]
        out[k : k + len(x)] = mdtraj.rmsd(mdtraj.Trajectory(x * np.float32(U.ANGSTROM_TO_NM), top), ref)
        k += len(x)
    return out * U.NM_TO_ANGSTROM


def mirror(native_A: np.ndarray) -> np.ndarray:
    """The mirror image (z -> -z) of a structure."""
    return np.asarray(native_A, np.float64) * np.array([1.0, 1.0, -1.0])
