"""Report figures (matplotlib Agg, PNG, large fonts). Each function writes one PNG atomically.

FES panels are F = -k_BT ln p in kcal/mol on the reference TIC grid (min 0; white = empty bin).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raycg.utils.io import atomic_path

_RC = {"font.size": 14, "axes.titlesize": 15, "axes.labelsize": 14, "xtick.labelsize": 12,
       "ytick.labelsize": 12, "legend.fontsize": 11, "figure.dpi": 100}
DPI = 100


@contextlib.contextmanager
def _figure(width: float, height: float) -> Iterator[Any]:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
        yield fig


def _save(fig: Any, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return path


def _colors(n: int) -> list[Any]:
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def free_energy(hist: np.ndarray, kt: float) -> np.ndarray:
    """F = -kT ln(p) in kcal/mol from counts, shifted to min 0; NaN where the bin is empty."""
    h = np.asarray(hist, dtype=float)
    total = h.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        f = -kt * np.log(h / total) if total > 0 else np.full(h.shape, np.nan)
    f[~np.isfinite(f)] = np.nan
    if np.isfinite(f).any():
        f -= np.nanmin(f)
    return f


def infer_kt(fes: np.ndarray, hist: np.ndarray) -> float | None:
    """k_BT (kcal/mol) that maps ``hist`` onto ``fes`` (least squares of F vs -ln p), or None."""
    h, f = np.asarray(hist, dtype=float), np.asarray(fes, dtype=float)
    m = (h > 0) & np.isfinite(f)
    if m.sum() < 3:
        return None
    x = -np.log(h[m] / h[m].sum())
    if np.ptp(x) == 0:
        return None
    slope = np.polyfit(x, f[m], 1)[0]
    return float(slope) if slope > 0 else None


def _vmax(maps: Sequence[np.ndarray]) -> float:
    vals = np.concatenate([m[np.isfinite(m)].ravel() for m in maps] or [np.zeros(1)])
    return float(np.percentile(vals, 99)) if vals.size else 1.0


def _grid(n: int, ncols: int = 4) -> tuple[int, int]:
    ncols = min(ncols, n)
    return -(-n // ncols), ncols


def _uniform(edges: np.ndarray) -> bool:
    d = np.diff(np.asarray(edges, float))
    return d.size > 0 and bool(np.allclose(d, d[0], rtol=1e-6, atol=0))


def _map_panels(panels: Sequence[tuple[str, np.ndarray]], edges_x: np.ndarray, edges_y: np.ndarray, cmap_name: str,
                vmin: float, vmax: float, label: str, path: Path) -> Path:
    import matplotlib

    rows, cols = _grid(len(panels))
    cmap = matplotlib.colormaps[cmap_name].with_extremes(bad="white")
    with _figure(4.6 * cols + 1.0, 4.2 * rows) as fig:
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        mesh = None
        for ax, (title, f) in zip(axes, panels, strict=False):
            z = np.asarray(f, float).T
            if _uniform(edges_x) and _uniform(edges_y):  # imshow draws much faster than a mesh
                mesh = ax.imshow(z, origin="lower", extent=(edges_x[0], edges_x[-1], edges_y[0], edges_y[-1]),
                                 aspect="auto", interpolation="nearest", cmap=cmap, vmin=vmin, vmax=vmax)
            else:
                mesh = ax.pcolormesh(edges_x, edges_y, z, cmap=cmap, vmin=vmin, vmax=vmax, shading="flat")
            ax.set_title(title)
            ax.set_xlabel("TIC 1")
            ax.set_ylabel("TIC 2")
        for ax in axes[len(panels):]:
            ax.set_visible(False)
        fig.colorbar(mesh, ax=list(axes[:len(panels)]), label=label, shrink=0.9)
        return _save(fig, path)


def plot_fes(reference: np.ndarray, pooled: Mapping[str, np.ndarray], edges_x: np.ndarray,
             edges_y: np.ndarray, path: Path) -> Path:
    """Reference FES and the pooled model FES of each group beside it (shared colour scale)."""
    panels = [("reference", reference)] + list(pooled.items())
    vmax = max(_vmax([p for _, p in panels]), 1e-6)
    return _map_panels(panels, edges_x, edges_y, "viridis", 0.0, vmax, "F (kcal/mol)", path)


def plot_fes_difference(reference: np.ndarray, pooled: Mapping[str, np.ndarray], edges_x: np.ndarray,
                        edges_y: np.ndarray, path: Path) -> Path:
    """F_model - F_reference (kcal/mol) per group, over bins populated in both (white elsewhere)."""
    panels = [(f"{k} − reference", np.asarray(v, float) - np.asarray(reference, float)) for k, v in pooled.items()]
    lim = max(_vmax([np.abs(d) for _, d in panels]), 1e-6)
    return _map_panels(panels, edges_x, edges_y, "RdBu_r", -lim, lim, "ΔF (kcal/mol), red = model higher", path)


def _stars(p: float, alpha: float) -> str:
    if not np.isfinite(p) or p > alpha:
        return "n.s."
    return "***" if p <= alpha / 50 else "**" if p <= alpha / 5 else "*"


def _seed_lines(ax: Any, data: pd.DataFrame, m: str, group: str, groups: Sequence[Any]) -> None:
    """Each seed's values across the weights as a thin grey line with dots (the pairing)."""
    if "seed" not in data.columns:
        return
    pos = {g: i for i, g in enumerate(groups)}
    for _, sd in data[data["seed"].notna()].groupby("seed"):
        cells = sd.groupby(group)[m].mean().dropna()  # a failed trial: the line joins its neighbours
        x = [pos[g] for g in cells.index if g in pos]
        y = [cells[g] for g in cells.index if g in pos]
        ax.plot(x, y, "-o", color="0.55", lw=1.0, ms=5, alpha=0.85, zorder=2)


