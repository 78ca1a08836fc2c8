"""Internal coordinates in numpy (fitting) and torch (energies): distances Å, angles and dihedrals rad.

Conventions (shared by both): angle θ(i,j,k) ∈ [0, π] at the middle bead j, computed as
atan2(|u×v|, u·v) (stable near 0 and π); dihedral φ(i,j,k,l) ∈ (−π, π] with the IUPAC sign
(same as mdtraj): φ = atan2(|b2| b1·(b2×b3), (b1×b2)·(b2×b3)).
"""

from __future__ import annotations

import numpy as np
import torch


def np_distances(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Distances [F,N] (Å) of bead pairs idx [N,2] in coordinates x [F,B,3]."""
    d = x[:, idx[:, 1]] - x[:, idx[:, 0]]
    return np.sqrt(np.einsum("fnc,fnc->fn", d, d))


def np_angles(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Bond angles [F,N] (rad, 0..π) of triples idx [N,3] (vertex in the middle)."""
    u = x[:, idx[:, 0]] - x[:, idx[:, 1]]
    v = x[:, idx[:, 2]] - x[:, idx[:, 1]]
    c = np.cross(u, v)
    return np.arctan2(np.sqrt(np.einsum("fnc,fnc->fn", c, c)), np.einsum("fnc,fnc->fn", u, v))


def np_dihedrals(x: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Dihedral angles [F,N] (rad, −π..π) of quadruples idx [N,4]."""
    b1 = x[:, idx[:, 1]] - x[:, idx[:, 0]]
    b2 = x[:, idx[:, 2]] - x[:, idx[:, 1]]
    b3 = x[:, idx[:, 3]] - x[:, idx[:, 2]]
    n1 = np.cross(b1, b2)
    n2 = np.cross(b2, b3)
    b2n = np.sqrt(np.einsum("fnc,fnc->fn", b2, b2))
    y = b2n * np.einsum("fnc,fnc->fn", b1, n2)
    xx = np.einsum("fnc,fnc->fn", n1, n2)
    return np.arctan2(y, xx)


def _norm(v: torch.Tensor) -> torch.Tensor:
    # sqrt with a tiny floor: finite gradient even for a (degenerate) zero vector
    return torch.sqrt(torch.clamp((v * v).sum(-1), min=torch.finfo(v.dtype).tiny))


def torch_distances(pos: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Distances [R,N] (Å) of bead pairs idx [N,2] in positions pos [R,B,3]."""
    return _norm(pos[:, idx[:, 1]] - pos[:, idx[:, 0]])


def torch_angles(pos: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Bond angles [R,N] (rad) of triples idx [N,3]."""
    u = pos[:, idx[:, 0]] - pos[:, idx[:, 1]]
    v = pos[:, idx[:, 2]] - pos[:, idx[:, 1]]
    return torch.atan2(_norm(torch.linalg.cross(u, v)), (u * v).sum(-1))


def torch_dihedrals(pos: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Dihedral angles [R,N] (rad) of quadruples idx [N,4]."""
    b1 = pos[:, idx[:, 1]] - pos[:, idx[:, 0]]
    b2 = pos[:, idx[:, 2]] - pos[:, idx[:, 1]]
    b3 = pos[:, idx[:, 3]] - pos[:, idx[:, 2]]
    n1 = torch.linalg.cross(b1, b2)
    n2 = torch.linalg.cross(b2, b3)
    y = _norm(b2) * (b1 * n2).sum(-1)
    x = (n1 * n2).sum(-1)
    return torch.atan2(y, x)
