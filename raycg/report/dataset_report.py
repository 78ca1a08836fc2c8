"""Is a reference dataset usable for a study? (``raycg data report DATASET``)

Reports total simulated time, the folded fraction (Cα RMSD to native), folding/unfolding
transitions (RMSD with two-threshold hysteresis between ``EvalConfig.folding_core_A`` and
``unfolded_core_A``, as in the scoring), TICA implied timescales against the sampled
time, and a convergence check: the FES on TIC 1-2 of the two halves of the trajectories
(odd/even trajectory index) must agree. Writes ``report.json`` and ``report.png``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raycg.utils.io import atomic_path, atomic_write_json


@dataclass
class DatasetReport:
    dataset: str
    content_hash: str
    n_frames: int
    n_trajectories: int
    temperature_K: float
    dt_frame_ps: float
    total_time_ns: float
    longest_trajectory_ns: float
    folded_fraction: float
    folded_rmsd_A: float
    native_source: str
    n_folding: int
    n_unfolding: int
    basin_transitions: int
    n_basins: int
    basin_populations: list[float]
    basin_escape_barriers_kT: list[float]
    lowest_barrier_kT: float | None
    tica_lag_frames: int
    implied_timescales_ns: list[float]
    fes_half_difference_kcal: float
    folded_fraction_halves: list[float]
    usable: bool
    warnings: list[str] = field(default_factory=list)
    figure: str | None = None

    def text(self) -> str:
        ts = ", ".join(_fmt_ps(1e3 * t) for t in self.implied_timescales_ns[:3])
        n_t = max(self.n_trajectories, 1)
        pops = ", ".join(f"{100 * p:.0f}%" for p in self.basin_populations)
        barrier = "n/a" if self.lowest_barrier_kT is None else f"{self.lowest_barrier_kT:.2f} kT"
        lines = [
            f"dataset        {self.dataset}  ({self.content_hash[:19]}…)",
            f"sampled        {self.total_time_ns:.4g} ns in {self.n_trajectories} trajectories "
            f"(longest {self.longest_trajectory_ns:.4g} ns), {self.n_frames} frames at {self.temperature_K:g} K",
            f"folded         {100 * self.folded_fraction:.1f}% "
            f"(Cα RMSD < {self.folded_rmsd_A} Å to {self.native_source})",
            f"basins         {self.n_basins} in the TIC 1-2 FES (populations {pops}); lowest escape barrier {barrier}",
            f"transitions    {self.n_folding} folding, {self.n_unfolding} unfolding (RMSD hysteresis; "
            f"{(self.n_folding + self.n_unfolding) / n_t:.3g} per trajectory); {self.basin_transitions} between TIC "
            f"basins ({self.basin_transitions / n_t:.3g} per trajectory)",
            f"TICA           lag {self.tica_lag_frames} frames ({_fmt_ps(self.tica_lag_frames * self.dt_frame_ps)}); "
            f"slowest implied timescales {ts}",
            f"convergence    FES halves differ by {self.fes_half_difference_kcal:.2f} kcal/mol (population-weighted "
            f"mean |ΔF|); folded fraction halves {self.folded_fraction_halves[0]:.2f} / "
            f"{self.folded_fraction_halves[1]:.2f}",
            f"verdict        {'usable' if self.usable else 'NOT usable as it is'}",
        ]
        lines += [f"WARNING: {w}" for w in self.warnings]
        if self.figure:
            lines.append(f"figure         {self.figure}")
        return "\n".join(lines)




def _fmt_ps(ps: float) -> str:
    return f"{ps / 1e3:.3g} ns" if ps >= 1e3 else f"{ps:.3g} ps"


CONVERGENCE_BINS = 20
DEFAULT_LAG_FRAMES = 20


def recommended_lag(ds: Any) -> int:
    """The TICA lag (frames) recorded by the dataset's generator, else DEFAULT_LAG_FRAMES."""
    land = (ds.meta.provenance or {}).get("summary", {}).get("landscape", {})
    lag = land.get("tica_lag_frames") if isinstance(land, dict) else None
    return int(lag) if isinstance(lag, int) and lag >= 1 else DEFAULT_LAG_FRAMES


