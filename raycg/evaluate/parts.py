"""Per-replica sufficient statistics of a model sample, and the metrics computed from their sums.

Replicas are the independent units of a trial (each its own trajectory from its own start). Every
primary-capable metric is a function of sums over replicas (histogram counts, folded frames,
folding events, frames, lost frames), so :func:`distribution_metrics` computes the point estimate
(all replicas once) and every block-bootstrap resample (replicas drawn with replacement) with the
same code: the interval is about exactly the number reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from raycg import units as U
from raycg.evaluate import metrics as M
from raycg.evaluate.config import EvalConfig

#: Events added to both the model and the reference count in ``folding_transition_rate_log_ratio_abs``,
#: so that a model without any folding transition gets a large finite value instead of infinity.
FOLDING_PSEUDO_EVENTS = 0.5


@dataclass
class Totals:
    """Sums over (resampled) replicas: what :func:`distribution_metrics` needs."""

    hist: np.ndarray        # [nx * ny] counts on the FES grid
    outside: float          # frames outside the FES grid
    lost: float             # planned frames (after burn-in) lost to blow-ups
    hist_w1: np.ndarray     # [w1_bins²] counts on the W1 grid
    rmsd_frames: float      # frames with an RMSD (the [::stride] frames)
    folded: float           # of those, folded
    events: float           # folding + unfolding events
    frames: float           # frames scored (after burn-in)


@dataclass
class ReplicaParts:
    """Per-unit statistics; a unit is a scored replica or a blown-up replica that saved no frame."""

    cells: sparse.csr_matrix      # [U, nx * ny + 1] counts on the FES grid, last column = outside
    lost: np.ndarray              # [U] planned frames after burn-in lost to blow-ups
    w1_edges: list[np.ndarray] | None
    w1_cells: sparse.csr_matrix   # [U, w1_bins²]
    rmsd_frames: np.ndarray       # [U]
    folded: np.ndarray            # [U]
    events: np.ndarray            # [U]
    frames: np.ndarray            # [U]

    @property
    def n_units(self) -> int:
        return int(self.cells.shape[0])

    def totals(self, weights: np.ndarray | None = None, *, hist: np.ndarray | None = None,
               hist_w1: np.ndarray | None = None) -> Totals:
        """Sums over units, each unit counted ``weights[u]`` times (default once); ``hist``/``hist_w1``:
        the grid sums when already computed (:meth:`totals_many`)."""
        w = np.ones(self.n_units) if weights is None else np.asarray(weights, dtype=np.float64)
        h = np.asarray(self.cells.T @ w) if hist is None else hist
        hw = np.asarray(self.w1_cells.T @ w) if hist_w1 is None else hist_w1
        return Totals(hist=h[:-1], outside=float(h[-1]), lost=float(w @ self.lost), hist_w1=hw,
                      rmsd_frames=float(w @ self.rmsd_frames), folded=float(w @ self.folded),
                      events=float(w @ self.events), frames=float(w @ self.frames))

    def totals_many(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FES-grid and W1-grid counts for many weight vectors at once: ``[B, nx*ny+1]``, ``[B, w1²]``."""
        w = np.asarray(weights, dtype=np.float64)
        return np.asarray((self.cells.T @ w.T).T), np.asarray((self.w1_cells.T @ w.T).T)


def _unit_matrix(cells: np.ndarray, offsets: np.ndarray, n_units: int, n_cols: int) -> sparse.csr_matrix:
    """Counts per (unit, cell) of a per-frame cell index cut into units at ``offsets``."""
    unit = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    ok = cells >= 0
    return sparse.csr_matrix((np.ones(int(ok.sum())), (unit[ok], cells[ok])), shape=(n_units, n_cols))


def build_parts(ref, y: np.ndarray, offsets: np.ndarray, lost: np.ndarray, folded_rmsd: np.ndarray,
                rmsd_offsets: np.ndarray, events: np.ndarray, config: EvalConfig) -> ReplicaParts:
    """Per-unit statistics. ``y``/``offsets``: TIC coordinates of the scored frames cut per scored replica;
    ``lost`` ``[U]``: lost frames per unit, the scored replicas first, then frameless blown-up replicas;
    ``folded_rmsd``/``rmsd_offsets``: the strided per-frame RMSD to native; ``events``: folding events
    per scored replica."""
    n_units = len(lost)
    pad = n_units - (len(offsets) - 1)
    full = np.concatenate([offsets, np.full(pad, offsets[-1])]).astype(np.int64)
    ex, ey = ref.edges[0], ref.edges[1]
    nx, ny = len(ex) - 1, len(ey) - 1
    ix, iy = M.bin_index(y[:, 0], ex), M.bin_index(y[:, 1], ey)
    cell = np.where((ix >= 0) & (iy >= 0), ix * ny + iy, nx * ny)
    edges_w1 = M.w1_grid_edges(ref.y, y, config.w1_bins)
    cw = M.w1_cells(y, edges_w1) if edges_w1 is not None else np.full(len(y), -1)
    r_full = np.concatenate([rmsd_offsets, np.full(pad, rmsd_offsets[-1])]).astype(np.int64)
    fold_unit = np.repeat(np.arange(len(rmsd_offsets) - 1), np.diff(rmsd_offsets))
    folded = np.bincount(fold_unit, weights=(folded_rmsd < config.folded_rmsd_A).astype(np.float64),
                         minlength=n_units)
    return ReplicaParts(
        cells=_unit_matrix(cell, full, n_units, nx * ny + 1), lost=np.asarray(lost, np.float64),
        w1_edges=edges_w1, w1_cells=_unit_matrix(cw, full, n_units, config.w1_bins ** 2),
        rmsd_frames=np.diff(r_full).astype(np.float64), folded=folded,
        events=np.concatenate([np.asarray(events, np.float64), np.zeros(pad)]),
        frames=np.diff(full).astype(np.float64))


