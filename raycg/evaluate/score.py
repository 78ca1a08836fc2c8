"""Scoring model trajectories against the reference: projection, FES, metrics, trapping, intervals,
convergence.

``score(reference, tica, samples, config)`` returns a :class:`TrialScore`; ``TrialScore.save(dir)``
writes ``scores.json`` (metrics + convergence + counts + config + provenance) and ``fes.npz`` (grids,
histograms, free energies, basins and per-replica arrays; key names documented in ``METRICS.md``).

The reference side does not depend on the model: :func:`prepare_reference` (``reference.py``)
computes it once and ``score(..., reference_summary=...)`` reuses it across trials, bootstraps and
noise floors.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raycg import units as U
from raycg.cv.rmsd import RMSD_CHUNK, mirror, rmsd_to  # noqa: F401 - re-exported
from raycg.cv.tica import ReferenceTICA
from raycg.cv.transitions import count_two_state_transitions_per_trajectory
from raycg.errors import DatasetError, InputError
from raycg.evaluate import metrics as M
from raycg.evaluate.bootstrap import bootstrap_intervals
from raycg.evaluate.config import EvalConfig
from raycg.evaluate.convergence import Convergence, ReplicaSeries, assess_convergence
from raycg.evaluate.parts import (
    FOLDING_PSEUDO_EVENTS,
    build_parts,
    distribution_metrics,
    kl_epsilon_sensitivity,
    reference_w1_hist,
)
from raycg.evaluate.projection import project
from raycg.evaluate.reference import (  # noqa: F401 - re-exported
    PACKAGED_NATIVE,
    REFERENCE_CONFIG_FIELDS,
    SUMMARY_VERSION,
    ReferenceSummary,
    basin_stats,
    ca_bead_indices,
    folding_events,
    prepare_reference,
    stride_for,
    tica_fingerprint,
)
from raycg.evaluate.samples import ModelSamples
from raycg.utils.io import atomic_path, atomic_write_json

if TYPE_CHECKING:
    from raycg.data.format import CGDataset

SCORES_FORMAT = "raycg-trial-scores"
#: 2: "convergence" record, bootstrap intervals, replica_time_lost_fraction, blow-up penalty.
SCORES_VERSION = 2
__all__ = ["FOLDING_PSEUDO_EVENTS", "ReferenceSummary", "TrialScore", "prepare_reference", "score",
           "tica_fingerprint"]


class _Clock:
    """Wall time of consecutive stages (seconds), reported in ``TrialScore.info['timings_s']``."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.times[stage] = round(now - self._t, 4)
        self._t = now


