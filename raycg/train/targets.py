"""Per-frame energy-matching targets from the reference TICA free energy.

Modes (``LossConfig.energy_target``):

- ``tica-marginal`` — the published form: ``E(x) = −k_BT Σ_c ln p_c(y_c(x))`` over the first
  ``k`` TICA components (default ``slow``: those whose implied timescale exceeds the lag; ``all``
  is the published choice), each ``p_c`` a 1-D probability *density* (histogram with
  ``density=True`` semantics, or a Gaussian KDE);
- ``tica-joint`` — ``E(x) = −k_BT ln p(y_1..y_k)`` from a k-D histogram/KDE (default: the slow components, at most 2);
- ``fes-corrected`` — ``E(x) = U₀(x) + F_ref(y(x)) − F₀(y(x)) + c`` on a base model U₀ whose
  simulated marginal is F₀ (one Boltzmann-inversion step; :mod:`raycg.train.correction`, which
  states its grid, smoothing, floor and offset rules). Needs
  :class:`raycg.train.correction.CorrectionInputs` (the base model's simulated TICA samples).

The first two set the model's *total* energy to a free energy F(y) that already holds the entropy
of the coordinates orthogonal to y, so an exact match samples p(y)·Ω(y) instead of p(y)
(docs/energy_target.md gives the toy numbers); ``fes-corrected`` does not double count.

The network target is ``E(x) − E_prior(x)`` (computed by the trainer). Densities are estimated
on all frames of the reference dataset (with its frame weights if any) and evaluated at every
frame, so a training frame always lies in a populated bin; frames of sparse regions, KDE tails
and out-of-range points are **floored** (histogram: half a sample per bin; KDE: one sample's
kernel three widths away; ``floor_density``), so a
target is never inf/NaN. The floor and how many frame-components hit it are recorded.

Targets are computed once per (dataset hash, TICA, settings[, correction inputs]) and cached as ``.npy`` + ``.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from raycg import units as U
from raycg.errors import DatasetError, InputError
from raycg.train.target_values import EnergyTargets
from raycg.utils.io import atomic_save_npy, atomic_write_json

#: Cached target files are versioned by this number (bump when the numbers would change).
TARGETS_VERSION = 1
#: KDE: at most this many samples define the kernel (evenly spaced subsample), and the density is
#: tabulated on a grid of this many points per dimension and interpolated.
KDE_MAX_SAMPLES = 20_000
KDE_GRID = {1: 512, 2: 128, 3: 48}


def _weights(w: np.ndarray | None, n: int) -> np.ndarray:
    if w is None:
        return np.ones(n, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    return w * (n / w.sum())


def _hist_density(y: np.ndarray, w: np.ndarray, bins: int) -> tuple[np.ndarray, float, int]:
    """Histogram density of y [F, k] evaluated at every frame; returns (p[F], floor, n_floored)."""
    n, k = y.shape
    lo, hi = y.min(0), y.max(0)
    same = ~(hi > lo)
    lo, hi = np.where(same, lo - 0.5, lo), np.where(same, hi + 0.5, hi)   # numpy's rule for a flat axis
    span = hi - lo
    edges = [np.linspace(lo[c], hi[c], bins + 1) for c in range(k)]       # exact end points (max included)
    hist, _ = np.histogramdd(y, bins=edges, weights=w)
    volume = float(np.prod(span / bins))
    dens = hist / (w.sum() * volume)
    idx = tuple(np.clip(np.searchsorted(edges[c], y[:, c], side="right") - 1, 0, bins - 1) for c in range(k))
    p = dens[idx]
    floor = 0.5 * float(w[w > 0].min()) / (w.sum() * volume)       # half the lightest sample
    floored = p < floor
    return np.maximum(p, floor), floor, int(floored.sum())


def _kde_density(y: np.ndarray, w: np.ndarray, bandwidth: float | str | None) -> tuple[np.ndarray, float, int]:
    """Gaussian KDE of y [F, k] tabulated on a grid and interpolated at every frame."""
    from scipy.interpolate import RegularGridInterpolator
    from scipy.stats import gaussian_kde

    n, k = y.shape
    if k not in KDE_GRID:
        raise InputError(f"a {k}-D KDE is not supported (at most 3 components); use density: histogram",
                         where="loss.density")
    step = max(1, n // KDE_MAX_SAMPLES)
    sample, sw = y[::step], w[::step]
    try:
        kde = gaussian_kde(sample.T, bw_method=bandwidth, weights=sw)
    except np.linalg.LinAlgError as exc:
        raise DatasetError(f"cannot build a KDE of the TICA projection ({exc})",
                           hint="the projection is degenerate; use density: histogram or fewer components") from None
    lo, hi = y.min(0), y.max(0)
    pad = 3.0 * np.sqrt(np.diag(kde.covariance))
    g = KDE_GRID[k]
    axes = [np.linspace(lo[c] - pad[c], hi[c] + pad[c], g) for c in range(k)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), 0).reshape(k, -1)
    dens = kde(mesh).reshape((g,) * k)
    # floor: the density one sample contributes three kernel widths away from it
    det = float(np.linalg.det(np.atleast_2d(kde.covariance)))
    floor = float(np.exp(-4.5) / (len(sample) * np.sqrt((2 * np.pi) ** k * max(det, 1e-300))))
    interp = RegularGridInterpolator(axes, dens, method="linear", bounds_error=False, fill_value=0.0)
    p = interp(y)
    floored = ~(p >= floor)
    return np.maximum(np.nan_to_num(p, nan=0.0), floor), floor, int(floored.sum())


def tica_free_energy(y: np.ndarray, kbt: float, mode: str, *, density: str = "histogram", bins: int = 50,
                     bandwidth: float | str | None = None, weights: np.ndarray | None = None) -> EnergyTargets:
    """Free energy (kcal/mol) of every frame from its TICA projection ``y`` [F, k].

    ``tica-marginal``: −k_BT Σ_c ln p_c(y_c); ``tica-joint``: −k_BT ln p(y).
    """
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] < 2:
        raise DatasetError(f"need a TICA projection of at least 2 frames to build energy targets, got {y.shape}")
    if not np.all(np.isfinite(y)):
        raise DatasetError("the TICA projection contains NaN/inf", hint="check the dataset coordinates")
    n, k = y.shape
    w = _weights(weights, n)
    estimate = _hist_density if density == "histogram" else _kde_density
    arg = bins if density == "histogram" else bandwidth
    floors, n_floored = [], 0
    if mode == "tica-marginal":
        energy = np.zeros(n, dtype=np.float64)
        for c in range(k):
            p, floor, nf = estimate(y[:, c : c + 1], w, arg)
            energy -= kbt * np.log(p)
            floors.append(floor)
            n_floored += nf
    elif mode == "tica-joint":
        if density == "histogram" and bins ** k > 50_000_000:
            raise InputError(f"a {k}-D histogram with {bins} bins per axis is too large",
                             where="loss.bins", hint="use fewer bins or fewer components")
        p, floor, n_floored = estimate(y, w, arg)
        energy = -kbt * np.log(p)
        floors.append(floor)
    else:
        raise InputError(f"unknown energy target mode {mode!r}", where="loss.energy_target")
    if not np.all(np.isfinite(energy)):      # cannot happen with the floors; a guard, not a hope
        raise DatasetError("energy targets are not finite after flooring", hint="report this as a bug")
    info = {
        "mode": mode, "density": density, "n_components": k, "bins": bins if density == "histogram" else None,
        "bandwidth": bandwidth if density == "kde" else None, "kbt_kcal_per_mol": kbt,
        "floor_density": floors, "floor_energy_kcal": [float(-kbt * np.log(f)) for f in floors],
        "n_floored": int(n_floored), "n_frames": int(n),
        "free_energy_min": float(energy.min()), "free_energy_max": float(energy.max()),
    }
    return EnergyTargets(free_energy=energy, info=info)


def _tica_digest(tica: Any) -> str:
    h = hashlib.sha256()
    for arr in (tica.mean, tica.coefficients):
        a = np.ascontiguousarray(np.asarray(arr, dtype=np.float64))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    h.update(f"{tica.lag}|{tica.feature_kind}".encode())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    base = os.environ.get("RAYCG_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "raycg") / "energy_targets"


#: A TICA component is "slow" when its eigenvalue (autocorrelation at the lag) exceeds 1/e, i.e. its
#: implied timescale t = −lag / ln λ is longer than the lag itself.
SLOW_EIGENVALUE = math.exp(-1.0)


@dataclass(frozen=True)
class ComponentChoice:
    """Which TICA components an energy target uses, and why (recorded with the targets)."""

    rule: str                 # "slow" | "all" | "first-n"
    k: int
    eigenvalues: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "k": self.k, "eigenvalues": list(self.eigenvalues)}


def choose_components(mode: str, requested: int | str | None, eigenvalues: Any) -> ComponentChoice:
    """Resolve ``LossConfig.n_components`` (``slow`` | ``all`` | n) against the reference TICA."""
    lam = np.asarray(eigenvalues, dtype=np.float64).ravel()
    dim = int(lam.size)
    if requested in (None, "slow"):
        n_slow = int(np.sum(np.real(lam) > SLOW_EIGENVALUE))
        k, rule = max(1, n_slow), "slow"
        if mode in ("tica-joint", "fes-corrected"):
            k = min(k, 2)
        k = min(k, dim)
    elif requested == "all":
        k, rule = dim, "all"
    else:
        k, rule = int(requested), "first-n"
    if not 1 <= k <= dim:
        raise InputError(f"asked for {k} TICA components but the reference TICA has {dim}",
                         where="loss.n_components", hint="lower it or refit the TICA with more components")
    if mode == "fes-corrected" and k > 2:
        raise InputError(f"the fes-corrected target uses 1 or 2 TICA components, got {k}",
                         where="loss.n_components", hint="use 'slow', 1 or 2")
    return ComponentChoice(rule, k, tuple(float(x) for x in lam[:k]))


def _array_digest(*arrays: Any) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def compute_energy_targets(dataset: Any, tica: Any, mode: str, *, n_components: int | str | None = "slow",
                           density: str = "histogram", bins: int = 50, bandwidth: float | str | None = None,
                           cache_dir: str | os.PathLike | None = None, correction: Any = None,
                           smooth_bins: float = 1.0) -> EnergyTargets:
    """TICA free energy of every frame of ``dataset`` (cached by dataset hash + TICA + settings).

    ``fes-corrected`` needs ``correction`` (:class:`raycg.train.correction.CorrectionInputs` with
    ``base_energy`` at every dataset frame) and uses ``bins`` and ``smooth_bins``.
    """
    choice = choose_components(mode, n_components, np.asarray(tica.eigenvalues)[: int(tica.dim)])
    k = choice.k
    kbt = U.kbt(dataset.temperature)
    settings = {"version": TARGETS_VERSION, "mode": mode, "k": k, "components": choice.rule, "density": density,
                "bins": bins, "bandwidth": bandwidth, "kbt": round(kbt, 12), "dataset": dataset.content_hash,
                "tica": _tica_digest(tica)}
    if mode == "fes-corrected":
        if correction is None or correction.base_energy is None:
            raise InputError("energy_target 'fes-corrected' needs the base model's simulated TICA samples and its "
                             "energies at every reference frame (CorrectionInputs)", where="loss.energy_target",
                             hint="the study pipeline simulates the base model first and passes them")
        settings.update({"density": "histogram", "bandwidth": None, "smooth_bins": float(smooth_bins),
                         "base_model": correction.base_model, "iteration": int(correction.iteration),
                         "correction_inputs": _array_digest(correction.y_base, correction.base_energy,
                                                            correction.base_weights)})
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    npy, meta = cache / f"{key}.npy", cache / f"{key}.json"
    if npy.is_file() and meta.is_file():
        try:
            info = json.loads(meta.read_text())
            energy = np.load(npy, allow_pickle=False)
            if info.get("settings") == settings and energy.shape == (dataset.n_frames,):
                info["cached"] = True
                return EnergyTargets(free_energy=energy, info=info)
        except (OSError, ValueError):
            pass                                          # unreadable cache entry: recompute
    y = tica.transform(dataset.coords, n_components=k)
    if mode == "fes-corrected":
        from raycg.train.correction import corrected_targets

        out = corrected_targets(correction.base_energy, y, correction.y_base, kbt, bins=bins,
                                weights=dataset.weights, base_weights=correction.base_weights,
                                smooth_bins=smooth_bins)
        out.info.update({"base_model": correction.base_model, "iteration": int(correction.iteration),
                         "base_label": correction.label})
    else:
        out = tica_free_energy(y, kbt, mode, density=density, bins=bins, bandwidth=bandwidth,
                               weights=dataset.weights)
    out.info["settings"] = settings
    out.info["components"] = choice.as_dict()
    try:
        atomic_save_npy(npy, out.free_energy)
        atomic_write_json(meta, out.info)
    except OSError:
        pass                                              # a read-only cache is not an error
    out.info["cached"] = False
    return out
