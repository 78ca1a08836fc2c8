"""The ``fes-corrected`` energy target: a base model plus one Boltzmann-inversion step on the TICs.

A free energy F(s) of collective variables s already holds the entropy of every coordinate
orthogonal to s, so a model whose *total* energy is F(s(x)) samples p(s)·Ω(s), not p(s)
(docs/energy_target.md). Adding a function g(s) to any energy shifts its marginal free energy by
exactly g(s), so on a base model U₀ whose simulated marginal is F₀(s) the consistent target is

    E(x) = U₀(x) + F_ref(s(x)) − F₀(s(x)) + c,

evaluated at every reference frame; the trainer subtracts the prior as for the other targets, so
with ``base_model: priors`` the network learns exactly F_ref − F₀ (+ c).

Rules (one grid for both free energies):

- grid: ``bins`` per axis over ``range`` (default: the reference frames' range per axis); base
  samples outside it are dropped from its histogram (counted: ``n_base_outside``);
- smoothing: both weighted count histograms are convolved with the same Gaussian of
  ``smooth_bins`` bins σ (``0``: none; zero beyond the grid) before they are normalised;
- floor: a bin's density is at least half its lightest sample's share (half a sample per bin,
  the rule of the other targets), separately for the reference and the base model, so F is
  finite everywhere; ``n_floored_base`` counts the reference frames whose bin the base model
  (almost) never visited (``n_floored_ref`` likewise for the reference's own histogram);
- evaluation: F_ref − F₀ is interpolated (multi-)linearly between bin centres and held constant
  beyond the outer centres;
- offset: c makes the targets' weighted mean equal U₀'s weighted mean over the reference frames
  (recorded as ``offset_kcal``).

Iteration: with ``LossConfig.correction_iterations`` n > 1 the study pipeline trains, simulates
the trained model, and repeats with that model as the next base model, stopping early by
:func:`continue_correction` on the JS divergence between each model's simulated marginal and the
reference (:func:`marginal_js_divergence`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from raycg.errors import DatasetError, InputError
from raycg.train.target_values import EnergyTargets

#: The target histograms cover at most this many TICA components.
MAX_COMPONENTS = 2


@dataclass(frozen=True)
class CorrectionInputs:
    """What the study pipeline hands the trainer for ``energy_target: fes-corrected``.

    ``y_base`` [M, k]: the base model's simulated frames (all replicas, after burn-in) projected
    on the reference TICA's first k components (k as ``choose_components`` resolves
    ``LossConfig.n_components``); ``base_weights`` [M] optional (e.g. replica-time weights).
    ``base_energy`` [F]: U₀ (kcal/mol) at every frame of the reference dataset; None only with
    ``base_model == "priors"`` (the trainer then evaluates the priors itself).
    ``iteration``: 1 for the first correction, n for the n-th (recorded with the targets).
    """

    y_base: np.ndarray
    base_energy: np.ndarray | None = None
    base_weights: np.ndarray | None = None
    base_model: str = "priors"
    iteration: int = 1
    label: str = ""

    def __post_init__(self) -> None:
        if self.base_model not in ("priors", "force-matched"):
            raise InputError(f"unknown base model {self.base_model!r}; use 'priors' or 'force-matched'",
                             where="loss.base_model")
        if self.base_energy is None and self.base_model != "priors":
            raise InputError("base_model 'force-matched' needs the base model's energies at every reference "
                             "frame (CorrectionInputs.base_energy)", where="loss.base_model")


@dataclass
class FesCorrection:
    """F_ref and F₀ (kcal/mol) on one grid (``edges``: k arrays of bins + 1 edges) and how they were made.

    ``base_floored``: the grid cells where the base density was floored.
    """

    edges: list[np.ndarray]
    f_ref: np.ndarray
    f_base: np.ndarray
    base_floored: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def centres(self) -> list[np.ndarray]:
        return [0.5 * (e[1:] + e[:-1]) for e in self.edges]

    @property
    def delta(self) -> np.ndarray:
        """F_ref − F₀ on the grid (kcal/mol)."""
        return self.f_ref - self.f_base

    def delta_at(self, y: np.ndarray) -> np.ndarray:
        """F_ref − F₀ at points ``y`` [N, k]: linear between bin centres, constant beyond the outer ones."""
        return _interp(self.centres, self.delta, y)

    def base_bin_floored(self, y: np.ndarray) -> np.ndarray:
        """Whether each point's bin has the floored base density (no base samples near it)."""
        idx = _bin_index(self.edges, y)
        return self.base_floored[idx]