@dataclass
class TrialScore:
    """Metrics of one trial (``metrics``), its convergence verdict (``convergence``), the arrays behind
    them (``arrays`` -> ``fes.npz``), and bookkeeping (``info``: counts, exclusions, native source,
    TICA, config, bootstrap)."""

    metrics: dict[str, float]
    arrays: dict[str, np.ndarray]
    info: dict[str, Any]
    convergence: Convergence | None = None

    @property
    def fes(self) -> dict[str, np.ndarray]:
        return self.arrays

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write ``scores.json`` and ``fes.npz`` into ``out_dir`` (each atomically)."""
        from raycg.utils.provenance import provenance

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "fes.npz") as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v) for k, v in self.arrays.items()})
        doc = {
            "format": SCORES_FORMAT, "version": SCORES_VERSION,
            "metrics": {k: (float(v) if v is not None and np.isfinite(v) else None) for k, v in self.metrics.items()},
            "convergence": self.convergence.to_dict() if self.convergence is not None else None,
            "info": self.info,
            "provenance": provenance(self.info.get("config"), self.info.get("reference_hash")),
        }
        atomic_write_json(out / "scores.json", doc)
        return out


@dataclass
class _Selection:
    """Replicas after burn-in: the scored ones (with frames) and the lost frames of every unit."""

    kept: list[np.ndarray] = field(default_factory=list)
    sources: list[str | None] = field(default_factory=list)
    first_frames: list[np.ndarray] = field(default_factory=list)
    lost_kept: list[int] = field(default_factory=list)    # per scored replica
    lost_frameless: list[int] = field(default_factory=list)  # per replica without frames after burn-in

    @property
    def lost(self) -> np.ndarray:
        return np.asarray(self.lost_kept + self.lost_frameless, dtype=np.float64)


def _select(samples: ModelSamples, burn_in: float) -> _Selection:
    """Drop ``floor(burn_in · planned frames)`` at the start of every replica; a blown-up replica loses
    the planned frames after its last saved one (counted after burn-in)."""
    sel = _Selection()
    names = samples.replica_sources or [None] * len(samples.replicas)
    planned = samples.planned_frames or [len(r) for r in samples.replicas]
    starts = samples.start_frames or [r[0] for r in samples.replicas]
    for r, name, n_plan, start in zip(samples.replicas, names, planned, starts):
        drop = int(math.floor(burn_in * n_plan))
        lost = n_plan - max(len(r), drop)
        if len(r) - drop <= 0:
            sel.lost_frameless.append(n_plan - drop)
            continue
        sel.kept.append(r[drop:])
        sel.sources.append(name)
        sel.first_frames.append(start)
        sel.lost_kept.append(lost)
    for n_plan in samples.lost_planned_frames:
        sel.lost_frameless.append(n_plan - int(math.floor(burn_in * n_plan)))
    return sel


def _project_kept(sel: _Selection, tica: ReferenceTICA, k: int) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([len(r) for r in sel.kept], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    y = np.empty((int(offsets[-1]), k), np.float64)
    for i, r in enumerate(sel.kept):
        y[offsets[i] : offsets[i + 1]] = project(tica, r, k, where=sel.sources[i])
    return y, offsets


#: Below this many frames mdtraj's RMSD runs on one OpenMP thread: its thread start-up dominates small
#: inputs, and on a busy machine a multi-threaded call was measured 6x slower (84 vs 14 ms, 1600 frames).
SMALL_RMSD_FRAMES = 100_000


def _one_openmp_thread():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="openmp")


def _rmsd_series(kept: list[np.ndarray], ref: ReferenceSummary, stride: int, first: list[np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cα RMSD to native and to its mirror of frames ``[::stride]`` of every replica (in blocks of whole
    replicas, bounded memory), the offsets of each replica in them, and the RMSD to native of the
    ``first`` frames (one per replica; computed in the same call)."""
    ca = ref.ca_index
    nat_parts, mir_parts = [], []
    block: list[np.ndarray] = []
    mir = mirror(ref.native)

    def flush() -> None:
        x = np.concatenate(block)
        with _one_openmp_thread() if len(x) < SMALL_RMSD_FRAMES else contextlib.nullcontext():
            nat_parts.append(rmsd_to(x, ref.native))
            mir_parts.append(rmsd_to(x, mir))
        block.clear()

    rows = 0
    for r in kept:
        block.append(r[::stride][:, ca])
        rows += len(block[-1])
        if rows >= RMSD_CHUNK:
            flush()
            rows = 0
    block.append(np.stack(first)[:, ca])
    flush()
    nat, mir_r = np.concatenate(nat_parts), np.concatenate(mir_parts)
    n = len(nat) - len(first)
    sub_len = np.array([len(range(0, len(r), stride)) for r in kept], np.int64)
    return nat[:n], mir_r[:n], np.concatenate([[0], np.cumsum(sub_len)]), nat[n:]


