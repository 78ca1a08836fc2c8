"""raycg.stats: scipy agreement, known answers, family-wise error under the null, power."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from raycg.errors import InputError
from raycg.stats import (
    cliffs_delta,
    default_direction,
    detectable_effect,
    hedges_g,
    holm,
    pairwise_tests,
    power_two_sample,
    seeds_for_power,
    summarize,
    summarize_all,
    summary_table,
    verdict,
)

ALPHA = 0.05


def _study(effects: dict[float, float], n: int, seed: int = 0, sd: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [{"energy_weight": w, "seed": s, "kl_ref_model": mu + rng.normal(0, sd), "coverage": 0.9 + rng.normal(0, 0.01)}
            for w, mu in effects.items() for s in range(n)]
    return pd.DataFrame(rows)


# --- agreement with scipy -------------------------------------------------------------------------------------

def test_pairwise_tests_equal_scipy():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 6), rng.normal(0.7, 2, 5)
    r = pairwise_tests(a, b, seed=7, n_resamples=999)
    w = stats.ttest_ind(b, a, equal_var=False)
    assert r["welch_t"] == pytest.approx(w.statistic, rel=1e-12)
    assert r["welch_p"] == pytest.approx(w.pvalue, rel=1e-12)
    assert r["welch_df"] == pytest.approx(w.df, rel=1e-12)
    u = stats.mannwhitneyu(b, a, alternative="two-sided")
    assert r["mwu_U"] == u.statistic and r["mwu_p"] == pytest.approx(u.pvalue, rel=1e-12)
    perm = stats.permutation_test((a, b), lambda x, y, axis: y.mean(axis) - x.mean(axis), vectorized=True,
                                  n_resamples=999, rng=np.random.default_rng(7))
    assert r["perm_p"] == pytest.approx(perm.pvalue, rel=1e-12)
    assert r["mean_diff"] == pytest.approx(b.mean() - a.mean())


def test_summarize_equals_scipy_for_every_test():
    df = _study({0.0: 1.0, 0.5: 0.8, 2.0: 0.2}, n=5, seed=11)
    res = summarize(df, "kl_ref_model", seed=5, n_resamples=999)
    by = {w: g["kl_ref_model"].to_numpy() for w, g in df.groupby("energy_weight")}
    comp = res["comparisons"].set_index("group")
    raw = []
    for w in (0.5, 2.0):
        t = stats.ttest_ind(by[w], by[0.0], equal_var=False)
        u = stats.mannwhitneyu(by[w], by[0.0], alternative="two-sided")
        assert comp.loc[w, "welch_t"] == pytest.approx(t.statistic, rel=1e-12)
        assert comp.loc[w, "welch_p"] == pytest.approx(t.pvalue, rel=1e-12)
        assert comp.loc[w, "mwu_U"] == u.statistic
        assert comp.loc[w, "mwu_p"] == pytest.approx(u.pvalue, rel=1e-12)
        raw.append(t.pvalue)
    # Holm with two p-values, by hand
    lo, hi = sorted(raw)
    expect = {raw.index(lo): min(1, 2 * lo), raw.index(hi): max(min(1, 2 * lo), min(1, hi))}
    assert comp["welch_p_holm"].tolist() == pytest.approx([expect[0], expect[1]])
    kw = stats.kruskal(*by.values())
    assert res["omnibus"]["statistic"].iloc[0] == pytest.approx(kw.statistic, rel=1e-12)
    assert res["omnibus"]["p"].iloc[0] == pytest.approx(kw.pvalue, rel=1e-12)
    sp = stats.spearmanr(df["energy_weight"], df["kl_ref_model"])
    assert res["trend"]["rho"].iloc[0] == pytest.approx(sp.statistic, rel=1e-12)
    assert res["trend"]["p"].iloc[0] == pytest.approx(sp.pvalue, rel=1e-12)
    d = res["descriptives"].set_index("group")
    assert d.loc[0.5, "mean"] == pytest.approx(by[0.5].mean())
    assert d.loc[0.5, "std"] == pytest.approx(by[0.5].std(ddof=1))
    assert d.loc[0.5, "ci_low"] < by[0.5].mean() < d.loc[0.5, "ci_high"]


def test_bootstrap_ci_is_seeded_and_matches_scipy():
    df = _study({0.0: 1.0, 1.0: 0.5}, n=6, seed=2)
    a = summarize(df, "kl_ref_model", seed=3, n_resamples=2000)["descriptives"]
    b = summarize(df, "kl_ref_model", seed=3, n_resamples=2000)["descriptives"]
    pd.testing.assert_frame_equal(a, b)
    x = df[df.energy_weight == 0.0]["kl_ref_model"].to_numpy()
    ref = stats.bootstrap((x,), np.mean, n_resamples=2000, method="BCa", rng=np.random.default_rng(3))
    assert a.loc[0, "ci_low"] == pytest.approx(ref.confidence_interval.low)
    assert a.loc[0, "ci_high"] == pytest.approx(ref.confidence_interval.high)


# --- known answers --------------------------------------------------------------------------------------------

def test_holm_known_values_and_nan():
    assert holm(np.array([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    out = holm(np.array([0.2, np.nan, 0.01]))
    assert np.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.2, 0.02])
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, size=(50, 5))
    for row, adj in zip(p, holm(p), strict=True):  # compare with a plain loop
        order = np.argsort(row)
        ref, run = np.empty(5), 0.0
        for i, j in enumerate(order):
            run = max(run, min(1.0, (5 - i) * row[j]))
            ref[j] = run
        assert adj == pytest.approx(ref)


def test_hedges_g_known_inputs():
    a, b = np.arange(1.0, 6.0), np.arange(3.0, 8.0)  # means 3 and 5, both SD sqrt(2.5)
    d = 2.0 / math.sqrt(2.5)
    j = math.gamma(4.0) / (math.sqrt(4.0) * math.gamma(3.5))  # exact J for df = 8
    assert hedges_g(a, b) == pytest.approx(d * j, rel=1e-12)
    assert hedges_g(a, b) == pytest.approx(1.141839, rel=1e-6)
    assert hedges_g(b, a) == pytest.approx(-d * j)
    assert j == pytest.approx(1 - 3 / (4 * 8 - 1), abs=1e-3)  # the usual approximation
    assert hedges_g(a, a) == 0.0


def test_cliffs_delta_known_inputs():
    assert cliffs_delta([1, 2, 3], [2, 3, 4]) == pytest.approx(5 / 9)
    assert cliffs_delta([1, 2, 3], [4, 5]) == 1.0
    assert cliffs_delta([4, 5], [1, 2, 3]) == -1.0
    assert cliffs_delta([1, 2, 3], [1, 2, 3]) == 0.0
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=7), rng.normal(size=9)
    u = stats.mannwhitneyu(b, a).statistic
    assert cliffs_delta(a, b) == pytest.approx(2 * u / (7 * 9) - 1)


def test_power_known_values():
    assert power_two_sample(0.5, 64) == pytest.approx(0.8015, abs=5e-4)  # Cohen / G*Power
    assert seeds_for_power(0.5) == 64
    assert seeds_for_power(0.8) == 26
    assert seeds_for_power(-0.8) == 26
    assert seeds_for_power(0.2) == 394
    assert seeds_for_power(0.0) == math.inf
    assert power_two_sample(0.0, 10) == pytest.approx(ALPHA)
    assert detectable_effect(64) == pytest.approx(0.5, abs=0.005)  # the inverse of the table above
    assert power_two_sample(detectable_effect(3), 3) == pytest.approx(0.8, abs=1e-6)
    assert np.isnan(detectable_effect(1))


# --- error rates by simulation --------------------------------------------------------------------------------

def test_holm_family_wise_error_under_null():
    """1000 simulated null studies, 4 weights x 5 seeds: Holm keeps the family-wise error <= alpha.

    Margin: if the true FWER is <= alpha the count of studies with any rejection is stochastically
    at most Binomial(1000, alpha), which exceeds its 99th percentile with probability <= 1 %; the seed
    is fixed, so the check is deterministic. The uncorrected rate must exceed that bound, which shows the
    test can tell a missing correction (FWER about 1 - 0.95^3 with correlated comparisons).
    """
    reps = 1000
    rng = np.random.default_rng(2024)
    x = rng.normal(size=(reps, 4, 5))
    r = pairwise_tests(x[:, :1, :], x[:, 1:, :], seed=1)
    bound = stats.binom.ppf(0.99, reps, ALPHA) / reps
    for key in ("welch_p", "mwu_p", "perm_p"):
        fwer = (holm(r[key], axis=-1) <= ALPHA).any(axis=-1).mean()
        assert fwer <= bound, (key, fwer, bound)
    uncorrected = (r["welch_p"] <= ALPHA).any(axis=-1).mean()
    assert uncorrected > bound


def test_known_effect_detected_at_predicted_power():
    """A true effect d = 1 at the seeds the power statement asks for is found ~80 % of the time."""
    d = 1.0
    n = int(seeds_for_power(d))
    predicted = power_two_sample(d, n)
    assert 0.8 <= predicted < 0.9
    rng = np.random.default_rng(99)
    reps = 2000
    base, other = rng.normal(0, 1, (reps, n)), rng.normal(d, 1, (reps, n))
    r = pairwise_tests(base, other, n_resamples=99)
    assert abs((r["welch_p"] <= ALPHA).mean() - predicted) <= 0.10
    # Inside a family of 3 comparisons (two true nulls), Holm finds it at about the Bonferroni power.
    nb = int(seeds_for_power(d, alpha=ALPHA / 3))
    x = rng.normal(0, 1, (reps, 4, nb))
    x[:, 3] += d
    r = pairwise_tests(x[:, :1], x[:, 1:], n_resamples=99)
    found = (holm(r["welch_p"], axis=-1)[:, 2] <= ALPHA).mean()
    assert abs(found - power_two_sample(d, nb, ALPHA / 3)) <= 0.10
    # and an undersized study (3 seeds) has the low power the statement predicts
    r3 = pairwise_tests(base[:, :3], other[:, :3], n_resamples=99)
    assert abs((r3["welch_p"] <= ALPHA).mean() - power_two_sample(d, 3)) <= 0.10


# --- summarize / verdict --------------------------------------------------------------------------------------

def test_significance_only_after_correction_and_verdict_text():
    df = _study({0.0: 0.5, 0.1: 0.47, 1.0: 0.46, 10.0: 0.22}, n=5, seed=1, sd=0.05)
    res = summarize(df, "kl_ref_model")
    comp = res["comparisons"].set_index("group")
    assert (comp["welch_p_holm"] >= comp["welch_p"]).all()
    assert comp["significant"].tolist() == (comp["welch_p_holm"] <= ALPHA).tolist()
    assert comp.loc[10.0, "significant"] and comp.loc[10.0, "better"]
    raw_only = comp[(comp["welch_p"] <= ALPHA) & (comp["welch_p_holm"] > ALPHA)]
    assert not raw_only["significant"].any()
    text = verdict(res)
    assert "KL(ref‖model)" in text and "lower is better" in text
    assert "w_E=10 vs 0: KL(ref‖model) lower by" in text
    line10 = next(ln for ln in text.splitlines() if "w_E=10 vs 0" in ln)
    assert "significant" in line10 and "not significant" not in line10 and "better" in line10
    for g in comp.index[~comp["significant"]]:
        line = next(ln for ln in text.splitlines() if f"w_E={g:g} vs 0" in ln)
        assert "not significant" in line
    assert "Kruskal–Wallis" in text and "Spearman" in text and "seeds per weight" in text


def test_direction_flips_better():
    df = _study({0.0: 0.0, 5.0: 3.0}, n=4, seed=0)
    lower = summarize(df, "kl_ref_model", direction="lower")["comparisons"]
    higher = summarize(df, "kl_ref_model", direction="higher")["comparisons"]
    assert not lower["better"].iloc[0] and higher["better"].iloc[0]
    assert "worse" in verdict({**summarize(df, "kl_ref_model", direction="lower")})
    assert default_direction("kl_ref_model") == "lower" and default_direction("fes_mse") == "lower"
    assert default_direction("coverage") == "higher" and default_direction("folded_population") is None


def test_failed_rows_counted_and_baseline_choice():
    df = _study({0.0: 1.0, 1.0: 0.5, 3.0: 0.1}, n=4, seed=4)
    df = pd.concat([df, pd.DataFrame([{"energy_weight": 1.0, "seed": 99, "kl_ref_model": np.nan}])])
    res = summarize(df, "kl_ref_model", baseline=1)
    d = res["descriptives"].set_index("group")
    assert d.loc[1.0, "n"] == 4 and d.loc[1.0, "n_missing"] == 1
    assert set(res["comparisons"]["group"]) == {0.0, 3.0}
    assert (res["comparisons"]["baseline"] == 1.0).all()
    assert set(summarize(df, "kl_ref_model")["comparisons"]["group"]) == {1.0, 3.0}  # default: smallest
    with pytest.raises(InputError, match="baseline"):
        summarize(df, "kl_ref_model", baseline=7)
    with pytest.raises(InputError, match="no column"):
        summarize(df, "nope")


def test_power_frame_and_summary_table():
    df = _study({0.0: 1.0, 1.0: 0.0, 2.0: 1.0}, n=5, seed=8, sd=0.5)
    res = summarize_all(df, ["kl_ref_model", "coverage"])
    pw = res["power"]
    for _, r in pw.iterrows():
        assert r["seeds_needed"] == seeds_for_power(r["hedges_g"])
        assert r["seeds_needed_bonferroni"] >= r["seeds_needed"]
        assert r["power_at_n"] == pytest.approx(power_two_sample(r["hedges_g"], 5))
    table = summary_table(res)
    assert len(table) == 6 and {"welch_p_holm", "mwu_p_holm", "perm_p_holm", "seeds_needed", "kruskal_p",
                                "spearman_rho", "ci_low"} <= set(table.columns)


def test_relative_difference_only_for_one_signed_baseline():
    df = pd.DataFrame({"energy_weight": [0.0] * 3 + [1.0] * 3,
                       "kl_ref_model": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], "excess": [-0.1, 0.0, 0.1, 0.3, 0.4, 0.5]})
    res = summarize_all(df, ["kl_ref_model", "excess"], n_resamples=99)
    rel = res["comparisons"].set_index("metric")["rel_diff"]
    assert rel["kl_ref_model"] == pytest.approx(1.5) and np.isnan(rel["excess"])
    assert "higher by 0.3 (150%), worse, Holm" in verdict(res, "kl_ref_model")
    assert "excess higher by 0.4, Holm" in verdict(res, "excess")


def test_degenerate_groups_say_so():
    one = summarize(pd.DataFrame({"energy_weight": [0.0] * 3, "kl_ref_model": [1.0, 2.0, 3.0]}), "kl_ref_model")
    assert one["comparisons"].empty and "only one group (w_E=0)" in verdict(one)
    df = pd.DataFrame({"energy_weight": [0.0, 0.0, 1.0, 2.0, 2.0], "kl_ref_model": [1.0, 2.0, 3.0, np.nan, np.nan]})
    res = summarize(df, "kl_ref_model", n_resamples=99)
    comp = res["comparisons"].set_index("group")
    assert not comp["significant"].any() and comp["welch_p_holm"].isna().all()
    text = verdict(res)
    assert "w_E=1 vs 0" in text and "not testable (n<2)" in text
    assert "w_E=2 vs 0: KL(ref‖model) not comparable (n=0 vs 2)" in text
    assert res["descriptives"].set_index("group").loc[2.0, "n_missing"] == 2


def test_constant_metric_says_no_variance_not_small_n():
    df = pd.DataFrame({"energy_weight": [0.0] * 3 + [1.0] * 3, "transitions_per_replica_mean": [0.0] * 6})
    text = verdict(summarize(df, "transitions_per_replica_mean", n_resamples=99))
    assert "no variance" in text and "n<2" not in text
