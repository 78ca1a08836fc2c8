"""What a reference's landscape looks like: TICA basins, barriers, populations, transitions, timescales.

:func:`landscape_summary` fits the reference TICA (Cα pair distances), finds the basins of the 2-D FES
on TIC 1-2 exactly as the scoring does (:func:`raycg.evaluate.score.prepare_reference`, i.e.
:func:`raycg.evaluate.metrics.find_basins` on the coarse basin grid), and measures each basin's escape
barrier with :func:`basin_barriers`. The generator stores the result in the dataset's provenance
summary (``raycg data info`` prints it); ``raycg data report`` recomputes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_NEIGHBOURS = ((1, -1), (1, 0), (1, 1), (0, 1))        # each unordered 8-neighbour direction once


def basin_saddles(labels: np.ndarray, fes: np.ndarray) -> dict[tuple[int, int], float]:
    """Lowest saddle between each pair of adjacent basins: min over adjacent bin pairs (one bin in each)
    of ``max(F_u, F_v)`` — the definition :func:`raycg.evaluate.metrics.find_basins` merges by."""
    lab = np.asarray(labels)
    f = np.where(np.isfinite(fes), fes, np.inf)
    nx, ny = lab.shape
    out: dict[tuple[int, int], float] = {}
    for dx, dy in _NEIGHBOURS:
        xs = slice(max(0, -dx), nx - max(0, dx))
        ys = slice(max(0, -dy), ny - max(0, dy))
        xo = slice(max(0, dx), nx - max(0, -dx))
        yo = slice(max(0, dy), ny - max(0, -dy))
        a, b = lab[xs, ys], lab[xo, yo]
        h = np.maximum(f[xs, ys], f[xo, yo])
        m = (a >= 0) & (b >= 0) & (a != b)
        for u, v, hh in zip(a[m], b[m], h[m]):
            key = (int(min(u, v)), int(max(u, v)))
            out[key] = min(out.get(key, np.inf), float(hh))
    return out


def basin_barriers(labels: np.ndarray, fes: np.ndarray, basin_min: np.ndarray) -> np.ndarray:
    """Escape barrier of every basin (same units as ``fes``): its lowest saddle to a neighbouring basin
    minus its own minimum; NaN for a basin without neighbours (e.g. the only one)."""
    sad = basin_saddles(labels, fes)
    out = np.full(len(basin_min), np.nan)
    for (u, v), h in sad.items():
        for b in (u, v):
            out[b] = np.fmin(out[b], h - basin_min[b])
    return out


def landscape_summary(dataset, lag: int, *, config=None, tica=None) -> dict[str, Any]:
    """Basins, barriers (k_BT), populations, transitions and implied timescales of ``dataset``.

    ``lag``: TICA lag in frames (ignored when a fitted ``tica`` is given); ``config``: an
    :class:`raycg.evaluate.config.EvalConfig` (default settings otherwise).
    """
    from raycg.cv import fit_reference_tica
    from raycg.evaluate import metrics as M
    from raycg.evaluate import prepare_reference
    from raycg.evaluate.config import EvalConfig

    config = config or EvalConfig()
    tica = tica or fit_reference_tica(dataset, lag=int(lag))
    ref = prepare_reference(dataset, tica, config)
    hb, _ = M.histogram2d(ref.y, ref.basin_edges[0], ref.basin_edges[1], ref.weights)
    fb = M.free_energy(hb, ref.kT)
    barriers = basin_barriers(ref.basin_labels, fb, ref.basin_min) / ref.kT
    n_traj = max(len(ref.traj_offsets) - 1, 1)
    its = [float(t) for t in np.atleast_1d(tica.timescales_ps)[:3]]
    lengths_ps = np.diff(ref.traj_offsets) * ref.dt_frame_ps
    return {
        "tica_lag_frames": int(tica.lag), "tica_lag_ps": float(tica.lag * ref.dt_frame_ps),
        "implied_timescales_ps": [round(t, 2) for t in its],
        "slowest_timescale_over_trajectory": round(its[0] / float(np.median(lengths_ps)), 4) if its else None,
        "n_basins": int(len(ref.basin_min)),
        "basin_populations": [round(float(p), 4) for p in ref.basin_population],
        "basin_min_free_energy_kT": [round(float(f / ref.kT), 3) for f in ref.basin_min],
        "basin_escape_barriers_kT": [round(float(b), 3) for b in barriers],
        "lowest_barrier_kT": round(float(np.nanmin(barriers)), 3) if np.isfinite(barriers).any() else None,
        "basin_transitions_per_trajectory": round(float(ref.transitions_per_trajectory.sum()) / n_traj, 3),
        "folded_population": round(float(ref.folded_fraction), 4),
        "folding_transitions_per_trajectory": round(float(np.sum(ref.folding_transitions_per_trajectory)) / n_traj, 3),
        "folded_rmsd_A": float(config.folded_rmsd_A),
        "basin_definition": (f"find_basins on the {config.basin_bins}x{config.basin_bins} TIC 1-2 FES, merged below "
                             f"{config.basin_merge_kT} kT; "
                             "escape barrier = lowest saddle to a neighbour - own minimum"),
    }