def _floor_band(ax: Any, floor: Any, n_groups: int) -> None:
    if floor is None or not np.isfinite(floor.mean):
        return
    sd = floor.sd if np.isfinite(floor.sd) else 0.0
    ax.axhspan(floor.mean - sd, floor.mean + sd, color="C2", alpha=0.15, zorder=1)
    ax.axhline(floor.mean, color="C2", ls="--", lw=1.5, zorder=1, label="noise floor (mean ± SD)")


def _decision_key(study: Any, paired: bool) -> str:
    """The adjusted p-value column of the test that decides the verdict (Holm, or fixed sequence)."""
    suffix = "p_seq" if getattr(study, "multiplicity", "holm") == "fixed-sequence" else "p_holm"
    if not paired:
        return f"welch_{suffix}"
    return f"signflip_{suffix}" if getattr(study, "decision_test", "paired-t") == "sign-flip" else f"t_{suffix}"


def plot_metrics(data: pd.DataFrame, study: Any, metrics: Sequence[str], symbol: str, path: Path,
                 floor: Mapping[str, Any] | None = None) -> Path:
    """Each metric vs weight: seeds as grey lines (paired), mean with Student-t 95% CI, noise floor
    band, and, on the primary metric only, the decision test vs the baseline (stars, Holm-adjusted)."""
    from raycg.stats import format_group

    rows, cols = _grid(len(metrics), 3)
    with _figure(5.6 * cols, 4.6 * rows) as fig:
        axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
        for ax, m in zip(axes, metrics, strict=False):
            ms = study.metrics[m]
            d = ms.descriptives.reset_index(drop=True)
            groups = d["group"].tolist()
            xs = np.arange(len(groups))
            _floor_band(ax, (floor or {}).get(m), len(groups))
            _seed_lines(ax, data, m, study.group, groups)
            mean = d["mean"].to_numpy(float)
            lo = np.clip(mean - d["ci_low"].to_numpy(float), 0, None)
            hi = np.clip(d["ci_high"].to_numpy(float) - mean, 0, None)
            ax.errorbar(xs, mean, yerr=[np.nan_to_num(lo), np.nan_to_num(hi)], fmt="s", color="C3", ms=9,
                        capsize=7, lw=2.5, zorder=3, label="mean, 95% CI (t)")
            ymin, ymax = ax.get_ylim()
            top = ymax + 0.02 * (ymax - ymin)
            tests = ms.paired.set_index("group") if len(ms.paired) else ms.unpaired.set_index("group")
            key = _decision_key(study, bool(len(ms.paired)))
            for i, g in enumerate(groups):
                if g != study.baseline and ms.role != "primary":
                    continue  # only the primary metric is decided; the others are descriptive
                text = "base" if g == study.baseline else _stars(float(tests.loc[g, key]), study.alpha)
                ax.annotate(text, (i, top), ha="center", va="bottom", fontsize=12,
                            color="0.4" if g == study.baseline else "k")
            ax.set_ylim(ymin, ymax + 0.14 * (ymax - ymin))
            ax.set_xticks(xs, [f"{format_group(g)}\nn={n}" + (f" (+{k} failed)" if k else "")
                               for g, n, k in zip(groups, d["n"], d["n_missing"], strict=True)])
            arrow = {"lower": " (↓ better)", "higher": " (↑ better)"}.get(ms.direction or "", "")
            ax.set_title(f"{ms.label}{arrow}\n[{ms.role}]", fontsize=13)
            ax.set_ylabel(ms.unit or m)
            ax.set_xlabel(symbol)
            ax.grid(alpha=0.3)
        axes[0].legend(loc="best", fontsize=10)
        for ax in axes[len(metrics):]:
            ax.set_visible(False)
        gate = "" if study.converged else "\nSTUDY NOT CONVERGED: the marks are not results (see the report)"
        key = _decision_key(study, study.pair_by is not None)
        test = {"signflip": "exact sign-flip", "t": "paired t", "welch": "Welch t"}[key.split("_p_")[0]]
        noun = "arm" if study.group == "arm" else "weight"
        adj = "fixed sequence" if key.endswith("p_seq") else f"Holm across {noun}s"
        fig.suptitle(f"Metrics vs {noun} (grey: one line per seed). Primary metric only: {test} test vs baseline, "
                     f"{adj}: * p ≤ α, ** ≤ α/5, *** ≤ α/50, n.s. otherwise{gate}", fontsize=13,
                     color="k" if study.converged else "C3")
        return _save(fig, path)


