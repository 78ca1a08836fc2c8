"""Exact neighbour lists in plain torch (no pyg-lib / torch-cluster, no neighbour cap).

Every function returns unordered pairs ``(i, j)``, ``i < j``, indices into the flattened ``[R*B]`` bead
axis (pairs never cross structures), whose distance is strictly below ``cutoff`` (Å). Three exact
methods give one answer: ``dense`` (every pair), ``blocked`` (all-pairs distances a block of structures
at a time) and ``cell`` (a cell list, O(B)). Indices only, under ``torch.no_grad``; the model recomputes
distances from them. When to use which: docs/architecture.md ("raycg.model.neighbours").
"""

from __future__ import annotations

import itertools
from typing import Literal

import torch
from torch import Tensor

Method = Literal["auto", "dense", "blocked", "cell"]

#: Above this many beads per structure, ``auto`` switches from ``blocked`` to ``cell``.
CELL_LIST_MIN_BEADS = 1024


def triu_pairs(n_beads: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Indices (i, j), i < j, of all unordered pairs of ``n_beads`` beads (row-major order)."""
    ij = torch.triu_indices(n_beads, n_beads, offset=1, device=device)
    return ij[0], ij[1]


def _check_pos(pos: Tensor) -> Tensor:
    if pos.dim() == 2:
        pos = pos.unsqueeze(0)
    if pos.dim() != 3 or pos.shape[-1] != 3:
        raise ValueError(f"positions must have shape [R, B, 3] (or [B, 3]), got {tuple(pos.shape)}")
    return pos


@torch.no_grad()
def dense_pairs(pos: Tensor) -> tuple[Tensor, Tensor]:
    """All unordered pairs of every structure (flattened indices), regardless of distance."""
    pos = _check_pos(pos)
    r, b, _ = pos.shape
    i, j = triu_pairs(b, pos.device)
    base = (torch.arange(r, device=pos.device) * b).unsqueeze(1)
    return (base + i).reshape(-1), (base + j).reshape(-1)


@torch.no_grad()
def blocked_pairs(pos: Tensor, cutoff: float, *, max_block_elements: int = 1 << 24) -> tuple[Tensor, Tensor]:
    """Exact pairs within ``cutoff`` by all-pairs distances, a block of structures at a time."""
    pos = _check_pos(pos)
    r, b, _ = pos.shape
    i, j = triu_pairs(b, pos.device)
    per_structure = max(1, i.numel())
    block = max(1, int(max_block_elements) // per_structure)
    cut2 = float(cutoff) ** 2
    out_i, out_j = [], []
    for start in range(0, r, block):
        p = pos[start : start + block]
        d2 = (p[:, j] - p[:, i]).pow(2).sum(-1)            # [r_blk, P]
        s, k = torch.nonzero(d2 < cut2, as_tuple=True)
        base = (s + start) * b
        out_i.append(base + i[k])
        out_j.append(base + j[k])
    if not out_i:
        empty = torch.zeros(0, dtype=torch.long, device=pos.device)
        return empty, empty
    return torch.cat(out_i), torch.cat(out_j)


_OFFSETS = torch.tensor(list(itertools.product((-1, 0, 1), repeat=3)), dtype=torch.long)


@torch.no_grad()
def cell_pairs(pos: Tensor, cutoff: float) -> tuple[Tensor, Tensor]:
    """Exact pairs within ``cutoff`` from a cell list (cells of edge ``cutoff``; 27-cell stencil).

    Fully vectorised: beads are sorted by (structure, cell) key; for each bead and each of the
    27 neighbouring cells, ``searchsorted`` finds the slice of beads in that cell; candidate
    pairs are expanded with ``repeat_interleave`` and filtered by ``i < j`` and distance.
    """
    pos = _check_pos(pos)
    r, b, _ = pos.shape
    dev = pos.device
    n = r * b
    if n == 0 or b < 2:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty
    cutoff = float(cutoff)
    flat = pos.reshape(n, 3)
    lo = pos.amin(dim=1, keepdim=True)
    cell = torch.floor((pos - lo) / cutoff).to(torch.long).reshape(n, 3)       # [N, 3]
    ncell = cell.amax(dim=0) + 1                                               # [3]
    nx, ny, nz = (int(v) for v in ncell.tolist())
    struct = torch.arange(r, device=dev).repeat_interleave(b)

    def key_of(c: Tensor, s: Tensor) -> Tensor:
        return ((s * nx + c[..., 0]) * ny + c[..., 1]) * nz + c[..., 2]

    keys = key_of(cell, struct)
    order = torch.argsort(keys)
    sorted_keys = keys[order]
    offs = _OFFSETS.to(dev)                                                    # [27, 3]
    nb = cell.unsqueeze(0) + offs.unsqueeze(1)                                 # [27, N, 3]
    valid = ((nb >= 0) & (nb < ncell)).all(-1)                                 # [27, N]
    nkeys = key_of(nb.clamp(min=0), struct.unsqueeze(0).expand(27, n))
    start = torch.searchsorted(sorted_keys, nkeys, right=False)
    end = torch.searchsorted(sorted_keys, nkeys, right=True)
    counts = torch.where(valid, end - start, torch.zeros_like(start)).reshape(-1)
    centre = torch.arange(n, device=dev).unsqueeze(0).expand(27, n).reshape(-1)
    start = start.reshape(-1)
    total = int(counts.sum())
    if total == 0:
        empty = torch.zeros(0, dtype=torch.long, device=dev)
        return empty, empty
    ci = torch.repeat_interleave(centre, counts)
    first = torch.repeat_interleave(start - (torch.cumsum(counts, 0) - counts), counts)
    cj = order[first + torch.arange(total, device=dev)]
    keep = ci < cj
    ci, cj = ci[keep], cj[keep]
    d2 = (flat[cj] - flat[ci]).pow(2).sum(-1)
    keep = d2 < cutoff * cutoff
    ci, cj = ci[keep], cj[keep]
    # canonical order (by i, then j), independent of the cell layout
    perm = torch.argsort(ci * n + cj)
    return ci[perm], cj[perm]


def neighbour_pairs(pos: Tensor, cutoff: float, method: Method = "auto") -> tuple[Tensor, Tensor]:
    """Unordered pairs (i < j, flattened ``[R*B]`` indices) closer than ``cutoff``.

    ``method="auto"`` picks ``blocked`` below :data:`CELL_LIST_MIN_BEADS` beads per structure
    and ``cell`` above. ``dense`` returns every pair (no distance test).
    """
    pos = _check_pos(pos.detach())
    if method == "auto":
        method = "blocked" if pos.shape[1] < CELL_LIST_MIN_BEADS else "cell"
    if method == "dense":
        return dense_pairs(pos)
    if method == "blocked":
        return blocked_pairs(pos, cutoff)
    if method == "cell":
        return cell_pairs(pos, cutoff)
    raise ValueError(f"unknown neighbour-list method {method!r}; use auto, dense, blocked or cell")


def max_pair_distance(pos: Tensor) -> Tensor:
    """Largest intra-structure pair distance over all structures (for "all pairs in range?")."""
    pos = _check_pos(pos.detach())
    return torch.cdist(pos, pos).amax()