def reference_w1_hist(ref, edges: list[np.ndarray] | None) -> np.ndarray | None:
    """The reference's (weighted) counts on a W1 grid."""
    if edges is None:
        return None
    c = M.w1_cells(ref.y, edges)
    w = None if ref.weights is None else ref.weights[c >= 0]
    return np.bincount(c[c >= 0], weights=w, minlength=(len(edges[0]) - 1) * (len(edges[1]) - 1)).astype(float)


def lost_distance(ref) -> float:
    """Ground distance (TIC units) at which lost replica-time sits from every cell in W1: the diagonal
    of the reference FES grid (TIC 1 × TIC 2, padding included), the largest distance within it."""
    return float(math.hypot(ref.edges[0][-1] - ref.edges[0][0], ref.edges[1][-1] - ref.edges[1][0]))


def folding_rate_ratio(n_model: float, t_model_ns: float, n_ref: float, t_ref_ns: float, pseudo: float = 0.0
                       ) -> float:
    """(n_model / t_model) / (n_ref / t_ref) with ``pseudo`` events added to both counts; NaN when undefined."""
    if not (np.isfinite(t_model_ns) and t_model_ns > 0 and t_ref_ns > 0) or n_ref + pseudo <= 0:
        return float("nan")
    return float(((n_model + pseudo) / t_model_ns) / ((n_ref + pseudo) / t_ref_ns))


#: The regularisers of the KL(ref‖model) sensitivity columns (``kl_ref_model_eps<k>``, ε = 10^-k).
KL_SENSITIVITY_EPSILONS = (1e-8, 1e-4, 1e-3)


def kl_epsilon_name(eps: float) -> str:
    """``kl_ref_model_eps<k>`` for ε = 10^-k (k a whole number)."""
    k = -math.log10(eps)
    if abs(k - round(k)) > 1e-9:
        raise ValueError(f"ε = {eps:g} is not a power of ten")
    return f"kl_ref_model_eps{round(k)}"


def kl_epsilon_sensitivity(ref, t: Totals, config: EvalConfig,
                           epsilons: tuple[float, ...] = KL_SENSITIVITY_EPSILONS) -> dict[str, float]:
    """KL(ref‖model) of the same 2-D histograms as ``kl_ref_model`` (lost replica-time included as there)
    at each ε of ``epsilons``, by :func:`kl_epsilon_name`. Equal to each other when the model visits every
    reference cell; where it misses reference mass, a smaller ε gives a larger value."""
    lost = t.lost if config.blowup_penalty else 0.0
    p = M.with_outside(ref.hist2d, ref.outside2d)
    q = M.with_outside(t.hist, t.outside + lost)
    return {kl_epsilon_name(e): M.kl_divergence(p, q, e) for e in epsilons}


def distribution_metrics(ref, t: Totals, config: EvalConfig, dt_frame_ps: float | None, *,
                         w1: bool = True, ref_w1: np.ndarray | None = None,
                         w1_edges: list[np.ndarray] | None = None) -> dict[str, float]:
    """The primary-capable metrics of one sample from its :class:`Totals` (METRICS.md).

    Lost replica-time (``t.lost``, when ``config.blowup_penalty``) is model mass outside the reference
    grid in KL and JS, and mass at :func:`lost_distance` in W1. ``w1=False`` skips the optimal transport.
    """
    lost = t.lost if config.blowup_penalty else 0.0
    shape = ref.hist2d.shape
    p = M.with_outside(ref.hist2d, ref.outside2d)
    q = M.with_outside(t.hist, t.outside + lost)
    fes_m = M.free_energy(t.hist.reshape(shape), ref.kT)
    h2 = t.hist.reshape(shape)
    m = {"kl_ref_model": M.kl_divergence(p, q, config.kl_epsilon),
         "kl_model_ref": M.kl_divergence(q, p, config.kl_epsilon),
         "js_divergence": M.js_divergence(p, q),
         "fes_mse_aligned": M.fes_mse(ref.fes2d, fes_m, aligned=True),
         "fes_mse": M.fes_mse(ref.fes2d, fes_m),
         "coverage": M.coverage(ref.hist2d, h2),
         "coverage_weighted": M.coverage(ref.hist2d, h2, weighted=True)}
    m["missed_reference_mass"] = 1.0 - m["coverage_weighted"]
    if w1:
        m["w1"] = (M.w1_from_histograms(ref_w1, t.hist_w1, w1_edges, lost=lost, lost_distance=lost_distance(ref))
                   if ref_w1 is not None else float("nan"))
    folded = t.folded / t.rmsd_frames if t.rmsd_frames > 0 else float("nan")
    m["folded_fraction_model"] = folded
    m["folded_fraction_diff"] = folded - ref.folded_fraction
    m["folded_fraction_abs_error"] = abs(m["folded_fraction_diff"])
    t_model_ns = float(t.frames * dt_frame_ps / U.NS_TO_PS) if dt_frame_ps else float("nan")
    n_ref = float(ref.folding_transitions_per_trajectory.sum())
    m["folding_transition_rate_per_ns_model"] = t.events / t_model_ns if t_model_ns > 0 else float("nan")
    m["folding_transition_rate_ratio"] = folding_rate_ratio(t.events, t_model_ns, n_ref, ref.folding_time_ns)
    reg = folding_rate_ratio(t.events, t_model_ns, n_ref, ref.folding_time_ns, pseudo=FOLDING_PSEUDO_EVENTS)
    m["folding_transition_rate_log_ratio_abs"] = abs(math.log(reg)) if np.isfinite(reg) else float("nan")
    return m
