"""Plots of the data free energies (−k_BT ln p, Jacobian-corrected) against the fitted prior curves."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from raycg.priors.prior_set import PriorSet, TermFit
from raycg.priors.terms import term_class
from raycg.utils.io import atomic_path

PANELS_PER_PAGE = 20


def data_free_energy(fit: TermFit, kbt: float, jacobian: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres (Å or rad) and data free energy F = −kT ln(p/J) (kcal/mol, NaN for empty bins)."""
    if fit.histogram is None:
        raise ValueError("no histogram stored")
    c = np.asarray(fit.histogram, dtype=np.float64)
    lo, hi = fit.range
    width = (hi - lo) / fit.bins
    x = lo + (np.arange(fit.bins) + 0.5) * width
    jac = term_class(fit.kind).jacobian(x) if jacobian else np.ones_like(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        free = -kbt * np.log(c / (max(fit.n_samples, 1e-300) * width) / jac)
    free[~np.isfinite(free)] = np.nan
    return x, free


def model_curve(fit: TermFit, x: np.ndarray) -> np.ndarray:
    """The fitted energy (kcal/mol, without constant) of a group at coordinates x (Å or rad)."""
    return term_class(fit.kind).curve(fit.params, x)


def _title(fit: TermFit) -> str:
    rms = "" if fit.rms_kcal is None else f"\nrms {fit.rms_kcal:.3f} kcal/mol"
    return f"{fit.label}\n{term_class(fit.kind).title(fit.params)}{rms}"


def _panel(ax, fit: TermFit, cls, priors: PriorSet) -> None:
    """One group's data free energy (fitted bins in colour) against its fitted curve."""
    kbt = priors.kbt
    x, free = data_free_energy(fit, kbt, priors.config.jacobian)
    ok = np.isfinite(free)
    scale = np.degrees if cls.unit == "rad" else (lambda v: v)
    if not ok.any():
        ax.set_title(fit.label, fontsize=8)
        return
    xf = np.linspace(x[0], x[-1], 600)
    u = model_curve(fit, xf)
    w = np.asarray(fit.histogram)[ok]
    marker = cls.plot_marker(fit.params)
    if marker is not None:       # align the data beyond the marker (repulsion: σ)
        far = ok & (x >= marker)
        offset = np.nanmin(free[far]) if far.any() else np.nanmin(free)
        ax.axvline(marker, color="0.6", lw=0.8, ls=":")
    else:   # best constant between data and fit, then the fit's minimum at 0
        offset = np.average(free[ok] - model_curve(fit, x[ok]), weights=w)
        base = float(np.min(u))
        u = u - base
        offset += base
    free = free - offset
    ymin, ymax = float(np.nanmin(free)), float(np.nanmax(free))
    fitted = ok & (np.asarray(fit.histogram) >= priors.config.min_bin_count)
    ax.plot(scale(x[ok & ~fitted]), free[ok & ~fitted], ".", ms=2.0, color="0.7")
    ax.plot(scale(x[fitted]), free[fitted], ".", ms=2.5, color="C0", label="data −kT ln p/J")
    ax.plot(scale(xf), u, "-", lw=1.2, color="C3", label="fit")
    ax.set_ylim(min(ymin, 0.0) - 0.3, min(max(ymax, 1.0), ymin + 12 * kbt) + 0.5)
    ax.set_xlabel(cls.axis_label, fontsize=8)
    ax.set_ylabel("kcal/mol", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(_title(fit), fontsize=7.5)


def plot_priors(priors: PriorSet, out_dir: str | os.PathLike) -> list[Path]:
    """Write one PNG per term kind (pages of ≤ 20 panels) into ``out_dir``; return the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    kbt = priors.kbt
    written: list[Path] = []
    for kind, fits in priors.fits.items():
        fits = [f for f in fits if f.histogram is not None]
        if not fits:
            continue
        cls = term_class(kind)
        pages = [fits[i:i + PANELS_PER_PAGE] for i in range(0, len(fits), PANELS_PER_PAGE)]
        for page_no, page in enumerate(pages):
            ncol = min(4, len(page))
            nrow = int(np.ceil(len(page) / ncol))
            fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 2.9 * nrow), squeeze=False)
            for ax, fit in zip(axes.ravel(), page, strict=False):
                _panel(ax, fit, cls, priors)
            for ax in axes.ravel()[len(page):]:
                ax.axis("off")
            axes.ravel()[0].legend(fontsize=7, loc="best")
            fig.suptitle(f"{kind} priors (T = {priors.temperature_K:g} K, kT = {kbt:.3f} kcal/mol)", fontsize=10)
            fig.tight_layout()
            name = f"{kind}.png" if len(pages) == 1 else f"{kind}_{page_no + 1}.png"
            with atomic_path(out_dir / name) as tmp:
                fig.savefig(tmp, dpi=110, format="png")
            plt.close(fig)
            written.append(out_dir / name)
    return written
