"""Unpaired two-sample tests of a group against the baseline; Holm's and the fixed-sequence correction.

:func:`pairwise_tests` is vectorised: ``baseline`` has shape ``(..., n0)``, ``other``
``(..., n1)``; leading dimensions broadcast, so thousands of simulated studies are tested in
one call. All tests are two-sided; differences are ``other - baseline``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from raycg.stats.effects import cliffs_delta, hedges_g

#: Test keys (p-value column ``<key>_p``), in the order they are reported.
PAIRED_TESTS = ("signflip", "t", "wilcoxon")
UNPAIRED_TESTS = ("welch", "mwu")
TEST_NAMES = {"signflip": "exact sign-flip", "t": "paired t", "wilcoxon": "Wilcoxon signed-rank", "welch": "Welch's t",
              "mwu": "Mann–Whitney U", "perm": "permutation (mean difference)"}


def holm(pvalues: np.ndarray, axis: int = -1) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values along ``axis`` (the family); NaN entries are left out.

    Adjusted p_(i) = max_{j<=i} min(1, (m - j + 1)·p_(j)) over the sorted p-values, m = number of
    finite p-values in the family. Reject where adjusted p <= α: controls the family-wise error rate.
    """
    p = np.moveaxis(np.asarray(pvalues, dtype=float), axis, -1)
    order = np.argsort(p, axis=-1, kind="stable")  # NaN sorts last
    ps = np.take_along_axis(p, order, axis=-1)
    m = np.isfinite(p).sum(axis=-1, keepdims=True)
    rank = np.arange(p.shape[-1])
    adj = np.minimum(1.0, (m - rank) * ps)
    adj = np.where(np.isfinite(ps), adj, -np.inf)
    adj = np.maximum.accumulate(adj, axis=-1)
    adj = np.where(np.isfinite(ps), adj, np.nan)
    out = np.empty_like(adj)
    np.put_along_axis(out, order, adj, axis=-1)
    return np.moveaxis(out, -1, axis)


def fixed_sequence(pvalues: np.ndarray, axis: int = -1) -> np.ndarray:
    """Fixed-sequence adjusted p-values along ``axis``, in the order given (the pre-declared one).

    Adjusted p_i = max_{j<=i} p_j: hypothesis i is rejected at α only when it and every one before
    it are (each tested at the full α), which keeps the family-wise error rate at α. A NaN (a test
    that could not be done) ends the sequence: it and every later entry stay NaN.
    """
    p = np.moveaxis(np.asarray(pvalues, dtype=float), axis, -1)
    return np.moveaxis(np.maximum.accumulate(p, axis=-1), -1, axis)


#: ``multiplicity`` values: how the comparisons with the baseline share the family-wise α
ADJUSTMENTS = {"holm": holm, "fixed-sequence": fixed_sequence}


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(y, axis=axis) - np.mean(x, axis=axis)


def unpaired_tests(baseline: np.ndarray, other: np.ndarray) -> dict[str, np.ndarray]:
    """Welch's t and Mann–Whitney U of ``other`` vs ``baseline`` (last axis), with effect sizes.

    Returns arrays over the broadcast leading shape: ``mean_diff``, ``welch_t``, ``welch_df``,
    ``welch_p``, ``mwu_U`` (U of ``other``), ``mwu_p``, ``hedges_g`` and ``cliffs_delta``.
    Inputs must be finite; n >= 2 each.
    """
    a = np.asarray(baseline, dtype=float)
    b = np.asarray(other, dtype=float)
    lead = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    a = np.broadcast_to(a, lead + a.shape[-1:])
    b = np.broadcast_to(b, lead + b.shape[-1:])
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        welch = stats.ttest_ind(b, a, equal_var=False, axis=-1)
        mwu = stats.mannwhitneyu(b, a, alternative="two-sided", axis=-1, method="auto")
    return {
        "mean_diff": _mean_diff(a, b)[()],
        "welch_t": np.asarray(welch.statistic)[()],
        "welch_df": np.asarray(welch.df)[()],
        "welch_p": np.asarray(welch.pvalue)[()],
        "mwu_U": np.asarray(mwu.statistic)[()],
        "mwu_p": np.asarray(mwu.pvalue)[()],
        "hedges_g": np.asarray(hedges_g(a, b))[()],
        "cliffs_delta": np.asarray(cliffs_delta(a, b))[()],
    }


def pairwise_tests(baseline: np.ndarray, other: np.ndarray, *, seed: int = 0,
                   n_resamples: int = 9999) -> dict[str, np.ndarray]:
    """:func:`unpaired_tests` plus ``perm_p``: a permutation test of the difference of means.

    Exact when the number of distinct splits is <= ``n_resamples``, else ``n_resamples`` seeded
    random permutations.
    """
    a, b = np.asarray(baseline, dtype=float), np.asarray(other, dtype=float)
    out = unpaired_tests(a, b)
    lead = np.broadcast_shapes(a.shape[:-1], b.shape[:-1])
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        perm = stats.permutation_test(
            (np.broadcast_to(a, lead + a.shape[-1:]), np.broadcast_to(b, lead + b.shape[-1:])), _mean_diff,
            permutation_type="independent", vectorized=True, n_resamples=n_resamples,
            alternative="two-sided", axis=-1, rng=np.random.default_rng(seed),
        )
    out["perm_p"] = np.asarray(perm.pvalue)[()]
    return out