def _halves_fes(hists: list[np.ndarray], kT: float) -> list[np.ndarray]:
    """F = -kT ln((h + 1/2) / N) per half: a pseudocount keeps bins one half never visited finite, so
    they count as a difference instead of being skipped."""
    return [-kT * np.log((h + 0.5) / (h.sum() + 0.5 * h.size)) for h in hists]


def _weighted_abs_diff(f_a: np.ndarray, f_b: np.ndarray, p: np.ndarray) -> float:
    """Population-weighted mean |ΔF| (kcal/mol) over bins the whole reference populates, after removing
    the best constant offset (free energies are defined up to a constant)."""
    ok = p > 0
    if not ok.any():
        return float("inf")
    d = f_a[ok] - f_b[ok]
    w = p[ok] / p[ok].sum()
    d = d - np.sum(w * d)
    return float(np.sum(w * np.abs(d)))


def dataset_report(path: str | Path, *, native: str | None = None, out: str | Path | None = None,
                   lag: int | None = None,
                   folded_rmsd_A: float | None = None, fes_tolerance_kcal: float = 0.5,
                   min_transitions: int = 10) -> DatasetReport:
    """Compute the report, write ``report.json`` + ``report.png`` into ``out`` (default DATASET/report).

    ``lag``: TICA lag in frames; None: the lag the dataset's generator recommends
    (``provenance.summary.landscape.tica_lag_frames``, e.g. the embedded reference), else 20."""
    import raycg.data as D
    from raycg.cv import fit_reference_tica
    from raycg.data.validate import validate_dataset
    from raycg.evaluate import metrics as M
    from raycg.evaluate import prepare_reference
    from raycg.synth.landscape import basin_barriers

    ds = D.load(path)
    validate_dataset(ds.path)
    cfg = _report_config(native, folded_rmsd_A)
    tica = fit_reference_tica(ds, lag=recommended_lag(ds) if lag is None else lag)
    ref = prepare_reference(ds, tica, cfg)
    dt_ns = ds.meta.dt_frame_ps * 1e-3
    lengths = ds.trajectory_lengths()
    rmsd_all, n_fold, n_unfold = _folding_transitions(ds, ref, cfg)
    halves = _Halves.of(ds, ref, rmsd_all, cfg.folded_rmsd_A)
    hb, _ = M.histogram2d(ref.y, ref.basin_edges[0], ref.basin_edges[1], ref.weights)
    barriers = basin_barriers(ref.basin_labels, M.free_energy(hb, ref.kT), ref.basin_min) / ref.kT
    rep = DatasetReport(
        dataset=str(path), content_hash=ds.content_hash, n_frames=ds.n_frames, n_trajectories=ds.n_trajectories,
        temperature_K=ds.temperature, dt_frame_ps=float(ds.meta.dt_frame_ps), total_time_ns=float(ds.n_frames * dt_ns),
        longest_trajectory_ns=float(lengths.max() * dt_ns) if len(lengths) else 0.0,
        folded_fraction=float(ref.folded_fraction), folded_rmsd_A=cfg.folded_rmsd_A, native_source=ref.native_source,
        n_folding=int(n_fold), n_unfolding=int(n_unfold), basin_transitions=int(ref.transitions_per_trajectory.sum()),
        n_basins=int(len(ref.basin_min)), basin_populations=[float(p) for p in ref.basin_population],
        basin_escape_barriers_kT=[float(b) for b in barriers],
        lowest_barrier_kT=float(np.nanmin(barriers)) if np.isfinite(barriers).any() else None,
        tica_lag_frames=int(tica.lag),
        implied_timescales_ns=[float(x) * 1e-3 for x in np.atleast_1d(tica.timescales_ps)],
        fes_half_difference_kcal=halves.difference, folded_fraction_halves=halves.folded, usable=False,
    )
    rep.warnings = _warnings(rep, fes_tolerance_kcal, min_transitions)
    rep.usable = bool(not any(w.startswith(("FES not converged", "one trajectory")) for w in rep.warnings)
                      and min(n_fold, n_unfold) >= 1)
    out = Path(out) if out else Path(path) / "report"
    out.mkdir(parents=True, exist_ok=True)
    rep.figure = str(_figure(out / "report.png", ref, halves.fes, halves.p_all, halves.edges, rmsd_all,
                             cfg.folded_rmsd_A, rep))
    atomic_write_json(out / "report.json", json.loads(json.dumps(asdict(rep), default=float)))
    return rep