def _decision_interval(study: Any, r: pd.Series) -> tuple[float, float, str]:
    """(low, high, legend) of the interval printed beside the decision: the sign-flip interval at the
    Bonferroni level (no bar when it is infinite at this n), or the 95% t-interval for a paired-t study."""
    if getattr(study, "decision_test", "paired-t") == "sign-flip" and "signflip_ci_low" in r:
        level = f"{100 * float(r['signflip_ci_level']):.4g}%"
        if not bool(r["signflip_ci_finite"]):
            return r["mean_diff"], r["mean_diff"], f"mean difference (no finite {level} sign-flip CI at this n)"
        return float(r["signflip_ci_low"]), float(r["signflip_ci_high"]), f"mean difference, {level} sign-flip CI"
    return float(r["diff_ci_low"]), float(r["diff_ci_high"]), "mean difference, 95% CI (t)"


def plot_paired_differences(data: pd.DataFrame, study: Any, path: Path) -> Path:
    """Primary metric: each seed's difference to its own baseline trial, per weight, with the mean
    difference and the interval that matches the decision test; zero line and, when stated, the
    equivalence margin."""
    from raycg.stats import format_group

    ms = study.metrics[study.primary]
    others = [g for g in study.groups if g != study.baseline]
    with _figure(max(6.5, 1.9 * len(others) + 3.0), 5.0) as fig:
        ax = fig.subplots()
        if study.equivalence_margin:
            mg = study.equivalence_margin
            ax.axhspan(-mg, mg, color="C2", alpha=0.15, label=f"equivalence margin ±{mg:g}")
        ax.axhline(0.0, color="k", lw=1.2)
        piv = data[data["seed"].notna()].pivot_table(index="seed", columns=study.group, values=study.primary,
                                                     aggfunc="mean")
        rng = np.random.default_rng(0)
        pt = ms.paired.set_index("group")
        for i, g in enumerate(others):
            if g in piv.columns and study.baseline in piv.columns:
                diff = (piv[g] - piv[study.baseline]).dropna().to_numpy(float)
                ax.scatter(i + rng.uniform(-0.08, 0.08, diff.size), diff, s=36, color="0.45", zorder=2,
                           label="one seed" if i == 0 else None)
            r = pt.loc[g]
            lo, hi, label = _decision_interval(study, r)
            ax.errorbar([i], [r["mean_diff"]], yerr=[[max(r["mean_diff"] - lo, 0)], [max(hi - r["mean_diff"], 0)]],
                        fmt="D", color="C3", ms=9, capsize=8, lw=2.5, zorder=3, label=label if i == 0 else None)
        ax.set_xticks(range(len(others)), [f"{format_group(g)}\n{int(pt.loc[g, 'n_pairs'])} pairs" for g in others])
        noun = "arm" if study.group == "arm" else "weight"
        ax.set_xlabel(f"{noun} (each vs baseline {format_group(study.baseline)}, same seed)")
        arrow = {"lower": "below 0 = better", "higher": "above 0 = better"}.get(ms.direction or "", "")
        ax.set_ylabel(f"Δ {ms.label}" + (f" ({ms.unit})" if ms.unit else ""))
        gate = "" if study.converged else " — NOT CONVERGED"
        ax.set_title(f"Primary metric {ms.label}, paired by seed{gate}:\neach seed minus its baseline trial ({arrow})",
                     fontsize=13, color="k" if study.converged else "C3")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=10)
        return _save(fig, path)


