"""Internal coordinates in torch: one implementation for energies and fits (numpy by conversion).

Positions are coordinate-major, ``P[3, B, R]`` (x/y/z, bead, replica or frame), so that gathers
copy contiguous rows and every operation runs over long replica vectors. A term index
``idx[m, N]`` holds one row of bead indices per position in the term; features are ``[N, R]``.
Units Å and rad. Angle θ(i,j,k) ∈ [0, π] at the middle bead, atan2(|u×v|, u·v); dihedral
φ(i,j,k,l) ∈ (−π, π] with the IUPAC sign (as mdtraj); chirality χ(a,b,c,s) = u·(v×w)/(|u||v||w|)
with u, v, w the vectors from bead b to a, c and s.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


def coordinate_major(pos: Tensor) -> Tensor:
    """Positions ``pos[R, B, 3]`` (or one frame ``[B, 3]``) -> contiguous ``P[3, B, R]``."""
    if pos.dim() == 2:
        pos = pos.unsqueeze(0)
    return pos.permute(2, 1, 0).contiguous()


def from_numpy(x: np.ndarray, dtype: np.dtype | None = None) -> Tensor:
    """Coordinates ``x[F, B, 3]`` (numpy, any layout) -> ``P[3, B, F]`` in ``dtype`` (default:
    the array's, at least float32)."""
    x = np.asarray(x)
    dtype = np.result_type(x.dtype, np.float32) if dtype is None else dtype
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 1, 0), dtype=dtype))


def term_index(atoms: np.ndarray | Tensor, arity: int) -> Tensor:
    """Bead indices ``atoms[N, arity]`` -> contiguous int64 ``idx[arity, N]``."""
    a = torch.as_tensor(np.asarray(atoms, dtype=np.int64).reshape(-1, arity))
    return a.T.contiguous()


def dot(a: Tensor, b: Tensor) -> Tensor:
    """Dot product over the leading (x, y, z) axis of coordinate-major tensors ``[3, ...]``."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def norm(v: Tensor) -> Tensor:
    """|v| over the leading axis, with a tiny floor (finite gradient for a zero vector)."""
    return torch.sqrt(torch.clamp(dot(v, v), min=torch.finfo(v.dtype).tiny))


def rows(P: Tensor, idx: Tensor) -> list[Tensor]:
    """The term beads' positions: one ``[3, N, R]`` tensor per row of ``idx``."""
    return [P.index_select(1, i) for i in idx]


def distances(P: Tensor, idx: Tensor) -> Tensor:
    """Distances ``[N, R]`` (Å) of bead pairs ``idx[2, N]``."""
    a, b = rows(P, idx)
    return norm(b - a)


def angles(P: Tensor, idx: Tensor) -> Tensor:
    """Bond angles ``[N, R]`` (rad, 0..π) of triples ``idx[3, N]`` (vertex in the middle)."""
    a, b, c = rows(P, idx)
    u, v = a - b, c - b
    return torch.atan2(norm(torch.linalg.cross(u, v, dim=0)), dot(u, v))


def cos_angles(P: Tensor, idx: Tensor) -> Tensor:
    """cos θ ``[N, R]`` of triples ``idx[3, N]``."""
    a, b, c = rows(P, idx)
    u, v = a - b, c - b
    return dot(u, v) / (torch.sqrt(dot(u, u)) * torch.sqrt(dot(v, v)))


class DihedralFrame(NamedTuple):
    """Bond vectors b1..b3 ``[3, N, R]``, normals m = b1×b2 and n = b2×b3, |b2| ``[N, R]`` and
    φ's cosine and sine up to the common factor |m||n|: x = m·n, y = (m×n)·b2/|b2|."""

    b1: Tensor
    b2: Tensor
    b3: Tensor
    m: Tensor
    n: Tensor
    lb2: Tensor
    x: Tensor
    y: Tensor


def dihedral_frame(P: Tensor, idx: Tensor) -> DihedralFrame:
    """The vectors of the dihedrals ``idx[4, N]`` (see :class:`DihedralFrame`)."""
    p0, p1, p2, p3 = rows(P, idx)
    b1, b2, b3 = p1 - p0, p2 - p1, p3 - p2
    m = torch.linalg.cross(b1, b2, dim=0)
    n = torch.linalg.cross(b2, b3, dim=0)
    lb2 = torch.sqrt(dot(b2, b2))
    x = dot(m, n)
    y = dot(torch.linalg.cross(m, n, dim=0), b2) / lb2
    return DihedralFrame(b1, b2, b3, m, n, lb2, x, y)


def dihedrals(P: Tensor, idx: Tensor) -> Tensor:
    """Dihedral angles ``[N, R]`` (rad, −π..π) of quadruples ``idx[4, N]``."""
    f = dihedral_frame(P, idx)
    return torch.atan2(f.y, f.x)


def chirality(P: Tensor, idx: Tensor) -> Tensor:
    """Normalised triple products χ ``[N, R]`` (−1..1) of quadruples (a, b, c, s) ``idx[4, N]``."""
    a, b, c, s = rows(P, idx)
    u, v, w = a - b, c - b, s - b
    inv_n = 1.0 / torch.sqrt(dot(u, u) * dot(v, v) * dot(w, w))
    return dot(u, torch.linalg.cross(v, w, dim=0)) * inv_n


def numpy_features(feature, x: np.ndarray, atoms: np.ndarray, arity: int) -> np.ndarray:
    """``feature`` (one of the functions above) of numpy coordinates ``x[F, B, 3]`` -> ``[F, N]``
    numpy, in the precision of ``x`` (at least float32)."""
    with torch.no_grad():
        return feature(from_numpy(x), term_index(atoms, arity)).numpy().T