def _report_config(native: str | None, folded_rmsd_A: float | None):
    """The evaluation config of the report: the native structure, and a folded threshold that moves the
    transition cores with it when it lies outside the default cores."""
    from raycg.evaluate.config import EvalConfig

    cfg_kw: dict[str, Any] = {"native_pdb": native}
    if folded_rmsd_A is not None:
        cfg_kw["folded_rmsd_A"] = folded_rmsd_A
        base = EvalConfig()
        if not base.folding_core_A < folded_rmsd_A < base.unfolded_core_A:
            cfg_kw.update(folding_core_A=0.8 * folded_rmsd_A, unfolded_core_A=folded_rmsd_A + 1.0)
    return EvalConfig(**cfg_kw)


def _folding_transitions(ds, ref, cfg) -> tuple[list[np.ndarray], int, int]:
    """Cα RMSD to native of every trajectory and the folding / unfolding transitions between the cores."""
    from raycg.cv import rmsd_to
    from raycg.cv.transitions import count_two_state_transitions

    n_fold = n_unfold = 0
    rmsd_all = []
    for t in range(ds.n_trajectories):
        r = rmsd_to(np.asarray(ds.coords[ds.trajectory_slice(t)])[:, ref.ca_index], ref.native)
        rmsd_all.append(r)
        f, u = count_two_state_transitions(r, cfg.folding_core_A, cfg.unfolded_core_A)
        n_fold += f
        n_unfold += u
    return rmsd_all, n_fold, n_unfold


@dataclass
class _Halves:
    """The trajectories split in two (odd/even), compared on a coarse TIC 1-2 grid: each half's FES, the
    pooled histogram, their population-weighted FES difference, and each half's folded fraction."""

    edges: list[np.ndarray]
    fes: list[np.ndarray]
    p_all: np.ndarray
    difference: float
    folded: list[float]

    @classmethod
    def of(cls, ds, ref, rmsd_all: list[np.ndarray], folded_rmsd_A: float) -> _Halves:
        from raycg.evaluate import metrics as M

        halves = [np.arange(ds.n_trajectories)[k::2] for k in (0, 1)]
        edges = [np.linspace(ref.edges[c][0], ref.edges[c][-1], CONVERGENCE_BINS + 1) for c in (0, 1)]
        hists, folded = [], []
        for idx in halves:
            frames = ds.frames_of(idx) if len(idx) else np.zeros(0, np.int64)
            w = None if ref.weights is None else ref.weights[frames]
            hists.append(M.histogram2d(ref.y[frames], edges[0], edges[1], w)[0])
            r = np.concatenate([rmsd_all[i] for i in idx]) if len(idx) else np.zeros(0)
            folded.append(float(np.mean(r < folded_rmsd_A)) if r.size else float("nan"))
        fes = _halves_fes(hists, ref.kT)
        p_all = hists[0] + hists[1]
        diff = _weighted_abs_diff(fes[0], fes[1], p_all) if ds.n_trajectories >= 2 else float("inf")
        return cls(edges, fes, p_all, diff, folded)


