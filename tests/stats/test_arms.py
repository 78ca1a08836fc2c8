"""Arms (named groups) in analyze_study: declared order, labels, and the fixed-sequence procedure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from raycg.errors import InputError
from raycg.stats import analyze_study, holm, primary_decisions, signflip_p
from raycg.stats.comparisons import fixed_sequence

ALPHA = 0.05
ORDER = ["force-matching", "published", "corrected"]


def arm_table(effects: dict[str, np.ndarray], n: int = 6, seed: int = 0) -> pd.DataFrame:
    """One study: js_divergence per (arm, seed), the baseline's values plus each arm's per-seed effect."""
    rng = np.random.default_rng(seed)
    base = 0.14 + 0.03 * rng.standard_normal(n)
    rows = [{"arm": "force-matching", "energy_weight": 0.0, "seed": s, "js_divergence": base[s]} for s in range(n)]
    for arm, d in effects.items():
        rows += [{"arm": arm, "energy_weight": 1.0, "seed": s, "js_divergence": base[s] + d[s]} for s in range(n)]
    return pd.DataFrame(rows)


def analyze(df: pd.DataFrame, multiplicity: str):
    return analyze_study(df, metrics=["js_divergence"], primary="js_divergence", group="arm",
                         baseline="force-matching", order=ORDER, multiplicity=multiplicity,
                         labels={a: a for a in ORDER}, equivalence_margin=0.02)


def test_fixed_sequence_adjusted_p_is_the_running_maximum_and_a_gap_ends_it():
    p = np.array([[0.01, 0.03, 0.02], [0.2, 0.01, 0.01], [np.nan, 0.01, 0.01]])
    np.testing.assert_allclose(fixed_sequence(p), [[0.01, 0.03, 0.03], [0.2, 0.2, 0.2], [np.nan] * 3])
    assert holm(np.array([0.031, 0.031])).tolist() == [0.062, 0.062]  # Holm cannot reach 0.05 here
    assert fixed_sequence(np.array([0.031, 0.031])).tolist() == [0.031, 0.031]


@pytest.mark.parametrize("n", [6, 8, 10])
def test_fixed_sequence_keeps_the_family_wise_error_under_the_null(n):
    """2000 null studies (2 arms vs a baseline): any "significant" line at most α up to simulation
    error (binomial 99th percentile); from 8 pairs on (size per test near α), testing both at α
    without the sequence exceeds that bound."""
    reps = 2000
    rng = np.random.default_rng(n)
    x = rng.normal(0, 0.7, (reps, 1, n)) + rng.normal(0, 1.0, (reps, 3, n))
    p = signflip_p(x[:, 1:] - x[:, :1])
    better = (x[:, 1:].mean(-1) - x[:, :1].mean(-1)) < 0
    bound = stats.binom.ppf(0.99, reps, ALPHA) / reps
    seq = primary_decisions(p, better, ALPHA, multiplicity="fixed-sequence")
    assert (seq["code"] <= 1).any(axis=-1).mean() <= bound
    if n >= 8:
        assert ((p <= ALPHA).any(axis=-1)).mean() > bound  # the unadjusted pair of tests fails the check


def test_both_arms_worse_in_every_seed_six_pairs_fixed_sequence_vs_holm():
    df = arm_table({"published": np.full(6, 0.49) + 0.01 * np.arange(6),
                    "corrected": np.full(6, 0.18) + 0.01 * np.arange(6)})
    seq = analyze(df, "fixed-sequence")
    assert seq.groups == ORDER and seq.baseline == "force-matching"
    assert [v.group for v in seq.verdict] == ["published", "corrected"]
    assert [v.status for v in seq.verdict] == ["significant worsening"] * 2
    assert seq.verdict[0].text.startswith("published vs force-matching: JS divergence: significant worsening")
    assert "exact sign-flip p (fixed sequence, step 2 of 2) = 0.031" in seq.verdict[1].text
    assert "[95% sign-flip CI" in seq.verdict[1].text  # each step at the full α: its 1 − α interval
    assert seq.power.alpha_per_test == ALPHA and seq.power.n_min == 6
    assert seq.metrics["js_divergence"].paired["significant"].tolist() == [True, True]
    h = analyze(df, "holm")
    assert [v.status for v in h.verdict] == ["no significant difference"] * 2
    assert "cannot reach p ≤ 0.05/2 = 0.025 with 6 pairs" in h.verdict[0].text and "≥ 7 pairs" in h.verdict[0].text
    assert "(Holm) = 0.062" in h.verdict[1].text


def test_a_step_that_is_not_significant_stops_the_sequence():
    df = arm_table({"published": np.array([0.1, -0.1, 0.05, -0.05, 0.02, -0.03]),
                    "corrected": np.full(6, 0.2)})
    st = analyze(df, "fixed-sequence")
    first, second = st.verdict
    assert first.status == "no significant difference" and "not reached" not in first.text
    assert second.status == "no significant difference"
    assert "not reached: the fixed sequence stopped at step 1 (published)" in second.text
    assert st.metrics["js_divergence"].paired["signflip_p"].iloc[1] == pytest.approx(2 / 64)
    assert not bool(st.metrics["js_divergence"].paired["significant"].iloc[1])
    reordered = analyze_study(df, metrics=["js_divergence"], primary="js_divergence", group="arm",
                              baseline="force-matching", order=["force-matching", "corrected", "published"],
                              multiplicity="fixed-sequence")
    assert reordered.verdict[0].group == "corrected" and reordered.verdict[0].status == "significant worsening"
    assert reordered.verdict[0].text.startswith("arm=corrected vs force-matching")  # no labels: arm=name


def test_an_unknown_multiplicity_is_refused():
    with pytest.raises(InputError, match="multiplicity 'bonferroni' unknown"):
        analyze(arm_table({"published": np.zeros(6)}), "bonferroni")
