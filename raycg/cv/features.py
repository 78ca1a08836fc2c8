"""Collective-variable features of CG coordinates, in NumPy (chunked) and in torch (differentiable).

Conventions (shared by train and evaluate):

- coordinates are ``[F, B, 3]`` (NumPy) or ``[..., B, 3]`` (torch) in Å;
- pair distances are all bead pairs ``i < j`` in row-major upper-triangle order
  (``numpy.triu_indices(B, 1)``): ``(0,1), (0,2), ..., (0,B-1), (1,2), ...``; ``B(B-1)/2`` values in Å;
- pseudo-dihedrals are the ``B-3`` dihedrals of consecutive beads ``(i, i+1, i+2, i+3)`` (IUPAC sign
  convention), encoded as ``cos φ`` and ``sin φ`` (so the features are continuous and chiral): the
  ``B-3`` cosines come first, then the ``B-3`` sines.

Feature kinds: ``"pair_distances"`` (default; the anchors' TICA features, 45 for CLN025) and
``"pair_distances+pseudo_dihedrals"`` (distances, then cosines, then sines).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from raycg.errors import InputError

if TYPE_CHECKING:
    from torch import Tensor

FEATURE_KINDS = ("pair_distances", "pair_distances+pseudo_dihedrals")

#: Frames per chunk in the NumPy feature functions (bounded temporary memory).
DEFAULT_CHUNK_FRAMES = 65536


def n_pairs(n_beads: int) -> int:
    return n_beads * (n_beads - 1) // 2


def pair_indices(n_beads: int) -> tuple[np.ndarray, np.ndarray]:
    """Bead indices ``(i, j)`` of every pair ``i < j`` in the order used by :func:`pair_distances`."""
    i, j = np.triu_indices(n_beads, 1)
    return i.astype(np.int64), j.astype(np.int64)


def feature_dim(kind: str, n_beads: int) -> int:
    """Number of features of ``kind`` for ``n_beads`` beads."""
    check_feature_kind(kind)
    d = n_pairs(n_beads)
    if kind == "pair_distances+pseudo_dihedrals":
        d += 2 * max(n_beads - 3, 0)
    return d


def check_feature_kind(kind: str) -> None:
    if kind not in FEATURE_KINDS:
        raise InputError(f"unknown TICA feature kind {kind!r}", hint=f"use one of {list(FEATURE_KINDS)}")


def _check_coords(coords: np.ndarray, what: str = "coordinates") -> np.ndarray:
    coords = np.asarray(coords) if not isinstance(coords, np.ndarray) else coords
    if coords.ndim == 2 and coords.shape[-1] == 3:
        coords = coords[None]
    if coords.ndim != 3 or coords.shape[-1] != 3:
        raise InputError(f"{what} must have shape [frames, beads, 3], got {tuple(coords.shape)}")
    if coords.shape[1] < 2:
        raise InputError(f"{what} need at least 2 beads for pair distances, got {coords.shape[1]}")
    return coords


def pair_distances(coords: np.ndarray, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES,
                   out: np.ndarray | None = None) -> np.ndarray:
    """All bead-pair distances ``|r_j - r_i|`` for ``i < j``.

    ``coords``: ``[F, B, 3]`` Å (any float dtype; memory-mapped arrays are read chunk by chunk).
    Returns float32 ``[F, B(B-1)/2]`` in Å. Work is done ``chunk_frames`` frames at a time, so the
    temporary memory is ``chunk_frames * B(B-1)/2 * 3`` floats whatever ``F`` is.
    """
    coords = _check_coords(coords)
    f, b = coords.shape[0], coords.shape[1]
    i, j = pair_indices(b)
    if out is None:
        out = np.empty((f, len(i)), dtype=np.float32)
    tmp = np.empty((len(i), min(chunk_frames, f)), dtype=np.float32)
    for s in range(0, f, chunk_frames):
        # coordinate-major layout [3, B, n]: each pair is three contiguous vector ops (~5x faster
        # than gathering [n, P, 3] blocks)
        xt = np.ascontiguousarray(np.asarray(coords[s : s + chunk_frames], dtype=np.float32).transpose(2, 1, 0))
        n = xt.shape[2]
        t = tmp[:, :n]
        for p, (a, b) in enumerate(zip(i, j)):
            dx = xt[0, b] - xt[0, a]
            dy = xt[1, b] - xt[1, a]
            dz = xt[2, b] - xt[2, a]
            t[p] = dx * dx + dy * dy + dz * dz
        np.sqrt(t, out=t)
        out[s : s + n] = t.T
    return out


def _dihedral_cos_sin_np(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos φ and sin φ of consecutive-bead dihedrals; x: [F, B, 3] -> two [F, B-3] arrays."""
    b1 = x[:, 1:-2] - x[:, :-3]
    b2 = x[:, 2:-1] - x[:, 1:-2]
    b3 = x[:, 3:] - x[:, 2:-1]
    n1 = np.cross(b1, b2)
    n2 = np.cross(b2, b3)
    b2n = np.linalg.norm(b2, axis=-1)
    cx = np.einsum("fpk,fpk->fp", n1, n2)
    sy = b2n * np.einsum("fpk,fpk->fp", b1, n2)
    r = np.sqrt(cx * cx + sy * sy)
    r = np.where(r > 0, r, 1.0)
    return cx / r, sy / r