def _basin_metrics(ref: ReferenceSummary, y: np.ndarray, offsets: np.ndarray, dt_m: float | None,
                   m: dict[str, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TIC-basin trapping metrics into ``m``; returns transitions, max-basin fraction per replica, populations."""
    n_b = len(ref.basin_min)
    bseq = M.lookup_grid(y, ref.basin_edges[0], ref.basin_edges[1], ref.basin_labels)
    cseq = M.lookup_grid(y, ref.basin_edges[0], ref.basin_edges[1], ref.core_grid)
    trans, maxfrac, bpop = basin_stats(bseq, cseq, offsets, n_b)
    lengths = np.diff(offsets)
    m["n_basins"] = float(n_b)
    m["transitions_per_replica_mean"] = float(trans.mean())
    m["transitions_per_replica_median"] = float(np.median(trans))
    m["transitions_per_trajectory_mean_reference"] = float(ref.transitions_per_trajectory.mean())
    rate_m = float(trans.sum() / (lengths.sum() * dt_m) * U.NS_TO_PS) if dt_m else float("nan")
    ref_len = np.diff(ref.traj_offsets)
    rate_r = float(ref.transitions_per_trajectory.sum() / (ref_len.sum() * ref.dt_frame_ps) * U.NS_TO_PS)
    m["transition_rate_per_ns_model"] = rate_m
    m["transition_rate_per_ns_reference"] = rate_r
    m["transition_rate_ratio"] = rate_m / rate_r if rate_r > 0 and np.isfinite(rate_m) else float("nan")
    m["deepest_well_population_model"] = float(bpop[0]) if n_b else float("nan")
    m["deepest_well_population_reference"] = float(ref.basin_population[0]) if n_b else float("nan")
    m["deepest_well_excess"] = m["deepest_well_population_model"] - m["deepest_well_population_reference"]
    m["max_basin_population_model"] = float(bpop.max()) if n_b else float("nan")
    m["trapped_fraction_mean"] = float(np.nanmean(maxfrac)) if np.isfinite(maxfrac).any() else float("nan")
    m["trapped_fraction_mean_reference"] = (float(np.nanmean(ref.max_basin_fraction))
                                            if np.isfinite(ref.max_basin_fraction).any() else float("nan"))
    return trans, maxfrac, bpop


def _basin_cells(ref: ReferenceSummary, y: np.ndarray, offsets: np.ndarray) -> tuple[list[np.ndarray], int]:
    """Flat cell on the basin grid (last index = outside it) of every frame, cut per replica."""
    bx, by = ref.basin_edges
    ix, iy = M.bin_index(y[:, 0], bx), M.bin_index(y[:, 1], by)
    n = (len(bx) - 1) * (len(by) - 1)
    cell = np.where((ix >= 0) & (iy >= 0), ix * (len(by) - 1) + iy, n)
    return [cell[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)], n + 1


def _check_inputs(reference: CGDataset, tica: ReferenceTICA, samples: ModelSamples, config: EvalConfig,
                  reference_summary: ReferenceSummary | None) -> ReferenceSummary:
    if not isinstance(samples, ModelSamples):
        raise InputError(f"samples must be ModelSamples (see load_model_trajectories), got {type(samples).__name__}")
    where = ", ".join(samples.sources[:2]) or "model trajectories"
    if samples.n_beads != reference.n_beads:
        raise DatasetError(f"trajectories have {samples.n_beads} beads but the reference has {reference.n_beads}",
                           where=where, hint="score trajectories of the same CG system as the reference")
    if reference_summary is None:
        return prepare_reference(reference, tica, config)
    tica.check_compatible(reference)
    reference_summary.check_matches(reference, tica, config)
    return reference_summary


@dataclass
class _Rmsd:
    """Cα RMSD series of the kept frames (``[::stride]``): to native, to its mirror, replica offsets
    into them, and each replica's start frame to native."""

    native: np.ndarray
    mirror: np.ndarray
    offsets: np.ndarray
    start: np.ndarray


def _fes_metrics(ref: ReferenceSummary, y: np.ndarray, core: dict[str, float], t_all, config: EvalConfig
                 ) -> tuple[dict[str, float], list[tuple[np.ndarray, float]]]:
    """The FES metrics on TIC 1–2 and per TIC (KL, JS, W1, FES errors, coverage), in report order; also
    the 1-D histograms of the model (histogram, outside count) per TIC."""
    k, lost = ref.n_components, (t_all.lost if config.blowup_penalty else 0.0)
    h1 = [M.histogram1d(y[:, c], ref.edges[c]) for c in range(k)]
    m: dict[str, float] = {key: core[key] for key in ("kl_ref_model", "kl_model_ref", "js_divergence")}
    for c in range(k):
        m[f"kl_ref_model_tic{c + 1}"] = M.kl_divergence(M.with_outside(ref.hist1d[c], 0.0),
                                                        M.with_outside(h1[c][0], h1[c][1] + lost), config.kl_epsilon)
    m.update(kl_epsilon_sensitivity(ref, t_all, config))
    m["w1"] = core["w1"]
    for c in range(k):
        m[f"w1_tic{c + 1}"] = M.wasserstein_1d(ref.y[:, c], y[:, c], ref.weights, None)
    for key in ("fes_mse_aligned", "fes_mse", "coverage", "coverage_weighted", "missed_reference_mass"):
        m[key] = core[key]
    m["outside_grid_fraction"] = t_all.outside / len(y)
    return m, h1


def _folding_metrics(ref: ReferenceSummary, core: dict[str, float], rmsd: _Rmsd, fold_ev: np.ndarray,
                     config: EvalConfig) -> dict[str, float]:
    """Folded and mirror populations (Cα RMSD) and folding transitions, model and reference."""
    n_ev_r = float(ref.folding_transitions_per_trajectory.sum())
    return {
        "folded_fraction_model": core["folded_fraction_model"],
        "folded_fraction_reference": ref.folded_fraction,
        "folded_fraction_diff": core["folded_fraction_diff"],
        "folded_fraction_abs_error": core["folded_fraction_abs_error"],
        "mirror_fraction_model": M.mirror_fraction(rmsd.native, rmsd.mirror),
        "mirror_fraction_reference": ref.mirror_fraction,
        "mirror_folded_fraction_model": M.folded_fraction(rmsd.mirror, config.folded_rmsd_A),
        "mirror_folded_fraction_reference": ref.mirror_folded_fraction,
        "rmsd_mean_model_A": float(np.mean(rmsd.native)),
        "folding_transitions_per_replica_mean": float(fold_ev.mean()),
        "folding_transitions_per_trajectory_mean_reference": float(ref.folding_transitions_per_trajectory.mean()),
        "folding_transition_rate_per_ns_model": core["folding_transition_rate_per_ns_model"],
        "folding_transition_rate_per_ns_reference": (n_ev_r / ref.folding_time_ns if ref.folding_time_ns > 0
                                                     else float("nan")),
        "folding_transition_rate_ratio": core["folding_transition_rate_ratio"],
        "folding_transition_rate_log_ratio_abs": core["folding_transition_rate_log_ratio_abs"],
    }


def _count_metrics(samples: ModelSamples, *, n_frames: int, n_used: int) -> dict[str, float]:
    """Frames and replicas scored, and what blew up."""
    total = samples.n_replicas_total
    return {
        "n_frames_model": float(n_frames),
        "n_replicas_used": float(n_used),
        "n_replicas_total": float(total),
        "n_blown_up": float(samples.n_blown_up),
        "blown_up_fraction": samples.n_blown_up / total if total else 0.0,
        "replica_time_lost_fraction": samples.replica_time_lost_fraction,
    }


def _replica_series(ref: ReferenceSummary, tica: ReferenceTICA, y: np.ndarray, offsets: np.ndarray, parts,
                    n_kept: int, start_rmsd: np.ndarray, fold_ev: np.ndarray, dt_m: float | None,
                    entries: tuple[np.ndarray, np.ndarray] | None = None) -> ReplicaSeries:
    """What the convergence diagnostics read, per replica; ``entries``: committed entries into the folded
    and into the unfolded core per replica."""
    cells, n_cells = _basin_cells(ref, y, offsets)
    return ReplicaSeries(
        basin_cells=cells, n_cells=n_cells,
        folded_fraction=parts.folded[:n_kept] / np.maximum(parts.rmsd_frames[:n_kept], 1),
        start_rmsd=start_rmsd,
        events=np.asarray(fold_ev, np.float64), frames=np.diff(offsets).astype(np.float64), dt_frame_ps=dt_m,
        slowest_timescale_ps=float(tica.timescales_ps[0]) if len(tica.eigenvalues) else float("nan"),
        tics=[y[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)], reference_lag_ps=tica.lag_ps,
        folding_entries=None if entries is None else np.asarray(entries[0], np.float64),
        unfolding_entries=None if entries is None else np.asarray(entries[1], np.float64),
        folded_frames=np.asarray(parts.folded[:n_kept], np.float64),
        rmsd_frames=np.asarray(parts.rmsd_frames[:n_kept], np.float64))


def _score_arrays(ref: ReferenceSummary, t_all, h1: list[tuple[np.ndarray, float]], fold_ev: np.ndarray,
                  m: dict[str, float], basins: tuple[np.ndarray, np.ndarray, np.ndarray], offsets: np.ndarray,
                  lost: np.ndarray, series: ReplicaSeries) -> dict[str, np.ndarray]:
    """``fes.npz``: grids, histograms, free energies, basins and per-replica arrays (METRICS.md)."""
    kT = ref.kT
    trans, maxfrac, bpop = basins
    h2 = t_all.hist.reshape(ref.hist2d.shape)
    return {
        "edges_x": ref.edges[0], "edges_y": ref.edges[1],
        "fes_reference": ref.fes2d, "fes_model": M.free_energy(h2, kT),
        "hist_reference": ref.hist2d, "hist_model": h2,
        "transitions_per_replica": trans.astype(np.int64),
        "folding_transitions_per_replica": fold_ev.astype(np.int64),
        "folding_transitions_per_trajectory_reference": ref.folding_transitions_per_trajectory.astype(np.int64),
        "deepest_well_population_model": np.float64(m["deepest_well_population_model"]),
        "deepest_well_population_reference": np.float64(m["deepest_well_population_reference"]),
        "kT": np.float64(kT), "temperature_K": np.float64(ref.temperature_K),
        "edges_1d": np.stack(ref.edges), "hist1d_reference": np.stack(ref.hist1d),
        "hist1d_model": np.stack([h for h, _ in h1]),
        "fes1d_reference": np.stack([M.free_energy(h, kT) for h in ref.hist1d]),
        "fes1d_model": np.stack([M.free_energy(h, kT) for h, _ in h1]),
        "basin_edges_x": ref.basin_edges[0], "basin_edges_y": ref.basin_edges[1],
        "basin_labels": ref.basin_labels, "basin_population_reference": ref.basin_population,
        "basin_population_model": bpop, "replica_max_basin_fraction": maxfrac,
        "replica_n_frames": np.diff(offsets), "transitions_per_trajectory_reference": ref.transitions_per_trajectory,
        "replica_lost_frames": lost, "replica_folded_fraction": series.folded_fraction,
        "replica_start_rmsd_A": series.start_rmsd,
    }


def score(reference: CGDataset, tica: ReferenceTICA, samples: ModelSamples, config: EvalConfig | None = None, *,
          reference_summary: ReferenceSummary | None = None) -> TrialScore:
    """Score model ``samples`` against the ``reference`` dataset on the reference ``tica``.

    Each replica loses its first ``burn_in_fraction`` of planned frames, is projected on the first
    ``n_components`` TICs, and every metric of ``METRICS.md`` is computed, with block-bootstrap
    intervals over replicas (``<m>_ci_low``/``<m>_ci_high``) and the convergence diagnostics
    (``TrialScore.convergence``, ``metrics["converged"]``). ``reference_summary`` (from
    :func:`prepare_reference` with the same config) skips the reference-side work.
    """
    config = config or EvalConfig()
    ref = _check_inputs(reference, tica, samples, config, reference_summary)
    clock = _Clock()
    sel = _select(samples, config.burn_in_fraction)
    if not sel.kept:
        raise DatasetError(f"no model frames left after dropping {config.burn_in_fraction:.0%} burn-in "
                           f"({samples.n_replicas} replicas)", where=", ".join(samples.sources[:2]),
                           hint="simulate longer or lower evaluate.burn_in_fraction")
    y, offsets = _project_kept(sel, tica, ref.n_components)
    clock("projection")
    stride = stride_for(len(y), config.rmsd_max_frames)
    rmsd = _Rmsd(*_rmsd_series(sel.kept, ref, stride, sel.first_frames))
    entries = count_two_state_transitions_per_trajectory(rmsd.native, rmsd.offsets, config.folding_core_A,
                                                         config.unfolded_core_A)
    fold_ev = entries[0] + entries[1]
    clock("rmsd")
    parts = build_parts(ref, y, offsets, sel.lost, rmsd.native, rmsd.offsets, fold_ev, config)
    t_all = parts.totals()
    ref_w1 = reference_w1_hist(ref, parts.w1_edges)
    dt_m = samples.dt_frame_ps
    core = distribution_metrics(ref, t_all, config, dt_m, ref_w1=ref_w1, w1_edges=parts.w1_edges)
    m, h1 = _fes_metrics(ref, y, core, t_all, config)
    clock("distributions")
    m.update(_folding_metrics(ref, core, rmsd, fold_ev, config))
    basins = _basin_metrics(ref, y, offsets, dt_m, m)
    clock("basins")
    m.update(_count_metrics(samples, n_frames=len(y), n_used=len(sel.kept)))
    ci, ci_info = bootstrap_intervals(ref, parts, config, dt_m, m, ref_w1=ref_w1)
    m.update(ci)
    clock("bootstrap")
    series = _replica_series(ref, tica, y, offsets, parts, len(sel.kept), rmsd.start, fold_ev, dt_m, entries)
    conv = assess_convergence(series, config)
    m["converged"] = 1.0 if conv.converged else 0.0
    clock("convergence")
    arrays = _score_arrays(ref, t_all, h1, fold_ev, m, basins, offsets, sel.lost, series)
    info = {
        "reference_hash": ref.dataset_hash, "reference_frames": ref.n_frames,
        "tica": {"lag_frames": tica.lag, "lag_ps": tica.lag_ps, "feature_kind": tica.feature_kind,
                 "dim": tica.dim, "dataset_hash": tica.dataset_hash},
        "native_source": ref.native_source, "kT_kcal_per_mol": ref.kT, "temperature_K": ref.temperature_K,
        "model_dt_frame_ps": dt_m, "rmsd_stride": stride,
        "n_replicas_total": samples.n_replicas_total, "n_blown_up": samples.n_blown_up,
        "n_empty": samples.n_empty, "n_without_frames_after_burn_in": len(sel.lost_frameless),
        "excluded": samples.excluded, "bootstrap": ci_info,
        "blowup_penalty": {"lost_frames_after_burn_in": float(t_all.lost), "applied": config.blowup_penalty},
        "sources": samples.sources, "config": config.model_dump(mode="json"), "timings_s": clock.times,
    }
    return TrialScore(metrics=m, arrays=arrays, info=info, convergence=conv)
