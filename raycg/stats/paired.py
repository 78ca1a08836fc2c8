"""Tests for a design paired by seed: each seed gives one trial per weight (same split, initial
weights and start frames), so ``other[..., i]`` and ``baseline[..., i]`` are a matched pair.

All functions take aligned arrays ``(..., n_pairs)`` (leading dimensions broadcast) and are signed
``other - baseline``. Two-sided unless stated. Equal to scipy's ``ttest_rel``/``wilcoxon``/
``friedmanchisquare`` by construction (tested).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from raycg.stats.effects import hedges_correction
from raycg.stats.intervals import t_interval


def _aligned(baseline: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(baseline, dtype=float), np.asarray(other, dtype=float)
    lead = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"paired samples differ in length: {a.shape[-1]} vs {b.shape[-1]}")
    return np.broadcast_to(a, lead + a.shape[-1:]), np.broadcast_to(b, lead + b.shape[-1:])


def paired_t(baseline: np.ndarray, other: np.ndarray) -> dict[str, np.ndarray]:
    """Paired t-test of ``other - baseline`` (mean difference 0): ``t``, ``df`` = n - 1, ``p``.

    Fast and vectorised (the verdict's primary test; null simulations call it on thousands of studies).
    Zero spread gives p = NaN (no test) unless handled by the caller.
    """
    a, b = _aligned(baseline, other)
    d = b - a
    n = d.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = d.mean(-1)
        se = d.std(-1, ddof=1) / np.sqrt(n) if n > 1 else np.full(mean.shape, np.nan)
        t = mean / se
        p = 2.0 * stats.t.sf(np.abs(t), n - 1) if n > 1 else np.full(mean.shape, np.nan)
    return {"t": t[()], "df": float(n - 1), "p": np.where(se > 0, p, np.nan)[()]}


def effect_dz(baseline: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d_z, g_z): mean difference / SD of the differences, and d_z times Hedges' J(n - 1).

    d_z is the standardized effect a paired t-test's power depends on (noncentrality d_z·√n);
    g_z removes its small-sample bias. Zero spread: ±inf (0 when the differences are all 0).
    """
    a, b = _aligned(baseline, other)
    d = b - a
    n = d.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = d.mean(-1)
        sd = d.std(-1, ddof=1) if n > 1 else np.full(mean.shape, np.nan)
        dz = np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0), np.sign(mean) * np.inf)
    dz = np.where((sd == 0) & (mean == 0), 0.0, np.where(np.isnan(sd), np.nan, dz))
    return dz[()], (dz * hedges_correction(n - 1))[()]


