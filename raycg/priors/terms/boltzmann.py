"""Boltzmann inversion of one parameter group's histogram: free energy, least squares, fallbacks.

The data free energy is F(x) = −k_BT ln[p(x) / J(x)] with J the feature's volume element
(r² for distances, sin θ for angles, 1 for dihedrals). Fits are weighted linear least squares
with weights = effective bin counts (Var F ≈ (k_BT)²/n). Energies kcal/mol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from raycg.priors.config import PriorConfig


class ConstantFeature(Exception):
    """Group ``index`` has no spread in the sampled frames (its histogram range is empty)."""

    def __init__(self, index: int):
        super().__init__(index)
        self.index = index


class SparseHistogram(Exception):
    """Only ``have`` bins hold enough samples; the fit needs ``need``."""

    def __init__(self, have: int, need: int):
        super().__init__(have, need)
        self.have, self.need = have, need


@dataclass
class Histogram:
    """Weighted counts of one group's feature on ``lo..hi`` (Å or rad): ``counts`` and ``sumw2``
    (sum of squared weights) ``[nbins + 2]`` = underflow, the bins, overflow."""

    counts: np.ndarray
    sumw2: np.ndarray
    lo: float
    hi: float

    @property
    def nbins(self) -> int:
        return len(self.counts) - 2

    @property
    def width(self) -> float:
        return (self.hi - self.lo) / self.nbins

    @property
    def centers(self) -> np.ndarray:
        return self.lo + (np.arange(self.nbins) + 0.5) * self.width


@dataclass
class FreeEnergy:
    """Bin centres, counts ``c``, effective counts ``neff``, Jacobian ``jac``, free energy
    (kcal/mol) and the mask of bins to fit, all ``[nbins]``."""

    centers: np.ndarray
    c: np.ndarray
    neff: np.ndarray
    jac: np.ndarray
    free: np.ndarray
    mask: np.ndarray


def free_energy(hist: Histogram, jac: np.ndarray, kbt: float, cfg: PriorConfig) -> FreeEnergy:
    """−k_BT ln(p/J) per bin; bins with < ``min_bin_count`` effective samples (or above
    ``fit_max_kT`` from the minimum) are masked out."""
    total = hist.counts.sum()
    width = hist.width
    centers = hist.centers
    c = hist.counts[1:-1]
    s2 = hist.sumw2[1:-1]
    neff = np.divide(c * c, s2, out=np.zeros_like(c), where=s2 > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        free = -kbt * np.log(c / (total * width) / jac)
    mask = (neff >= cfg.min_bin_count) & (c > 0) & np.isfinite(free) & (jac > 0)
    if cfg.fit_max_kT is not None and mask.any():
        mask &= free - free[mask].min() <= cfg.fit_max_kT * kbt
    return FreeEnergy(centers, c, neff, jac, free, mask)


def wlsq(design: np.ndarray, y: np.ndarray, w: np.ndarray, ridge: float = 0.0) -> np.ndarray:
    """Weighted least squares; ``ridge`` > 0 adds ``ridge · Σw`` times the squared coefficients
    (all but the first, the constant) to the objective (Tikhonov)."""
    sw = np.sqrt(w / w.max())
    a, b = design * sw[:, None], y * sw
    if ridge > 0:
        lam = np.sqrt(ridge * float(np.sum(sw * sw)))
        pen = lam * np.eye(design.shape[1])[1:]
        a, b = np.vstack([a, pen]), np.concatenate([b, np.zeros(len(pen))])
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    return coef


def residual_stats(free: np.ndarray, model: np.ndarray, weight: np.ndarray) -> dict[str, float]:
    """Weighted and unweighted RMS and the largest |free − model| (kcal/mol)."""
    r = free - model
    return {"rms_kcal": float(np.sqrt(np.sum(weight * r * r) / np.sum(weight))),
            "rms_unweighted_kcal": float(np.sqrt(np.mean(r * r))),
            "max_abs_kcal": float(np.max(np.abs(r)))}


def fit_harmonic(hist: Histogram, jac: np.ndarray, kbt: float, cfg: PriorConfig) -> dict[str, Any]:
    """½ k (x − x0)² by a weighted quadratic fit a t² + b t + c (k = 2a, x0 = x̄ − b/2a); with
    fewer than 5 populated bins or a non-convex fit: Gaussian moments of p/J (``sparse_fallback``;
    else :class:`SparseHistogram`)."""
    fe = free_energy(hist, jac, kbt, cfg)
    nfit = int(fe.mask.sum())
    need = 5
    if nfit < need and not cfg.sparse_fallback:
        raise SparseHistogram(nfit, need)
    if nfit >= need:
        x = fe.centers[fe.mask]
        xm = float(np.average(x, weights=fe.c[fe.mask]))
        t = x - xm
        design = np.stack([t * t, t, np.ones_like(t)], axis=1)
        a, b, c0 = wlsq(design, fe.free[fe.mask], fe.neff[fe.mask])
        if a > 0:
            stats = residual_stats(fe.free[fe.mask], design @ np.array([a, b, c0]), fe.c[fe.mask])
            return {"params": {"k": float(2.0 * a), "x0": float(xm - b / (2.0 * a))},
                    "method": "harmonic-lsq", "n_fit_bins": nfit, **stats}
        note = "quadratic fit was not convex"
    else:
        note = f"only {nfit} bin(s) with >= {cfg.min_bin_count:g} samples"
    return _moments(hist, fe, kbt, nfit, note)


def _moments(hist: Histogram, fe: FreeEnergy, kbt: float, nfit: int, note: str) -> dict[str, Any]:
    """Fallback (multimodal or sparse data): Gaussian moments of the Jacobian-corrected density,
    with Sheppard's correction for the bin width."""
    width, c, jac, centers = hist.width, fe.c, fe.jac, fe.centers
    ok = (c > 0) & (jac > 0)
    q = np.where(ok, c / np.where(ok, jac, 1.0), 0.0)
    q /= q.sum()
    x0 = float(np.sum(q * centers))
    var = float(np.sum(q * (centers - x0) ** 2)) + width * width / 12.0
    kk = kbt / var
    stats = {}
    if nfit:
        m = fe.mask
        u = 0.5 * kk * (centers[m] - x0) ** 2
        stats = residual_stats(fe.free[m], u + np.average(fe.free[m] - u, weights=c[m]), c[m])
    note += "; k = kT/variance, x0 = mean of the Jacobian-corrected density"
    return {"params": {"k": float(kk), "x0": x0}, "method": "moments", "n_fit_bins": nfit,
            "note": note, **stats}
