"""Power of two-sided t-tests, the minimal detectable effect at a given n, and the n needed.

Two designs: ``paired`` (the paired t-test of a study paired by seed: df = n - 1, noncentrality
d_z·√n, d_z = mean difference / SD of the differences) and ``two-sample`` (equal groups of n,
df = 2n - 2, noncentrality g·√(n/2); with equal n and variances Welch's test has about the same
power). Exact noncentral-t power. Pass the *corrected* α (α / number of comparisons for
Bonferroni, which Holm's first step equals) to plan for a corrected family.

The exact sign-flip test (the verdict's default decision test) has no closed form: its power for
normal differences is simulated (:func:`signflip_power`, seeded) and is 0 below the smallest n at
which it can reach α at all (:func:`~raycg.stats.signflip.min_pairs`: 2/2^n ≤ α).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import stats

from raycg.stats.signflip import min_pairs, signflip_p

DESIGNS = ("paired", "two-sample")


def _df_ncp(effect: np.ndarray, n: np.ndarray, design: str) -> tuple[np.ndarray, np.ndarray]:
    if design == "paired":
        return n - 1.0, effect * np.sqrt(n)
    if design == "two-sample":
        return 2.0 * n - 2.0, effect * np.sqrt(n / 2.0)
    raise ValueError(f"design {design!r} unknown; use one of {DESIGNS}")


def power_t(effect: float | np.ndarray, n: int | np.ndarray, alpha: float = 0.05,
            design: str = "paired") -> np.ndarray | float:
    """Probability that a two-sided t-test at level ``alpha`` rejects for standardized ``effect``.

    ``n``: pairs (paired) or seeds per group (two-sample). NaN for n < 2.
    Examples: two-sample, effect 0.5, n = 64 → 0.80 (Cohen); paired, d_z 1, n = 10 → 0.80.
    """
    g = np.abs(np.asarray(effect, dtype=float))
    n = np.asarray(n, dtype=float)
    df, ncp = _df_ncp(g, n, design)
    with np.errstate(invalid="ignore"):
        tc = stats.t.isf(alpha / 2.0, df)
        pw = stats.nct.sf(tc, df, ncp) + stats.nct.cdf(-tc, df, ncp)
    pw = np.where(np.isinf(g), 1.0, pw)
    return np.where(n >= 2, pw, np.nan)[()]


def power_two_sample(effect: float | np.ndarray, n_per_group: int | np.ndarray,
                     alpha: float = 0.05) -> np.ndarray | float:
    """:func:`power_t` for two independent groups of ``n_per_group`` each."""
    return power_t(effect, n_per_group, alpha, "two-sample")


def seeds_for_power(effect: float, power: float = 0.8, alpha: float = 0.05, n_max: int = 100_000,
                    design: str = "paired") -> float:
    """Smallest n (≥ 2) whose two-sided t-test power reaches ``power`` for ``effect``.

    Returns ``inf`` when the effect is zero or needs more than ``n_max``, NaN for NaN input.
    """
    g = abs(float(effect))
    if np.isnan(g):
        return float("nan")
    if g == 0.0 or power_t(g, n_max, alpha, design) < power:
        return float("inf")
    lo, hi = 2, 2
    while power_t(g, hi, alpha, design) < power:  # bracket: power grows with n
        lo, hi = hi, min(hi * 2, n_max)
    if power_t(g, lo, alpha, design) >= power:
        return float(lo)
    while hi - lo > 1:  # invariant: power(lo) < target <= power(hi)
        mid = (lo + hi) // 2
        if power_t(g, mid, alpha, design) >= power:
            hi = mid
        else:
            lo = mid
    return float(hi)


@lru_cache(maxsize=512)
def detectable_effect(n: int, power: float = 0.8, alpha: float = 0.05, design: str = "paired") -> float:
    """Smallest |effect| a two-sided t-test with ``n`` detects with ``power`` (NaN if n < 2)."""
    if n < 2:
        return float("nan")
    lo, hi = 0.0, 1.0
    while power_t(hi, n, alpha, design) < power:
        lo, hi = hi, hi * 2.0
    for _ in range(60):  # bisection: power grows with |effect|
        mid = 0.5 * (lo + hi)
        if power_t(mid, n, alpha, design) >= power:
            hi = mid
        else:
            lo = mid
    return hi


#: Simulated studies per sign-flip power estimate (seeded: the same numbers on every call).
POWER_DRAWS = 2000


@lru_cache(maxsize=512)
def signflip_power(effect: float, n: int, alpha: float = 0.05, draws: int = POWER_DRAWS, seed: int = 0) -> float:
    """Power of the two-sided sign-flip test at level ``alpha`` for normal differences with d_z =
    ``effect``, from ``draws`` seeded simulated studies of ``n`` pairs (SE ≤ 0.5/√draws).

    0 below :func:`~raycg.stats.signflip.min_pairs` (the test cannot reach α); NaN for n < 2 or NaN effect.
    """
    if n < 2 or np.isnan(effect):
        return float("nan")
    if n < min_pairs(alpha):
        return 0.0
    d = np.random.default_rng(seed).standard_normal((draws, n)) + abs(effect)
    return float(np.mean(signflip_p(d) <= alpha))


#: Above this many pairs the sign-flip test's detectable effect is taken from the paired t (for normal
#: differences their powers agree there, and simulating every bisection step would cost seconds).
SIGNFLIP_MDE_MAX_N = 12


@lru_cache(maxsize=256)
def signflip_detectable_effect(n: int, power: float = 0.8, alpha: float = 0.05) -> float:
    """Smallest d_z the two-sided sign-flip test with ``n`` pairs detects with ``power`` at ``alpha``
    (normal differences; bisection on :func:`signflip_power`'s seeded simulation, to 0.01). ``inf``
    below ``min_pairs(alpha)``; the paired t's value above :data:`SIGNFLIP_MDE_MAX_N` pairs."""
    if n < 2:
        return float("nan")
    if n < min_pairs(alpha):
        return float("inf")
    if n > SIGNFLIP_MDE_MAX_N:
        return detectable_effect(n, power, alpha, "paired")
    lo, hi = 0.0, 1.0
    while signflip_power(hi, n, alpha) < power:
        lo, hi = hi, hi * 2.0
    while hi - lo > 0.01:
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if signflip_power(mid, n, alpha) >= power else (mid, hi)
    return hi


def signflip_seeds_for_power(effect: float, power: float = 0.8, alpha: float = 0.05, n_max: int = 200) -> float:
    """Smallest n ≥ min_pairs(α) whose simulated sign-flip power reaches ``power`` for d_z ``effect``.

    Searched upwards from the paired t's n (the sign-flip test is never more powerful for normal
    differences); ``inf`` beyond ``n_max`` or for a zero effect, NaN for NaN input.
    """
    g = abs(float(effect))
    if np.isnan(g):
        return float("nan")
    start = seeds_for_power(g, power, alpha)
    if not np.isfinite(start) or start > n_max:
        return float("inf")
    for n in range(max(int(start), min_pairs(alpha)), n_max + 1):
        if signflip_power(g, n, alpha) >= power:
            return float(n)
    return float("inf")
