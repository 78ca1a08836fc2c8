"""Sign-flip permutation test of a paired mean difference, its one-sided form and its inversion.

Null hypothesis: within a seed the two trials of a pair are exchangeable (the weight does not change
the metric's distribution), so each difference d is symmetric about 0 and every sign vector s is
equally likely. Statistic: the sum (equivalently the mean) of d. For n ≤ :data:`EXACT_MAX_N` the
reference distribution is all 2^n sign vectors (exact at every n; the smallest two-sided p is 2/2^n);
above, a fixed seeded set of :data:`MC_RESAMPLES` random sign vectors with p = (1 + #)/(1 + B).
Vectorised over leading axes; the last axis holds the pairs (``axis`` moves another one there).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

EXACT_MAX_N = 16
MC_RESAMPLES = 20_000
MC_SEED = 20240611
#: Ties: |T_s| within this fraction of Σ|d| of |T| count as "at least as extreme".
TIE_RTOL = 1e-9
_CHUNK = 1 << 22  # entries of one (rows × sign vectors) block
ALTERNATIVES = ("two-sided", "greater", "less")


@lru_cache(maxsize=64)
def _signs(n: int) -> np.ndarray:
    """Sign vectors: for n ≤ EXACT_MAX_N the 2^(n-1) with last sign +1 (their negatives are the other
    half), else MC_RESAMPLES seeded random ones."""
    if n <= EXACT_MAX_N:
        s = ((np.arange(2 ** (n - 1))[:, None] >> np.arange(n)) & 1) * 2.0 - 1.0
    else:
        s = np.random.default_rng(MC_SEED + n).choice([-1.0, 1.0], size=(MC_RESAMPLES, n))
    s.setflags(write=False)
    return s


def is_exact(n: int) -> bool:
    """True when the test enumerates all 2^n sign vectors."""
    return n <= EXACT_MAX_N


def smallest_p(n: int) -> float:
    """The smallest two-sided p-value the test can give with ``n`` pairs (2/2^n exact, 1/(1+B) above)."""
    if n < 2:
        return float("nan")
    return 2.0**(1 - n) if is_exact(n) else 1.0 / (1 + MC_RESAMPLES)


def min_pairs(alpha_per_test: float) -> int:
    """Smallest n at which the two-sided exact test can reach p ≤ ``alpha_per_test`` (2/2^n ≤ α')."""
    return max(2, math.ceil(math.log2(2.0 / alpha_per_test) - 1e-12))


def signflip_p(d: np.ndarray, alternative: str = "two-sided", axis: int = -1) -> np.ndarray:
    """p-value of the sign-flip test of mean(d) = 0 along ``axis``.

    ``two-sided``: #{|Σ s·d| ≥ |Σ d|}/K; ``greater`` (H1 mean > 0): #{Σ s·d ≥ Σ d}/K; ``less``: ≤.
    K = 2^n (exact) or (1 + #)/(1 + B) with the fixed Monte Carlo set. NaN for n < 2 or non-finite d.
    """
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative {alternative!r} unknown; use one of {ALTERNATIVES}")
    a = np.moveaxis(np.asarray(d, dtype=float), axis, -1)
    n, lead = a.shape[-1], a.shape[:-1]
    out = np.full(int(np.prod(lead)), np.nan)
    if n < 2:
        return out.reshape(lead)[()]
    flat = a.reshape(-1, n)
    ok = np.isfinite(flat).all(-1)
    s = _signs(n)
    step = max(1, _CHUNK // s.shape[0])
    rows = np.flatnonzero(ok)
    for i in range(0, rows.size, step):
        r = rows[i:i + step]
        x = flat[r]
        count = _count(x @ s.T, x.sum(-1)[:, None], TIE_RTOL * np.abs(x).sum(-1)[:, None], alternative,
                       mirrored=is_exact(n))
        out[r] = count / 2.0**n if is_exact(n) else (1.0 + count) / (1.0 + s.shape[0])
    return out.reshape(lead)[()]


def _count(ts: np.ndarray, t: np.ndarray, tol: np.ndarray, alternative: str, mirrored: bool) -> np.ndarray:
    """Sign vectors at least as extreme as the observed sum ``t``; ``mirrored``: −ts counts too."""
    if alternative == "two-sided":
        return (2 if mirrored else 1) * np.count_nonzero(np.abs(ts) >= np.abs(t) - tol, axis=-1)
    sign = 1.0 if alternative == "greater" else -1.0  # "less" is "greater" of −d
    c = np.count_nonzero(sign * ts >= sign * t - tol, axis=-1)
    return c + np.count_nonzero(-sign * ts >= sign * t - tol, axis=-1) if mirrored else c


def signflip_tost(d: np.ndarray, margin: float, axis: int = -1) -> dict[str, np.ndarray]:
    """Equivalence by two one-sided sign-flip tests: H0 mean ≤ −margin (``p_lower``: d + margin
    greater than 0) and H0 mean ≥ margin (``p_upper``: d − margin less than 0); ``p`` = max."""
    if not margin > 0:
        raise ValueError(f"equivalence margin must be > 0, got {margin}")
    a = np.asarray(d, dtype=float)
    lo, up = signflip_p(a + margin, "greater", axis), signflip_p(a - margin, "less", axis)
    return {"p_lower": lo, "p_upper": up, "p": np.maximum(lo, up)[()]}


def signflip_interval(d: np.ndarray, alpha: float, axis: int = -1,
                      iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(low, high): the set of δ with two-sided p(d − δ) > ``alpha``, the test's 1 − α interval.

    p(d − δ) rises monotonically towards mean(d) from both sides, so each bound is found by
    vectorised bisection within [min d, mean d] and [mean d, max d]. Where the test cannot reach
    ``alpha`` at this n (:func:`smallest_p` > α) the interval is (−∞, ∞): both bounds are NaN.
    """
    a = np.moveaxis(np.asarray(d, dtype=float), axis, -1)
    n = a.shape[-1]
    mean = a.mean(-1) if n else np.full(a.shape[:-1], np.nan)
    nan = np.full(mean.shape, np.nan)
    if n < 2 or not smallest_p(n) <= alpha:
        return nan[()], nan.copy()[()]
    # bracket per side: (rejected end, accepted end); the accepted end converges to the bound
    rej = np.stack([a.min(-1), a.max(-1)])
    acc = np.stack([mean, mean])
    width = 1e-10 * (rej[1] - rej[0])  # NaN rows never hold the loop
    for _ in range(iterations):
        mid = 0.5 * (rej + acc)
        ok = signflip_p(a[None] - mid[..., None]) > alpha
        acc, rej = np.where(ok, mid, acc), np.where(ok, rej, mid)
        if not np.any(np.abs(acc - rej) > width):
            break
    bad = ~np.isfinite(mean)
    return np.where(bad, np.nan, acc[0])[()], np.where(bad, np.nan, acc[1])[()]
