"""Internal coordinates in numpy (fitting) and torch (energies): distances Å, angles and dihedrals rad.

Conventions (shared by both): angle θ(i,j,k) ∈ [0, π] at the middle bead j, computed as
atan2(|u×v|, u·v) (stable near 0 and π); dihedral φ(i,j,k,l) ∈ (−π, π] with the IUPAC sign
(same as mdtraj): φ = atan2(|b2| b1·(b2×b3), (b1×b2)·(b2×b3)).
"""

from __future__ import annotations

import numpy as np
import torch


def to_soa(x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Coordinates [F,B,3] -> contiguous [B,3,F] of ``dtype`` (fast row gathers for the *_soa functions)."""
    return np.ascontiguousarray(np.asarray(x).transpose(1, 2, 0), dtype=dtype)


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Cross product of [N,3,F] arrays along axis 1."""
    return np.stack([u[:, 1] * v[:, 2] - u[:, 2] * v[:, 1],
                     u[:, 2] * v[:, 0] - u[:, 0] * v[:, 2],
                     u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]], axis=1)


def _dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[:, 0] * v[:, 0] + u[:, 1] * v[:, 1] + u[:, 2] * v[:, 2]


def soa_distances(xs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Distances [N,F] (Å) of pairs idx [N,2] in [B,3,F] coordinates."""
    d = xs[idx[:, 1]] - xs[idx[:, 0]]
    return np.sqrt(_dot(d, d))


def soa_angles(xs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Bond angles [N,F] (rad, 0..π) of triples idx [N,3] in [B,3,F] coordinates."""
    u = xs[idx[:, 0]] - xs[idx[:, 1]]
    v = xs[idx[:, 2]] - xs[idx[:, 1]]
    c = _cross(u, v)
    return np.arctan2(np.sqrt(_dot(c, c)), _dot(u, v))


def soa_dihedrals(xs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Dihedral angles [N,F] (rad, −π..π) of quadruples idx [N,4] in [B,3,F] coordinates."""
    b1 = xs[idx[:, 1]] - xs[idx[:, 0]]
    b2 = xs[idx[:, 2]] - xs[idx[:, 1]]
    b3 = xs[idx[:, 3]] - xs[idx[:, 2]]
    n2 = _cross(b2, b3)
    y = np.sqrt(_dot(b2, b2)) * _dot(b1, n2)
    return np.arctan2(y, _dot(_cross(b1, b2), n2))


def np_distances(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Distances [F,N] (Å) of bead pairs idx [N,2] in coordinates x [F,B,3]."""
    return soa_distances(to_soa(x), np.asarray(idx)).T


def np_angles(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Bond angles [F,N] (rad, 0..π) of triples idx [N,3] (vertex in the middle)."""
    return soa_angles(to_soa(x), np.asarray(idx)).T


def np_dihedrals(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Dihedral angles [F,N] (rad, −π..π) of quadruples idx [N,4]."""
    return soa_dihedrals(to_soa(x), np.asarray(idx)).T


def _norm(v: torch.Tensor) -> torch.Tensor:
    # sqrt with a tiny floor: finite gradient even for a (degenerate) zero vector
    return torch.sqrt(torch.clamp((v * v).sum(-1), min=torch.finfo(v.dtype).tiny))


def gather(pos: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """pos[R,B,3], idx[N,m] -> [R,N,m,3] with one index_select (its backward, index_add, is
    several times faster on CPU than the accumulate-scatter of ``pos[:, idx]``)."""
    return pos.index_select(1, idx.reshape(-1)).reshape(pos.shape[0], idx.shape[0], idx.shape[1], 3)


def torch_distances(pos: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Distances [R,N] (Å) of bead pairs idx [N,2] in positions pos [R,B,3]."""
    g = gather(pos, idx)
    return _norm(g[:, :, 1] - g[:, :, 0])


def torch_angles(pos: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Bond angles [R,N] (rad) of triples idx [N,3]."""
    g = gather(pos, idx)
    u = g[:, :, 0] - g[:, :, 1]
    v = g[:, :, 2] - g[:, :, 1]
    return torch.atan2(_norm(torch.linalg.cross(u, v)), (u * v).sum(-1))


def torch_dihedrals(pos: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Dihedral angles [R,N] (rad) of quadruples idx [N,4]."""
    g = gather(pos, idx)
    b = g[:, :, 1:] - g[:, :, :-1]            # [R,N,3 bond vectors,3]
    b1, b2, b3 = b[:, :, 0], b[:, :, 1], b[:, :, 2]
    n1 = torch.linalg.cross(b1, b2)
    n2 = torch.linalg.cross(b2, b3)
    y = _norm(b2) * (b1 * n2).sum(-1)
    x = (n1 * n2).sum(-1)
    return torch.atan2(y, x)
