"""Effect sizes of a group against a baseline: Hedges' g and Cliff's delta.

Both are signed as ``other - baseline``: positive means the group's metric is *higher*
than the baseline's (whether that is better depends on the metric's direction).
Vectorised along ``axis`` (default last); leading dimensions broadcast.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln


def hedges_correction(df: np.ndarray | float) -> np.ndarray:
    """Exact small-sample bias factor J(df) = Γ(df/2) / (√(df/2) Γ((df-1)/2)), df = n1 + n2 - 2."""
    df = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.exp(gammaln(df / 2.0) - gammaln((df - 1.0) / 2.0)) / np.sqrt(df / 2.0)
    return np.where(df > 1, out, np.nan)


def hedges_g(baseline: np.ndarray, other: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Hedges' g: (mean(other) - mean(baseline)) / pooled SD (ddof=1), times J(n1+n2-2).

    Dimensionless. Zero spread with a non-zero difference gives ±inf; no data for a
    pooled SD (n1 + n2 < 3) gives NaN.
    """
    a = np.moveaxis(np.asarray(baseline, dtype=float), axis, -1)
    b = np.moveaxis(np.asarray(other, dtype=float), axis, -1)
    n1, n2 = a.shape[-1], b.shape[-1]
    df = n1 + n2 - 2
    if df < 1 or n1 < 1 or n2 < 1:
        return np.full(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), np.nan)[()]
    diff = b.mean(-1) - a.mean(-1)
    ss = (a.var(-1, ddof=0) * n1) + (b.var(-1, ddof=0) * n2)
    sp = np.sqrt(ss / df)
    with np.errstate(invalid="ignore", divide="ignore"):
        d = np.where(sp > 0, diff / np.where(sp > 0, sp, 1.0), np.sign(diff) * np.inf)
    d = np.where((sp == 0) & (diff == 0), 0.0, d)
    return (d * hedges_correction(df))[()]


def cliffs_delta(baseline: np.ndarray, other: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Cliff's δ = P(other > baseline) - P(other < baseline) over all pairs; in [-1, 1].

    Equals 2·U/(n1·n2) - 1 with U the Mann–Whitney statistic of ``other`` vs ``baseline``.
    """
    a = np.moveaxis(np.asarray(baseline, dtype=float), axis, -1)
    b = np.moveaxis(np.asarray(other, dtype=float), axis, -1)
    if a.shape[-1] == 0 or b.shape[-1] == 0:
        return np.full(np.broadcast_shapes(a.shape[:-1], b.shape[:-1]), np.nan)[()]
    return np.sign(b[..., :, None] - a[..., None, :]).mean(axis=(-2, -1))[()]