def pseudo_dihedrals(coords: np.ndarray, *, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> np.ndarray:
    """Consecutive-bead pseudo-dihedrals as ``[cos φ_0..cos φ_{B-4}, sin φ_0..sin φ_{B-4}]`` (float32)."""
    coords = _check_coords(coords)
    f, b = coords.shape[0], coords.shape[1]
    nd = max(b - 3, 0)
    out = np.empty((f, 2 * nd), dtype=np.float32)
    if nd == 0:
        return out
    for s in range(0, f, chunk_frames):
        x = np.asarray(coords[s : s + chunk_frames], dtype=np.float64)
        c, si = _dihedral_cos_sin_np(x)
        out[s : s + len(x), :nd] = c
        out[s : s + len(x), nd:] = si
    return out


def featurize(coords: np.ndarray, kind: str = "pair_distances", *,
              chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> np.ndarray:
    """Features of ``kind`` for ``coords`` ``[F, B, 3]`` Å -> float32 ``[F, feature_dim(kind, B)]``."""
    check_feature_kind(kind)
    coords = _check_coords(coords)
    if kind == "pair_distances":
        return pair_distances(coords, chunk_frames=chunk_frames)
    dist = pair_distances(coords, chunk_frames=chunk_frames)
    dih = pseudo_dihedrals(coords, chunk_frames=chunk_frames)
    return np.concatenate([dist, dih], axis=1)


# ----------------------------------------------------------------------------------------------
# torch versions (same numbers, differentiable)


def pair_distances_torch(pos: Tensor, eps: float = 0.0) -> Tensor:
    """Differentiable pair distances: ``pos`` ``[..., B, 3]`` (Å) -> ``[..., B(B-1)/2]``, i<j order.

    Keeps the dtype and device of ``pos``. ``eps`` (Å², default 0) is added under the square root
    to keep the gradient finite for coincident beads; distances of real structures are never 0.
    """
    import torch

    if pos.shape[-1] != 3 or pos.dim() < 2:
        raise InputError(f"positions must have shape [..., beads, 3], got {tuple(pos.shape)}")
    b = pos.shape[-2]
    i, j = torch.triu_indices(b, b, offset=1, device=pos.device)
    d = pos[..., j, :] - pos[..., i, :]
    sq = (d * d).sum(-1)
    return torch.sqrt(sq + eps) if eps else torch.sqrt(sq)


def pseudo_dihedrals_torch(pos: Tensor) -> Tensor:
    """Differentiable version of :func:`pseudo_dihedrals` (``[..., 2(B-3)]``: cosines then sines)."""
    import torch

    b1 = pos[..., 1:-2, :] - pos[..., :-3, :]
    b2 = pos[..., 2:-1, :] - pos[..., 1:-2, :]
    b3 = pos[..., 3:, :] - pos[..., 2:-1, :]
    n1 = torch.cross(b1, b2, dim=-1)
    n2 = torch.cross(b2, b3, dim=-1)
    b2n = torch.linalg.norm(b2, dim=-1)
    cx = (n1 * n2).sum(-1)
    sy = b2n * (b1 * n2).sum(-1)
    r = torch.sqrt(cx * cx + sy * sy).clamp_min(torch.finfo(pos.dtype).tiny)
    return torch.cat([cx / r, sy / r], dim=-1)


def featurize_torch(pos: Tensor, kind: str = "pair_distances") -> Tensor:
    """Differentiable features of ``kind`` for ``pos`` ``[..., B, 3]`` Å."""
    import torch

    check_feature_kind(kind)
    dist = pair_distances_torch(pos)
    if kind == "pair_distances":
        return dist
    return torch.cat([dist, pseudo_dihedrals_torch(pos)], dim=-1)