def _warnings(rep: DatasetReport, fes_tolerance_kcal: float, min_transitions: int) -> list[str]:
    """What makes the dataset a weak reference, one line each."""
    out: list[str] = []
    diff, fold_h, ts = rep.fes_half_difference_kcal, rep.folded_fraction_halves, rep.implied_timescales_ns
    if rep.n_trajectories < 2:
        out.append("one trajectory only: convergence cannot be checked by halves; run several replicas")
    elif diff > fes_tolerance_kcal:
        out.append(f"FES not converged: the two halves of the trajectories differ by {diff:.2f} kcal/mol "
                   f"(> {fes_tolerance_kcal}); simulate longer or more replicas")
    if abs(fold_h[0] - fold_h[1]) > 0.1:
        out.append(f"folded fraction differs between halves ({fold_h[0]:.2f} vs {fold_h[1]:.2f})")
    if ts and ts[0] > 0.2 * rep.longest_trajectory_ns:
        out.append(f"slowest implied timescale {ts[0]:.3g} ns is not short against the longest "
                   f"trajectory ({rep.longest_trajectory_ns:.3g} ns): trajectories may not forget their starts")
    if min(rep.n_folding, rep.n_unfolding) < min_transitions:
        out.append(f"only {rep.n_folding} folding / {rep.n_unfolding} unfolding transitions (< {min_transitions}): "
                   "basin populations rest on few events")
    if rep.n_basins < 2:
        out.append("one basin in the TIC 1-2 FES: basin-transition and trapping metrics carry no information")
    if not 0.02 < rep.folded_fraction < 0.98:
        out.append(f"folded fraction {rep.folded_fraction:.2f}: one basin is barely sampled")
    return out


def _figure(dest: Path, ref: Any, fes_h: list[np.ndarray], p_all: np.ndarray, cedges: list[np.ndarray],
            rmsd_all: list[np.ndarray], thr: float, rep: DatasetReport) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8), constrained_layout=True)
    ex, ey = ref.edges[0], ref.edges[1]
    extent = (ex[0], ex[-1], ey[0], ey[-1])
    im = axes[0].imshow(ref.fes2d.T, origin="lower", extent=extent, aspect="auto", cmap="viridis")
    fig.colorbar(im, ax=axes[0], label="F (kcal/mol)")
    axes[0].set(title="reference FES", xlabel="TIC 1", ylabel="TIC 2")
    d = fes_h[0] - fes_h[1]
    p = p_all / max(p_all.sum(), 1e-300)
    ok = p > 0
    if ok.any():
        d = d - np.average(d[ok], weights=p[ok])
    vmax = max(1.0, float(np.nanmax(np.abs(np.where(ok, d, np.nan)))) if ok.any() else 1.0)
    cextent = (cedges[0][0], cedges[0][-1], cedges[1][0], cedges[1][-1])
    im = axes[1].imshow(np.where(ok, d, np.nan).T, origin="lower", extent=cextent, aspect="auto", cmap="RdBu_r",
                        vmin=-vmax, vmax=vmax)
    fig.colorbar(im, ax=axes[1], label="ΔF halves (kcal/mol)")
    axes[1].set(title=f"convergence: mean |ΔF| = {rep.fes_half_difference_kcal:.2f}", xlabel="TIC 1", ylabel="TIC 2")
    r = np.concatenate(rmsd_all) if rmsd_all else np.zeros(1)
    axes[2].hist(r, bins=80, color="0.3")
    axes[2].axvline(thr, color="C3", lw=2, label=f"folded < {thr} Å ({100 * rep.folded_fraction:.0f}%)")
    axes[2].set(title=f"Cα RMSD to native; {rep.n_folding} fold / {rep.n_unfolding} unfold", xlabel="RMSD (Å)",
                ylabel="frames")
    axes[2].legend()
    for ax in axes:
        for item in [ax.title, ax.xaxis.label, ax.yaxis.label]:
            item.set_fontsize(13)
    with atomic_path(dest) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return dest
