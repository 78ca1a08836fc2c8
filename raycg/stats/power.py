"""Power of a two-sided two-sample t-test and the seeds per group needed for a target power.

Uses the noncentral t distribution (equal group sizes n, df = 2n - 2, noncentrality
|g|·√(n/2)); with equal n and equal variances Welch's test has the same power to a close
approximation. ``g`` is a standardised effect (Hedges' g / Cohen's d).
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def power_two_sample(effect: float | np.ndarray, n_per_group: int | np.ndarray,
                     alpha: float = 0.05) -> np.ndarray | float:
    """Probability that a two-sided t-test at level ``alpha`` rejects, for true effect ``effect``.

    Example (Cohen's tables): effect 0.5, n = 64 per group → 0.80.
    """
    g = np.abs(np.asarray(effect, dtype=float))
    n = np.asarray(n_per_group, dtype=float)
    df = 2.0 * n - 2.0
    with np.errstate(invalid="ignore"):
        tc = stats.t.isf(alpha / 2.0, df)
        ncp = g * np.sqrt(n / 2.0)
        pw = stats.nct.sf(tc, df, ncp) + stats.nct.cdf(-tc, df, ncp)
    pw = np.where(np.isinf(g), 1.0, pw)
    return np.where(n >= 2, pw, np.nan)[()]


def seeds_for_power(effect: float, power: float = 0.8, alpha: float = 0.05,
                    n_max: int = 100_000) -> float:
    """Smallest n per group (≥ 2) whose two-sided t-test power reaches ``power`` for ``effect``.

    Returns ``inf`` when the effect is zero or needs more than ``n_max`` seeds, NaN for NaN input.
    """
    g = abs(float(effect))
    if np.isnan(g):
        return float("nan")
    if g == 0.0 or power_two_sample(g, n_max, alpha) < power:
        return float("inf")
    lo, hi = 2, 2
    while power_two_sample(g, hi, alpha) < power:  # bracket: power grows with n
        lo, hi = hi, min(hi * 2, n_max)
    if power_two_sample(g, lo, alpha) >= power:
        return float(lo)
    while hi - lo > 1:  # invariant: power(lo) < target <= power(hi)
        mid = (lo + hi) // 2
        if power_two_sample(g, mid, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return float(hi)


def detectable_effect(n_per_group: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """Smallest |g| a two-sided two-sample t-test with ``n_per_group`` detects with ``power`` (NaN if n < 2)."""
    if n_per_group < 2:
        return float("nan")
    lo, hi = 0.0, 1.0
    while power_two_sample(hi, n_per_group, alpha) < power:
        lo, hi = hi, hi * 2.0
    for _ in range(60):  # bisection: power grows with |g|
        mid = 0.5 * (lo + hi)
        if power_two_sample(mid, n_per_group, alpha) >= power:
            hi = mid
        else:
            lo = mid
    return hi
