"""Non-bonded pair terms: the fitted (σ/r)⁶ repulsion and the Gō model's contacts.

Distances Å, energies kcal/mol. Pairs are bead pairs at least ``repulsion_min_bond_separation``
bonds apart (disconnected pairs included).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from raycg.priors import geometry as G
from raycg.priors.terms.base import Term, column, register_term


def _pair_vectors(P: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """d = x_j − x_i ``[3, N, R]`` and 1/r² ``[N, R]``."""
    d = P.index_select(1, idx[1]) - P.index_select(1, idx[0])
    return d, 1.0 / G.dot(d, d)


@register_term
class Repulsion(Term):
    """Excluded volume (σ/r)⁶; ``sigma`` Å is a low percentile of the pair distances (fit)."""

    kind = "repulsion"
    arity = 2
    param_names = ("sigma",)
    noun = "pair"
    axis_label = "r (Å)"
    energy_form = "(sigma/r)**6; r, sigma in angstrom, kcal/mol"

    def __init__(self, atoms, sigma):
        super().__init__(atoms)
        self.register_buffer("sigma2", column(np.asarray(sigma, dtype=np.float64) ** 2))

    @classmethod
    def params_from_buffers(cls, buffers) -> dict[str, np.ndarray]:
        return {"sigma": np.sqrt(buffers["sigma2"][:, 0].detach().cpu().numpy())}

    def _energies(self, P: Tensor, F: Tensor | None) -> Tensor:
        d = P.index_select(1, self.idx[1]) - P.index_select(1, self.idx[0])
        return (self.param("sigma2", d) / G.dot(d, d)) ** 3

    @classmethod
    def select(cls, topology, config) -> np.ndarray:
        return topology.pairs

    @classmethod
    def features(cls, P: Tensor, idx: Tensor) -> Tensor:
        return G.distances(P, idx)

    @classmethod
    def jacobian(cls, x: np.ndarray) -> np.ndarray:
        return x ** 2

    @classmethod
    def grouping(cls, config) -> str:
        return config.repulsion_grouping

    @classmethod
    def pooled_label(cls) -> str:
        return "all non-bonded pairs"

    @classmethod
    def n_bins(cls, config, bins: int) -> int:
        return config.repulsion_bins

    @classmethod
    def histogram_range(cls, gmin, gmax, config):
        return np.zeros_like(gmax), gmax * (1.0 + config.range_padding) + 1e-6

    @classmethod
    def fit(cls, hist, kbt: float, config) -> dict[str, Any]:
        """σ = the ``repulsion_percentile`` of the distances (linear within its bin)."""
        counts = hist.counts
        target = config.repulsion_percentile / 100.0 * counts.sum()
        cum = np.cumsum(counts)
        i = int(np.searchsorted(cum, target, side="left"))
        note = ""
        if i == 0:
            sigma, note = float(hist.lo), "percentile below the histogram range"
        elif i >= len(counts) - 1:
            sigma, note = float(hist.hi), "percentile above the histogram range"
        else:
            frac = (target - cum[i - 1]) / counts[i] if counts[i] > 0 else 0.0
            sigma = float(hist.lo + (i - 1 + frac) * hist.width)
        nz = np.flatnonzero(counts[1:-1])
        min_seen = float(hist.lo + nz[0] * hist.width) if len(nz) else float("nan")
        params = {"sigma": sigma, "percentile": config.repulsion_percentile,
                  "min_distance_A": min_seen}
        return {"params": params, "method": "percentile", "note": note}

    @classmethod
    def curve(cls, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return (params["sigma"] / x) ** 6

    @classmethod
    def plot_marker(cls, params: dict[str, Any]) -> float | None:
        return float(params["sigma"])

    @classmethod
    def summary(cls, params: dict[str, Any]) -> str:
        return f"sigma={params['sigma']:.3f} A"

    @classmethod
    def title(cls, params: dict[str, Any]) -> str:
        return f"σ={params['sigma']:.2f} Å"


@register_term
class ContactPairs(Term):
    """Gō pairs c12 (σ/r)¹² − c10 (σ/r)¹⁰ + shift: contacts (c12 = 5ε, c10 = 6ε: a well of depth
    ε at r = σ) and repulsive pairs (c10 = 0). ``truncate`` pairs are 0 beyond σ (a well's wall
    only, shifted up by ``shift`` = ε so it ends continuously). Analytic forces."""

    kind = "contacts"
    arity = 2
    param_names = ("sigma", "c12", "c10", "shift", "truncate")
    noun = "pair"
    analytic = True
    energy_form = "c12*(sigma/r)**12 - c10*(sigma/r)**10 + shift; 0 beyond sigma if truncated"

    def __init__(self, atoms, sigma, c12, c10, shift=None, truncate=None):
        super().__init__(atoms)
        n = self.n_terms
        self.register_buffer("sigma2", column(np.asarray(sigma, dtype=np.float64) ** 2))
        self.register_buffer("c12", column(c12))
        self.register_buffer("c10", column(c10))
        self.register_buffer("shift", column(np.zeros(n) if shift is None else shift))
        trunc = np.zeros(n, bool) if truncate is None else np.asarray(truncate, bool).reshape(n)
        self.register_buffer("truncate", torch.as_tensor(trunc)[:, None])
        self._any_truncated = bool(trunc.any())

    @classmethod
    def params_from_buffers(cls, buffers) -> dict[str, np.ndarray]:
        p = {n: buffers[n][:, 0].detach().cpu().numpy()
             for n in ("c12", "c10", "shift", "truncate")}
        return {"sigma": np.sqrt(buffers["sigma2"][:, 0].detach().cpu().numpy()), **p}

    def _energies(self, P: Tensor, F: Tensor | None) -> Tensor:
        d, inv_r2 = _pair_vectors(P, self.idx)
        c12, c10 = self.param("c12", P), self.param("c10", P)
        x = self.param("sigma2", P) * inv_r2
        x2 = x * x
        x5 = x2 * x2 * x
        e_pair = x5 * (c12 * x - c10) + self.param("shift", P)
        off = self.truncate & (x < 1.0) if self._any_truncated else None
        if off is not None:
            e_pair = torch.where(off, 0.0, e_pair)
        if F is not None:
            mag = (12.0 * c12 * x - 10.0 * c10) * x5 * inv_r2
            if off is not None:
                mag = torch.where(off, 0.0, mag)
            fj = mag.unsqueeze(0) * d
            F.index_add_(1, self.idx[1], fj)
            F.index_add_(1, self.idx[0], -fj)
        return e_pair

    @classmethod
    def features(cls, P: Tensor, idx: Tensor) -> Tensor:
        return G.distances(P, idx)
