"""Within-trial uncertainty: a block bootstrap over replicas (METRICS.md, "Within-trial intervals").

Frames of one replica are correlated; replicas are independent (own start, own noise). A resample
draws ``U`` replicas with replacement (each replica a block: its histogram counts, folded frames,
folding events and lost time travel together) and recomputes every interval metric from the summed
statistics with the same function as the point estimate (:func:`parts.distribution_metrics`).
"""

from __future__ import annotations

import numpy as np

from raycg.evaluate.config import EvalConfig
from raycg.evaluate.metric_table import interval_metrics
from raycg.evaluate.parts import ReplicaParts, distribution_metrics


def normal_interval(estimate: float, values: np.ndarray, level: float) -> tuple[float, float]:
    """``estimate ± z · sd*``: the estimate's sampling spread from the bootstrap ``values`` (finite ones;
    NaN with fewer than two). Centred on the reported value, not on the bootstrap mean: resamples
    repeat replicas, which inflates plug-in divergences, so the bootstrap distribution sits above the
    estimate; its spread, not its location, is what it tells."""
    from scipy.stats import norm

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if len(v) < 2 or not np.isfinite(estimate):
        return float("nan"), float("nan")
    half = float(norm.ppf(0.5 + level / 2.0) * np.std(v, ddof=1))
    return estimate - half, estimate + half


def bootstrap_values(ref, parts: ReplicaParts, config: EvalConfig, dt_frame_ps: float | None, *,
                     ref_w1: np.ndarray | None) -> dict[str, np.ndarray]:
    """Every interval metric on ``bootstrap_resamples`` resamples of the units (W1 on the first
    ``bootstrap_resamples_w1``); empty arrays with fewer than two units."""
    names = interval_metrics()
    n_units, n_b = parts.n_units, config.bootstrap_resamples
    if n_units < 2 or n_b == 0:
        return {m: np.zeros(0) for m in names}
    rng = np.random.default_rng(config.bootstrap_seed)
    weights = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_b).astype(np.float64)
    n_w1 = min(config.bootstrap_resamples_w1, n_b)
    hist, hist_w1 = parts.totals_many(weights)
    values: dict[str, list[float]] = {m: [] for m in names}
    for b in range(n_b):
        t = parts.totals(weights[b], hist=hist[b], hist_w1=hist_w1[b])
        m = distribution_metrics(ref, t, config, dt_frame_ps, w1=b < n_w1, ref_w1=ref_w1, w1_edges=parts.w1_edges)
        for name in names:
            if name in m:
                values[name].append(m[name])
    return {k: np.asarray(v, np.float64) for k, v in values.items()}


#: Natural range of the interval metrics (bounds are clipped to it).
_RANGE = {"coverage": (0.0, 1.0), "coverage_weighted": (0.0, 1.0), "missed_reference_mass": (0.0, 1.0),
          "folded_fraction_abs_error": (0.0, 1.0),
          "js_divergence": (0.0, float(np.log(2.0)))}


def bootstrap_intervals(ref, parts: ReplicaParts, config: EvalConfig, dt_frame_ps: float | None,
                        estimates: dict[str, float], *, ref_w1: np.ndarray | None
                        ) -> tuple[dict[str, float], dict[str, float]]:
    """``<m>_ci_low`` / ``<m>_ci_high`` (:func:`normal_interval`, clipped to the metric's range) for
    every interval metric, and bookkeeping. NaN with fewer than two units (one replica carries no
    replica-to-replica information) or ``bootstrap_resamples`` = 0."""
    values = bootstrap_values(ref, parts, config, dt_frame_ps, ref_w1=ref_w1)
    out: dict[str, float] = {}
    for name, v in values.items():
        lo, hi = normal_interval(estimates.get(name, float("nan")), v, config.ci_level)
        a, b = _RANGE.get(name, (0.0, float("inf")))
        out[f"{name}_ci_low"] = float(np.clip(lo, a, b)) if np.isfinite(lo) else lo
        out[f"{name}_ci_high"] = float(np.clip(hi, a, b)) if np.isfinite(hi) else hi
    n = {k: len(v) for k, v in values.items()}
    info = {"resamples": max(n.values(), default=0), "resamples_w1": n.get("w1", 0), "units": parts.n_units,
            "level": config.ci_level, "interval": "estimate ± z·sd* (block bootstrap over replicas)"}
    return out, info