def _interp(centres: list[np.ndarray], grid: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.interpolate import RegularGridInterpolator

    y = np.asarray(y, dtype=np.float64).reshape(len(y), len(centres))
    yc = np.stack([np.clip(y[:, c], centres[c][0], centres[c][-1]) for c in range(len(centres))], 1)
    return RegularGridInterpolator(centres, grid, method="linear", bounds_error=True)(yc)


def _bin_index(edges: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, ...]:
    y = np.asarray(y, dtype=np.float64).reshape(len(y), len(edges))
    return tuple(np.clip(np.searchsorted(e, y[:, c], side="right") - 1, 0, len(e) - 2) for c, e in enumerate(edges))


def _check_y(name: str, y: np.ndarray, k: int | None = None) -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    if y.ndim != 2 or y.shape[0] < 1 or (k is not None and y.shape[1] != k):
        want = f"[frames, {k}]" if k is not None else "[frames, k]"
        raise InputError(f"{name} must have shape {want}, got {y.shape}", where="fes-corrected target")
    if not 1 <= y.shape[1] <= MAX_COMPONENTS:
        raise InputError(f"the fes-corrected target uses 1 or 2 TICA components, got {y.shape[1]}",
                         where="loss.n_components")
    if not np.all(np.isfinite(y)):
        raise DatasetError(f"{name} (TICA projection) contains NaN/inf", hint="check the coordinates")
    return y


def _grid_edges(y_ref: np.ndarray, bins: int, range_: Sequence[Sequence[float]] | None) -> list[np.ndarray]:
    k = y_ref.shape[1]
    if range_ is None:
        lo, hi = y_ref.min(0), y_ref.max(0)
    else:
        r = np.asarray(range_, dtype=np.float64).reshape(-1, 2)
        if r.shape[0] != k or not np.all(np.isfinite(r)) or not np.all(r[:, 1] > r[:, 0]):
            raise InputError(f"range must be {k} (low, high) pairs with high > low, got {range_}",
                             where="fes-corrected target")
        lo, hi = r[:, 0], r[:, 1]
    same = ~(hi > lo)
    lo, hi = np.where(same, lo - 0.5, lo), np.where(same, hi + 0.5, hi)       # numpy's rule for a flat axis
    return [np.linspace(lo[c], hi[c], bins + 1) for c in range(k)]


def _free_energy_grid(y: np.ndarray, w: np.ndarray, edges: list[np.ndarray], kbt: float,
                      smooth_bins: float) -> tuple[np.ndarray, np.ndarray, float, int]:
    """−k_BT ln(density) on the grid, smoothed then floored; returns (F, floored mask, floor, n outside)."""
    inside = np.ones(len(y), bool)
    for c, e in enumerate(edges):
        inside &= (y[:, c] >= e[0]) & (y[:, c] <= e[-1])
    hist, _ = np.histogramdd(y[inside], bins=edges, weights=w[inside])
    if smooth_bins > 0:
        from scipy.ndimage import gaussian_filter

        hist = gaussian_filter(hist, sigma=smooth_bins, mode="constant", cval=0.0, truncate=4.0)
    volume = float(np.prod([(e[-1] - e[0]) / (len(e) - 1) for e in edges]))
    total = float(w.sum())
    dens = hist / (total * volume)
    floor = 0.5 * float(w[w > 0].min()) / (total * volume)
    floored = dens < floor
    f = -kbt * np.log(np.maximum(dens, floor))
    return f, floored, floor, int((~inside).sum())


def _norm_weights(w: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if w is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0) or not w.sum() > 0:
        raise InputError(f"{name} must be {n} finite non-negative weights with a positive sum",
                         where="fes-corrected target")
    return w * (n / w.sum())


def fes_correction(y_ref: np.ndarray, y_base: np.ndarray, kbt: float, *, bins: int = 50,
                   range: Sequence[Sequence[float]] | None = None, weights: np.ndarray | None = None,  # noqa: A002
                   base_weights: np.ndarray | None = None, smooth_bins: float = 1.0) -> FesCorrection:
    """F_ref (reference frames ``y_ref`` [F, k]) and F₀ (base samples ``y_base`` [M, k]) on one grid.

    Histogram, smoothing and floor rules as in the module docstring; k is 1 or 2.
    """
    y_ref = _check_y("y_ref", y_ref)
    k = y_ref.shape[1]
    y_base = _check_y("y_base", y_base, k)
    if not (np.isfinite(kbt) and kbt > 0):
        raise InputError(f"kT must be finite and > 0 kcal/mol, got {kbt}", where="fes-corrected target")
    if int(bins) < 2 or int(bins) ** k > 50_000_000:
        raise InputError(f"bins must be >= 2 and give at most 5e7 grid cells, got {bins} per axis", where="loss.bins")
    if not (np.isfinite(smooth_bins) and smooth_bins >= 0):
        raise InputError(f"smooth_bins must be >= 0, got {smooth_bins}", where="loss.smooth_bins")
    w_ref = _norm_weights(weights, len(y_ref), "weights")
    w_base = _norm_weights(base_weights, len(y_base), "base_weights")
    edges = _grid_edges(y_ref, int(bins), range)
    f_ref, ref_floored, floor_ref, ref_out = _free_energy_grid(y_ref, w_ref, edges, kbt, smooth_bins)
    f_base, base_floored, floor_base, base_out = _free_energy_grid(y_base, w_base, edges, kbt, smooth_bins)
    idx = _bin_index(edges, y_ref)
    info = {
        "n_components": k, "bins": int(bins), "range": [[float(e[0]), float(e[-1])] for e in edges],
        "smooth_bins": float(smooth_bins), "kbt_kcal_per_mol": float(kbt),
        "floor_energy_ref_kcal": float(-kbt * np.log(floor_ref)),
        "floor_energy_base_kcal": float(-kbt * np.log(floor_base)),
        "n_floored_ref": int(ref_floored[idx].sum()), "n_floored_base": int(base_floored[idx].sum()),
        "n_ref_frames": int(len(y_ref)), "n_ref_outside": ref_out,
        "n_base_samples": int(len(y_base)), "n_base_outside": base_out,
    }
    return FesCorrection(edges=edges, f_ref=f_ref, f_base=f_base, base_floored=base_floored, info=info)


def corrected_targets(base_energy: np.ndarray, y_ref: np.ndarray, y_base: np.ndarray, kbt: float, *,
                      bins: int = 50, range: Sequence[Sequence[float]] | None = None,  # noqa: A002
                      weights: np.ndarray | None = None, base_weights: np.ndarray | None = None,
                      smooth_bins: float = 1.0) -> Any:
    """``fes-corrected`` targets U₀(x) + F_ref(s(x)) − F₀(s(x)) + c at every reference frame.

    ``base_energy`` [F]: U₀ (kcal/mol) at the reference frames; ``y_ref`` [F, k] their TICA
    coordinates (with frame ``weights``); ``y_base`` [M, k] the base model's simulated frames
    after burn-in (``base_weights``). Returns :class:`raycg.train.targets.EnergyTargets`
    (``free_energy`` = the targets) whose info records the grid, floors, counts and offset.
    """

    e0 = np.asarray(base_energy, dtype=np.float64).reshape(-1)
    y_ref = _check_y("y_ref", y_ref)
    if e0.shape != (len(y_ref),):
        raise InputError(f"base_energy has {e0.size} values for {len(y_ref)} reference frames",
                         where="fes-corrected target", hint="give U₀ at every reference frame")
    if not np.all(np.isfinite(e0)):
        raise DatasetError("the base model's energy is NaN/inf at some reference frames",
                           hint="check the base model (priors) on the dataset")
    corr = fes_correction(y_ref, y_base, kbt, bins=bins, range=range, weights=weights,
                          base_weights=base_weights, smooth_bins=smooth_bins)
    w = _norm_weights(weights, len(y_ref), "weights")
    delta = corr.delta_at(y_ref)
    offset = -float(np.sum(w * delta) / w.sum())
    target = e0 + delta + offset
    if not np.all(np.isfinite(target)):      # cannot happen with the floors; a guard, not a hope
        raise DatasetError("fes-corrected targets are not finite after flooring", hint="report this as a bug")
    info = dict(corr.info)
    info.update({
        "mode": "fes-corrected", "density": "histogram", "n_frames": int(len(y_ref)), "offset_kcal": offset,
        "n_floored": info["n_floored_base"],
        "correction_min_kcal": float(delta.min() + offset), "correction_max_kcal": float(delta.max() + offset),
        "free_energy_min": float(target.min()), "free_energy_max": float(target.max()),
    })
    return EnergyTargets(free_energy=target, info=info)


def marginal_js_divergence(y_model: np.ndarray, y_ref: np.ndarray, *, bins: int = 50,
                           range: Sequence[Sequence[float]] | None = None,  # noqa: A002
                           weights: np.ndarray | None = None, model_weights: np.ndarray | None = None) -> float:
    """Jensen–Shannon divergence (nats, 0..ln 2) of two TICA marginals on one unsmoothed grid.

    The grid is the target's (``bins`` over ``range``, default the reference range); model samples
    outside it count as one extra "outside" bin, so a model that leaves the reference region is penalised.
    """
    y_ref = _check_y("y_ref", y_ref)
    y_model = _check_y("y_model", y_model, y_ref.shape[1])
    edges = _grid_edges(y_ref, int(bins), range)

    def probs(y: np.ndarray, w: np.ndarray | None) -> np.ndarray:
        w = _norm_weights(w, len(y), "weights")
        inside = np.ones(len(y), bool)
        for c, e in enumerate(edges):
            inside &= (y[:, c] >= e[0]) & (y[:, c] <= e[-1])
        h, _ = np.histogramdd(y[inside], bins=edges, weights=w[inside])
        p = np.append(h.ravel(), w[~inside].sum())
        return p / p.sum()

    p, q = probs(y_model, model_weights), probs(y_ref, weights)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    return max(0.0, 0.5 * kl(p) + 0.5 * kl(q))


def continue_correction(js_history: Sequence[float], *, max_iterations: int, tolerance: float) -> tuple[bool, str]:
    """Whether to run another correction step, and why (the stopping rule of ``correction_iterations``).

    ``js_history[i]``: :func:`marginal_js_divergence` between the simulated marginal of the model
    trained on correction i + 1 and the reference (so ``len(js_history)`` corrections were made).
    Stop when ``max_iterations`` corrections were made, when the latest divergence is below
    ``tolerance``, or when it did not decrease from the previous one.
    """
    js = [float(x) for x in js_history]
    if not js:
        return (max_iterations >= 1), "no correction made yet"
    if len(js) >= max_iterations:
        return False, f"reached correction_iterations = {max_iterations}"
    if js[-1] < tolerance:
        return False, f"JS divergence {js[-1]:.4g} < correction_tolerance {tolerance:g}"
    if len(js) >= 2 and not js[-1] < js[-2]:
        return False, f"JS divergence stopped decreasing ({js[-2]:.4g} -> {js[-1]:.4g})"
    return True, f"JS divergence {js[-1]:.4g} >= correction_tolerance {tolerance:g}"