def plot_trapping(transitions: Mapping[str, np.ndarray], wells: Mapping[str, np.ndarray],
                  well_reference: float | None, symbol: str, path: Path) -> Path:
    """Basin transitions per replica by group (box + replicas) and deepest-well population per trial."""
    labels = list(transitions)
    colors = _colors(len(labels))
    with _figure(12.0, 4.8) as fig:
        ax1, ax2 = fig.subplots(1, 2)
        rng = np.random.default_rng(0)
        data = [np.asarray(transitions[k], float) for k in labels]
        ax1.boxplot([d[np.isfinite(d)] for d in data], positions=range(len(labels)), widths=0.5,
                    showfliers=False)
        for i, d in enumerate(data):
            ax1.scatter(i + rng.uniform(-0.15, 0.15, d.size), d, s=14, alpha=0.6, color=colors[i])
        ax1.set_xticks(range(len(labels)), labels)
        ax1.set_xlabel(symbol)
        ax1.set_ylabel("basin transitions per replica")
        ax1.set_title("Trapping: transitions per replica\n(few = trapped)")
        ax1.grid(alpha=0.3)
        for i, k in enumerate(labels):
            w = np.asarray(wells.get(k, []), float)
            ax2.scatter(np.full(w.size, i) + rng.uniform(-0.1, 0.1, w.size), w, s=40, color=colors[i])
            if w.size:
                ax2.plot([i - 0.25, i + 0.25], [np.nanmean(w)] * 2, color="k", lw=2)
        if well_reference is not None and np.isfinite(well_reference):
            ax2.axhline(well_reference, color="C3", ls="--", lw=2, label="reference")
            ax2.legend(loc="best")
        ax2.set_xticks(range(len(labels)), labels)
        ax2.set_xlabel(symbol)
        ax2.set_ylabel("population of deepest well")
        ax2.set_title("Deepest-well population per trial\n(above reference = over-populated)")
        ax2.grid(alpha=0.3)
        return _save(fig, path)


def plot_training(histories: Sequence[tuple[str, str, pd.DataFrame]], symbol: str, path: Path) -> Path:
    """Force (and energy, when present) loss vs epoch per trial; colour = group, solid train, dashed val."""
    groups = list(dict.fromkeys(g for g, _, _ in histories))
    colors = dict(zip(groups, _colors(len(groups)), strict=True))
    panels = [("force", "force loss")]
    if any(_has(h, "train_energy_loss") or _has(h, "val_energy_loss") for _, _, h in histories):
        panels.append(("energy", "energy loss"))
    with _figure(6.2 * len(panels), 4.8) as fig:
        axes = np.atleast_1d(fig.subplots(1, len(panels)))
        for ax, (kind, title) in zip(axes, panels, strict=True):
            positive = True
            for g, _tid, h in histories:
                for split, ls in (("train", "-"), ("val", "--")):
                    col = f"{split}_{kind}_loss"
                    if _has(h, col):
                        y = h[col].to_numpy(float)
                        positive &= bool(np.all(y[np.isfinite(y)] > 0))
                        ax.plot(h["epoch"], y, ls=ls, color=colors[g], lw=1.8, alpha=0.85)
            if positive:
                from matplotlib.ticker import FormatStrFormatter

                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
                ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
            ax.set_xlabel("epoch")
            ax.set_ylabel(title)
            ax.set_title(f"{title} (solid train, dashed validation)", fontsize=13)
            ax.grid(alpha=0.3)
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color=colors[g], lw=2.5, label=f"{symbol}={g}") for g in groups]
        axes[0].legend(handles=handles, loc="best")
        return _save(fig, path)


def _has(h: pd.DataFrame, col: str) -> bool:
    return col in h.columns and bool(np.isfinite(pd.to_numeric(h[col], errors="coerce")).any())


def plot_support(data: pd.DataFrame, group: str, groups: Sequence[Any], symbol: str, path: Path,
                 floor: Any | None = None) -> Path:
    """Reference mass in bins each trial's model never visited (one dot per trial, seeds joined),
    with the perfect model's floor band."""
    from raycg.stats import format_group

    with _figure(6.4, 4.6) as fig:
        ax = fig.subplots()
        _floor_band(ax, floor, len(groups))
        _seed_lines(ax, data, "missed_reference_mass", group, groups)
        means = [pd.to_numeric(data.loc[data[group] == g, "missed_reference_mass"], errors="coerce").mean()
                 for g in groups]
        ax.plot(np.arange(len(groups)), means, "s", color="C3", ms=10, zorder=3, label="mean over seeds")
        ax.set_xticks(np.arange(len(groups)), [format_group(g) for g in groups])
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel(symbol)
        ax.set_ylabel("reference mass in unvisited bins")
        ax.set_title("Missed support (TIC 1–2 grid): KL(ref‖model) there is set by its ε", fontsize=12)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=10)
        return _save(fig, path)