def rank_biserial(baseline: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Matched-pairs rank-biserial correlation (T+ - T-) / (T+ + T-) in [-1, 1].

    T± are the sums of the ranks of |d| over positive/negative differences d = other - baseline,
    zero differences dropped (as in the Wilcoxon test's default); NaN when every d is 0.
    """
    a, b = _aligned(baseline, other)
    d = b - a
    absd = np.where(d != 0, np.abs(d), np.nan)
    ranks = stats.rankdata(absd, axis=-1, nan_policy="omit")
    tp = np.nansum(np.where(d > 0, ranks, 0.0), axis=-1)
    tm = np.nansum(np.where(d < 0, ranks, 0.0), axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ((tp - tm) / (tp + tm))[()]


def paired_tests(baseline: np.ndarray, other: np.ndarray, confidence: float = 0.95) -> dict[str, np.ndarray]:
    """Paired t and Wilcoxon signed-rank of ``other`` vs ``baseline``, with effect sizes.

    Keys: ``n_pairs``, ``mean_diff``, ``sd_diff``, ``diff_ci_low``/``diff_ci_high`` (Student-t
    ``confidence`` interval of the mean difference), ``t``, ``df``, ``t_p``, ``wilcoxon_W``
    (scipy's statistic: the smaller of T+ and T-), ``wilcoxon_p`` (exact for n ≤ 50 without ties
    or zeros, else normal approximation, as scipy's ``method="auto"``), ``d_z``, ``g_z``,
    ``rank_biserial``. NaN where a test is undefined (n < 2; all differences 0).
    """
    a, b = _aligned(baseline, other)
    d = b - a
    n = d.shape[-1]
    out: dict[str, np.ndarray] = {"n_pairs": np.full(d.shape[:-1], n)[()], "mean_diff": d.mean(-1)[()] if n else
                                  np.full(d.shape[:-1], np.nan)[()]}
    with np.errstate(invalid="ignore", divide="ignore"):
        out["sd_diff"] = (d.std(-1, ddof=1) if n > 1 else np.full(d.shape[:-1], np.nan))[()]
    out["diff_ci_low"], out["diff_ci_high"] = t_interval(d, confidence)
    pt = paired_t(a, b)
    out.update({"t": pt["t"], "df": np.full(d.shape[:-1], pt["df"])[()], "t_p": pt["p"]})
    out["wilcoxon_W"], out["wilcoxon_p"] = _wilcoxon(d)
    out["d_z"], out["g_z"] = effect_dz(a, b)
    out["rank_biserial"] = rank_biserial(a, b)
    return out


def _wilcoxon(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shape = d.shape[:-1]
    w, p = np.full(shape, np.nan), np.full(shape, np.nan)
    if d.shape[-1] == 0:
        return w[()], p[()]
    nonzero = (d != 0).any(axis=-1)
    if nonzero.any():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.wilcoxon(d[nonzero], axis=-1)
        w[nonzero], p[nonzero] = res.statistic, res.pvalue
    return w[()], p[()]


def tost_paired(baseline: np.ndarray, other: np.ndarray, margin: float) -> dict[str, np.ndarray]:
    """Two one-sided paired t-tests of equivalence: H0 |mean(other - baseline)| >= ``margin``.

    ``p_lower`` tests H0 μ_d <= -margin (t = (mean + margin)/se, upper tail), ``p_upper`` H0
    μ_d >= margin (t = (mean - margin)/se, lower tail), df = n - 1; ``p`` = max of the two.
    Rejecting at α (p <= α) is equivalent to the (1 - 2α) t-interval lying inside (-margin, margin).
    """
    if not margin > 0:
        raise ValueError(f"equivalence margin must be > 0, got {margin}")
    a, b = _aligned(baseline, other)
    d = b - a
    n = d.shape[-1]
    shape = d.shape[:-1]
    if n < 2:
        nan = np.full(shape, np.nan)[()]
        return {"t_lower": nan, "p_lower": nan, "t_upper": nan, "p_upper": nan, "p": nan}
    with np.errstate(invalid="ignore", divide="ignore"):
        mean, se = d.mean(-1), d.std(-1, ddof=1) / np.sqrt(n)
        t_lo, t_up = (mean + margin) / se, (mean - margin) / se
    p_lo, p_up = stats.t.sf(t_lo, n - 1), stats.t.cdf(t_up, n - 1)
    zero = se == 0  # no spread: equivalent exactly when |mean| < margin
    p_lo = np.where(zero, np.where(mean > -margin, 0.0, 1.0), p_lo)
    p_up = np.where(zero, np.where(mean < margin, 0.0, 1.0), p_up)
    return {"t_lower": t_lo[()], "p_lower": p_lo[()], "t_upper": t_up[()], "p_upper": p_up[()],
            "p": np.maximum(p_lo, p_up)[()]}


def friedman(blocks: np.ndarray) -> tuple[float, float]:
    """Friedman χ² and p over complete blocks ``(n_seeds, k_weights)`` (k >= 3, n >= 2); else NaN."""
    x = np.asarray(blocks, dtype=float)
    if x.ndim != 2 or x.shape[1] < 3 or x.shape[0] < 2 or np.ptp(x, axis=1).max(initial=0.0) == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.friedmanchisquare(*x.T)
    return float(res.statistic), float(res.pvalue)
