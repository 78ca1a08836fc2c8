"""The study's convergence gate: every trial's convergence checks, with the permutation tests held to
a family-wise α across the study's trials.

A trial's drift and start-basin checks are permutation tests at α (EvalConfig ``drift_alpha``,
``start_basin_alpha``). Run on each of n trials, a perfect study would fail somewhere with
probability ≈ 1 − (1 − α)^n even if every test were exact; and a finite run of a perfect model keeps
a little memory of its starts, so the start-basin test fails more often than α alone (the noise floor
measures it). The gate therefore adjusts each test's p-values over the trials that assessed it
(Holm), as the verdict does over its comparisons: the study is "not converged" with probability at
most α per test when every trial is. The fixed checks (time over the slowest timescale, crossings)
are not tests and apply to each trial unchanged.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from raycg.evaluate.convergence import Convergence
from raycg.stats.comparisons import holm


def study_convergence_gate(convergences: Sequence[Convergence | None]) -> list[Convergence | None]:
    """Copies of the trials' convergence verdicts with each tested check's p-value Holm-adjusted over the
    trials that assessed it (``PermutationCheck.p_adjusted``, ``family_size``). ``None`` (not assessed) stays
    ``None``. A study of one trial is judged as that trial alone."""
    out = copy.deepcopy(list(convergences))
    names = sorted({name for c in out if c is not None for name in c.tests})
    for name in names:
        idx = [i for i, c in enumerate(out) if c is not None and name in c.tests]
        if len(idx) < 2:
            continue
        adjusted = holm(np.array([out[i].tests[name].p for i in idx], dtype=float))
        for i, a in zip(idx, adjusted):
            out[i].tests[name] = dataclasses.replace(out[i].tests[name], p_adjusted=float(a), family_size=len(idx))
    return out


@dataclass(frozen=True)
class GateOdds:
    """How often a study of ``n_trials`` perfect models passes the gate, estimated from noise-floor repeats."""

    probability: float      # q^n, q the share of repeats that pass alone at the study's strictest threshold
    lower: float            # one-sided lower confidence bound (Clopper–Pearson on q, then ^n)
    confidence: float
    passing: int            # repeats that pass at α/n
    repeats: int
    n_trials: int


def perfect_study_pass_probability(floor_convergences: Sequence[Convergence], n_trials: int, *,
                                   confidence: float = 0.95) -> GateOdds:
    """Probability that a study of ``n_trials`` perfect-model trials passes the gate, from noise-floor
    repeats (reference samples under the trials' protocol): a repeat passes alone at the study's strictest
    threshold when its fixed checks pass and every tested p is ≥ α/n (Holm rejects nothing exactly when
    the smallest p of each test is ≥ α/n), so the study passes with probability q^n. NaN without repeats."""
    n_rep = len(floor_convergences)
    if n_rep == 0 or n_trials < 1:
        return GateOdds(math.nan, math.nan, confidence, 0, n_rep, n_trials)
    k = sum(not c.failed_checks and all(t.p >= t.alpha / n_trials for t in c.tests.values())
            for c in floor_convergences)
    q_low = float(stats.beta.ppf(1.0 - confidence, k, n_rep - k + 1)) if k > 0 else 0.0
    return GateOdds((k / n_rep) ** n_trials, q_low ** n_trials, confidence, int(k), n_rep, n_trials)
