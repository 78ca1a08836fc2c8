"""Pair ↔ bead operations of CGSchNet's dense path (small proteins: every pair of B beads).

Pair space ``[R, P, ·]`` (unordered pairs i < j, band order: by separation j − i, then i) ↔ bead space
``[R, B, ·]``: ``diffs(pos)`` (r_j − r_i, Å), ``contract(w, x)``, ``pair_products(g, x)`` and
``pair_to_bead(f)`` (pair forces → bead forces). Two exact layouts give the same numbers (tested):
``gather`` (index_select / index_add) and ``band`` (slices only, so a compiled backward has no atomic
adds). Which layout runs when: docs/architecture.md ("raycg.model.dense").
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Layout = Literal["auto", "gather", "band"]


def band_pairs(n_beads: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Indices (i, j), i < j, of all unordered pairs ordered by separation s = j − i, then i."""
    i = torch.cat([torch.arange(n_beads - s, device=device) for s in range(1, n_beads)])
    j = torch.cat([torch.arange(s, n_beads, device=device) for s in range(1, n_beads)])
    return i, j


#: With weight gradients (training), eager passes use ``band`` above this many beads: the gather
#: layout's [R, B, B, F] tensors and their scatter-add backward fall out of cache (2-core CPU, batch
#: 256: equal at 16 beads, band 2.2× at 24 and 1.5× at 35).
BAND_MIN_BEADS_EAGER = 17


def choose_layout(layout: Layout, weight_grads: bool, n_beads: int = 0) -> Literal["gather", "band"]:
    """``auto``: ``band`` when weight gradients flow through a ``torch.compile``d pass or through an
    eager pass of at least BAND_MIN_BEADS_EAGER beads; ``gather`` otherwise (simulation)."""
    if layout != "auto":
        return layout
    if weight_grads and (torch.compiler.is_compiling() or n_beads >= BAND_MIN_BEADS_EAGER):
        return "band"
    return "gather"


class DensePairs:
    """The four pair ↔ bead operations for ``n_beads`` beads in one layout (see module docstring)."""

    def __init__(self, n_beads: int, device: torch.device | str, layout: Literal["gather", "band"]) -> None:
        if n_beads < 2:
            raise ValueError(f"the dense path needs at least 2 beads, got {n_beads}")
        self.b = n_beads
        self.layout = layout
        self.i, self.j = band_pairs(n_beads, device)
        self.n_pairs = self.i.numel()
        self.seps = list(range(1, n_beads))
        self.sizes = [n_beads - s for s in self.seps]
        if layout == "gather":
            # symmetric map from the B×B grid to pair slots; the diagonal reads an extra all-zero slot
            full = torch.full((n_beads, n_beads), self.n_pairs, dtype=torch.long, device=device)
            p = torch.arange(self.n_pairs, device=device)
            full[self.i, self.j] = p
            full[self.j, self.i] = p
            self.full = full.reshape(-1)

    # -- helpers ------------------------------------------------------------------------------
    def _place(self, parts: list[Tensor], at_separation: bool) -> Tensor:
        """Sum of band pieces [R, B−s, C] padded into [R, B, C] at offset 0 (or s)."""
        out = None
        for piece, s in zip(parts, self.seps):
            lo = s if at_separation else 0
            t = F.pad(piece, (0, 0, lo, self.b - piece.shape[1] - lo))
            out = t if out is None else out + t
        return out

    # -- the four operations --------------------------------------------------------------------
    def diffs(self, pos: Tensor) -> Tensor:
        """r_j − r_i [R, P, 3]."""
        if self.layout == "gather":
            return pos.index_select(1, self.j) - pos.index_select(1, self.i)
        return torch.cat([pos[:, s:] - pos[:, : self.b - s] for s in self.seps], dim=1)

    def contract(self, w: Tensor, x: Tensor) -> Tensor:
        """m_a = Σ_b W_ab ⊙ x_b [R, B, F] for pair filters w [R, P, F] and bead features x [R, B, F]."""
        r, _, f = w.shape
        if self.layout == "gather":
            wf = torch.cat([w, w.new_zeros(r, 1, f)], dim=1).index_select(1, self.full).view(r, self.b, self.b, f)
            return (wf * x.unsqueeze(1)).sum(2)
        ws = w.split(self.sizes, dim=1)
        b = self.b
        up = self._place([wk * x[:, s:] for wk, s in zip(ws, self.seps)], at_separation=False)
        down = self._place([wk * x[:, : b - s] for wk, s in zip(ws, self.seps)], at_separation=True)
        return up + down

    def pair_products(self, g: Tensor, x: Tensor) -> Tensor:
        """g_i ⊙ x_j + g_j ⊙ x_i [R, P, F]."""
        if self.layout == "gather":
            i, j = self.i, self.j
            return g.index_select(1, i) * x.index_select(1, j) + g.index_select(1, j) * x.index_select(1, i)
        b = self.b
        return torch.cat([g[:, : b - s] * x[:, s:] + g[:, s:] * x[:, : b - s] for s in self.seps], dim=1)

    def pair_to_bead(self, fp: Tensor) -> Tensor:
        """Σ_{p: i_p = a} f_p − Σ_{p: j_p = a} f_p [R, B, C] for pair values fp [R, P, C]."""
        if self.layout == "gather":
            out = fp.new_zeros(fp.shape[0], self.b, fp.shape[2])
            return out.index_add(1, self.i, fp).index_add(1, self.j, fp, alpha=-1)
        parts = list(fp.split(self.sizes, dim=1))
        return self._place(parts, at_separation=False) - self._place(parts, at_separation=True)
