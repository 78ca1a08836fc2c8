"""raycg.stats.analyze_study: the verdict's error rates under a simulated null (exact sign-flip
decision test), families, TOST, dropped pairs, the convergence gate and the verdict lines' text."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from raycg.errors import InputError
from raycg.stats import (
    STATUSES,
    analyze_study,
    holm,
    paired_t,
    primary_decisions,
    signflip_interval,
    signflip_p,
    signflip_tost,
)

ALPHA = 0.05
WEIGHTS = (0.0, 0.1, 1.0, 10.0)


def _null_studies(reps: int, n: int, dist: str, rng: np.random.Generator) -> np.ndarray:
    """(reps, weights, seeds) of the primary metric with no effect of the weight; a seed effect is
    shared by all weights of a seed (the paired design's reason). Lognormal: skewed and positive."""
    seed_effect = rng.normal(0.0, 0.7, (reps, 1, n))
    noise = rng.normal(0.0, 1.0, (reps, len(WEIGHTS), n))
    x = seed_effect + noise
    return 0.4 + 0.1 * x if dist == "normal" else np.exp(x - 1.0)


def _frame(x: np.ndarray, **extra: np.ndarray) -> pd.DataFrame:
    """One simulated study (weights, seeds) as a trial table."""
    rows = [{"energy_weight": w, "seed": s, "kl_ref_model": x[i, s], **{k: v[i, s] for k, v in extra.items()}}
            for i, w in enumerate(WEIGHTS) for s in range(x.shape[1])]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("dist", ["normal", "lognormal"])
@pytest.mark.parametrize("n", [3, 5, 10])
def test_whole_verdict_family_wise_error_under_null(dist, n):
    """2000 null studies (4 weights × n seeds) through the rule analyze_study uses (sign-flip p,
    Holm): the share of studies whose verdict prints at least one "significant" line is <= α up to
    simulation error (the binomial 99th percentile of 2000 draws at α, 6.2%). Without Holm the same
    studies exceed that bound at n = 10, so the check can fail; at n <= 5 the exact test cannot reach
    α/3 at all (smallest p 2/2^n), so no study has a significant line."""
    reps = 2000
    rng = np.random.default_rng(1000 * n + len(dist))
    x = _null_studies(reps, n, dist, rng)
    p = signflip_p(x[:, 1:] - x[:, :1])
    diff = x[:, 1:].mean(-1) - x[:, :1].mean(-1)
    dec = primary_decisions(p, diff < 0, ALPHA)
    fwer = (dec["code"] <= 1).any(axis=-1).mean()
    bound = stats.binom.ppf(0.99, reps, ALPHA) / reps
    assert fwer <= bound, (dist, n, fwer)
    if n == 10:
        assert (p <= ALPHA).any(axis=-1).mean() > bound  # uncorrected: 3 chances per study
    else:
        assert fwer == 0.0


def test_analyze_study_decides_like_the_vectorised_rule():
    """The verdict of analyze_study (pandas, per study) equals primary_decisions on the same numbers,
    with the sign-flip decision test (default, TOST too) and with decision_test="paired-t"."""
    rng = np.random.default_rng(4)
    x = _null_studies(20, 8, "normal", rng)
    x[:8, 3] -= 0.3  # some studies with a real improvement at w_E = 10 (d_z about 2) ...
    x[4:12, 1] += 0.3  # ... and some with a worsening at w_E = 0.1
    d = x[:, 1:] - x[:, :1]
    better = d.mean(-1) < 0
    codes = primary_decisions(signflip_p(d), better, ALPHA, signflip_tost(d, 0.15)["p"])["code"]
    t_codes = primary_decisions(paired_t(x[:, :1], x[:, 1:])["p"], better, ALPHA)["code"]
    for i in range(20):
        st = analyze_study(_frame(x[i]), metrics=["kl_ref_model"], primary="kl_ref_model", equivalence_margin=0.15)
        assert [v.status for v in st.verdict] == [STATUSES[c] for c in codes[i]]
        st = analyze_study(_frame(x[i]), metrics=["kl_ref_model"], primary="kl_ref_model", decision_test="paired-t")
        assert [v.status for v in st.verdict] == [STATUSES[c] for c in t_codes[i]]
        assert all("resting on normality of the 8 differences" in v.text for v in st.verdict)
    assert (codes[:8, 2] == 0).sum() >= 4 and (codes[4:12, 0] == 1).sum() >= 4 and (codes == 2).any()


def test_not_significant_never_beside_an_interval_excluding_zero():
    """Over 4000 null and near-null studies (4 weights, 6–12 seeds) every weight whose Holm sign-flip
    p is above α has a printed interval (1 − α/3) covering 0, and analyze_study prints the same."""
    rng = np.random.default_rng(8)
    for n in (6, 7, 9, 12):
        x = _null_studies(1000, n, "lognormal", rng)
        x[:, 2] *= 1.5  # a real effect at one weight, so that both kinds of line occur
        d = x[:, 1:] - x[:, :1]
        lo, hi = signflip_interval(d, ALPHA / 3)
        dec = primary_decisions(signflip_p(d), d.mean(-1) < 0, ALPHA)
        ns = dec["code"] == 3
        covers = ~np.isfinite(lo) | ((lo <= 0) & (0 <= hi))
        assert ns.any() and covers[ns].all(), n
        assert np.isfinite(lo).all() == (n >= 7)  # n_min for α/3 is 7
        if n >= 9:
            assert (dec["code"] <= 1).any() and not covers.all()  # some exclude 0: the check can fail
    for i in range(12):
        st = analyze_study(_frame(x[i]), metrics=["kl_ref_model"], primary="kl_ref_model")
        pr = st.metrics["kl_ref_model"].paired
        for v, (_, r) in zip(st.verdict, pr.iterrows(), strict=True):
            assert "exact sign-flip p (Holm)" in v.text and "98.33% sign-flip CI" in v.text
            if v.status == "no significant difference":
                assert r["signflip_ci_low"] <= 0 <= r["signflip_ci_high"]


def test_cannot_reach_alpha_with_five_pairs_says_so():
    """One weight vs the baseline with 5 seeds: the exact test's smallest p is 2/32 > 0.05, so even a
    huge effect is "no significant difference", the line says why and how many pairs would do,
    and the interval is reported as infinite."""
    x = _null_studies(1, 5, "normal", np.random.default_rng(2))[0, :2]
    x[1] -= 1.0  # every seed improves, d_z about 10
    df = _frame(np.vstack([x, x]))  # weights 1 and 10 duplicate the two rows: keep only 0 and 0.1
    df = df[df.energy_weight <= 0.1]
    st = analyze_study(df, metrics=["kl_ref_model"], primary="kl_ref_model", target_effect_size=1.0)
    (v,) = st.verdict
    assert v.status == "no significant difference"
    assert "exact sign-flip p (Holm) = 0.062" in v.text
    assert "[95% sign-flip CI: no finite interval with 5 pairs]" in v.text
    assert "the exact test cannot reach p ≤ 0.05 with 5 pairs (smallest p 2/2^5 = 0.0625); ≥ 6 pairs needed" in v.text
    pw = st.power
    assert pw.n_min == 6 and pw.power_at_target == 0.0 and pw.mde == np.inf and pw.seeds_needed >= 6
    t = analyze_study(df, metrics=["kl_ref_model"], primary="kl_ref_model", decision_test="paired-t")
    assert t.verdict[0].status == "significant improvement" and "normality" in t.verdict[0].text


def _effect_study(n: int = 8, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    s = rng.normal(0, 0.3, n)  # seed effect: large, so only the paired test sees the effects
    mu = {0.0: 0.50, 0.1: 0.50, 1.0: 0.42, 10.0: 0.80}
    x = np.array([[mu[w] + s[j] + rng.normal(0, 0.02) for j in range(n)] for w in WEIGHTS])
    extra = {"w1": 0.3 + s + rng.normal(0, 0.05, (4, n)), "js_divergence": 0.1 + rng.normal(0, 0.01, (4, n)),
             "coverage": 0.9 - 0.01 * np.arange(4)[:, None] + rng.normal(0, 0.001, (4, n))}
    return _frame(x, **extra)


def _diff(df: pd.DataFrame, g: float) -> np.ndarray:
    p = df.pivot(index="seed", columns="energy_weight", values="kl_ref_model")
    return (p[g] - p[0.0]).to_numpy()


def test_statuses_paired_beats_unpaired_and_equivalence():
    df = _effect_study()
    st = analyze_study(df, metrics=["kl_ref_model", "w1"], primary="kl_ref_model", equivalence_margin=0.08,
                       target_effect_size=1.0)
    status = {v.group: v.status for v in st.verdict}
    assert status == {0.1: "equivalent", 1.0: "significant improvement", 10.0: "significant worsening"}
    ms = st.metrics["kl_ref_model"]
    up = ms.unpaired.set_index("group")
    assert up.loc[1.0, "welch_p_holm"] > ALPHA  # the seed effect hides this one from unpaired tests
    line = next(v.text for v in st.verdict if v.group == 0.1)
    assert "equivalent within ±0.08 nats" in line and "90% sign-flip CI" in line and "TOST Holm p" in line
    eq = ms.equivalence.set_index("group")
    assert eq["tost_p_holm"].tolist() == pytest.approx(holm(eq["tost_p"].to_numpy()).tolist())
    assert st.design == "paired by seed" and st.power.test == "exact sign-flip test"
    assert eq["tost_p"].tolist() == pytest.approx([float(signflip_tost(_diff(df, g), 0.08)["p"]) for g in eq.index])


def test_no_margin_says_not_evidence_of_no_effect_and_power_is_for_the_target():
    df = _effect_study()
    st = analyze_study(df, metrics=["kl_ref_model"], primary="kl_ref_model", target_effect_size=1.5)
    line = next(v.text for v in st.verdict if v.group == 0.1)
    assert "no significant difference" in line and "not evidence of no effect" in line
    pw = st.power
    assert pw.m == 3 and pw.alpha_per_test == pytest.approx(ALPHA / 3) and pw.n == 8 and pw.n_min == 7
    from raycg.stats import detectable_effect, seeds_for_power, signflip_power
    from raycg.stats.power import signflip_detectable_effect

    assert pw.mde == pytest.approx(signflip_detectable_effect(8, 0.8, ALPHA / 3))
    assert pw.mde > detectable_effect(8, 0.8, ALPHA / 3)  # the exact test needs a larger effect at 8 pairs
    assert pw.t_seeds_needed == seeds_for_power(1.5, 0.8, ALPHA / 3)
    assert pw.power_at_target == signflip_power(1.5, 8, ALPHA / 3)
    assert pw.seeds_needed >= max(pw.t_seeds_needed, 7) and signflip_power(1.5, int(pw.seeds_needed), ALPHA / 3) >= 0.8
    observed = st.metrics["kl_ref_model"].paired["d_z"].abs().max()
    assert pw.t_seeds_needed != seeds_for_power(observed, 0.8, ALPHA / 3)  # not from the observed effect


def test_secondary_family_is_metrics_times_weights_and_exploratory_is_labelled():
    df = _effect_study()
    st = analyze_study(df, metrics=["kl_ref_model", "w1", "js_divergence", "coverage"], primary="kl_ref_model",
                       exploratory=["coverage"])
    sec = pd.concat([st.metrics[m].paired for m in ("w1", "js_divergence")])
    assert sec["t_p_holm"].tolist() == pytest.approx(holm(sec["t_p"].to_numpy()).tolist())
    assert sec["signflip_p_holm"].tolist() == pytest.approx(holm(sec["signflip_p"].to_numpy()).tolist())
    assert (sec["signflip_ci_level"] == 1 - ALPHA / 6).all() and sec["signflip_ci_finite"].all()
    assert (sec["diff_ci_method"] == "Student t (assumes normal differences)").all()
    assert "secondary: Holm across 2 metrics × 3 weights" == st.metrics["w1"].family
    cov = st.metrics["coverage"]
    assert cov.role == "exploratory" and cov.family.startswith("exploratory")
    assert cov.paired["t_p_holm"].tolist() == pytest.approx(holm(cov.paired["t_p"].to_numpy()).tolist())
    assert [v.metric for v in st.verdict] == ["kl_ref_model"] * 3  # only the primary metric has verdict lines
    table = st.table()
    assert len(table) == 4 * 4 and {"role", "family", "t_p_holm", "welch_p_holm", "d_z"} <= set(table.columns)
    rows = table[table["group"] != 0.0]
    primary = rows["role"] == "primary"
    assert rows.loc[primary, "significant"].map(type).eq(bool).all()  # the only decisions
    assert rows.loc[~primary, "significant"].isna().all() and rows["unpaired_significant"].isna().all()
    assert (cov.paired["signflip_p_holm"] <= ALPHA).all() and cov.paired["significant"].isna().all()


def test_dropped_pairs_are_counted_and_too_few_is_inconclusive():
    df = _effect_study(n=4)
    df.loc[(df.energy_weight == 1.0) & (df.seed.isin([0, 1])), "kl_ref_model"] = np.nan
    df.loc[(df.energy_weight == 10.0) & (df.seed.isin([0, 1, 2])), "kl_ref_model"] = np.nan
    st = analyze_study(df, metrics=["kl_ref_model"], primary="kl_ref_model")
    pr = st.metrics["kl_ref_model"].paired.set_index("group")
    assert pr.loc[1.0, ["n_pairs", "n_dropped"]].tolist() == [2, 2] and pr.loc[1.0, "dropped"] == "0, 1"
    v = {x.group: x for x in st.verdict}
    assert v[10.0].status == "inconclusive" and "fewer than 2 complete seed pairs (1)" in v[10.0].text
    assert "n = 2 pairs, 2 dropped" in v[1.0].text


def test_unconverged_study_is_inconclusive_with_how_much_longer():
    df = _effect_study()
    reasons = ["replicas ran 0.2× the slowest implied timescale"]
    st = analyze_study(df, metrics=["kl_ref_model"], primary="kl_ref_model", equivalence_margin=0.08,
                       converged=False, convergence_reasons=reasons, run_longer_factor=24.2)
    assert {v.status for v in st.verdict} == {"inconclusive"}
    for v in st.verdict:
        assert v.text.split(": ", 1)[1].startswith(
            "KL(ref‖model): inconclusive: replicas ran 0.2× the slowest implied timescale, run 25× longer")
    st2 = analyze_study(df, metrics=["kl_ref_model"], primary="kl_ref_model", converged=False)
    assert all("inconclusive: the study is not converged, run longer" in v.text for v in st2.verdict)
    ok = analyze_study(df, metrics=["kl_ref_model"], primary="kl_ref_model", converged=True)
    assert "inconclusive" not in {v.status for v in ok.verdict}


def test_bad_input_is_one_line():
    df = _effect_study(n=6, seed=0)
    with pytest.raises(InputError, match="cannot be the primary metric"):
        analyze_study(df, metrics=["coverage"], primary="coverage")
    with pytest.raises(InputError, match="not in the trial table"):
        analyze_study(df, metrics=["fes_mse_aligned"], primary="kl_ref_model")
    with pytest.raises(InputError, match="equivalence_margin"):
        analyze_study(df, metrics=[], primary="kl_ref_model", equivalence_margin=-1.0)
    st = analyze_study(df.drop(columns="seed"), metrics=[], primary="kl_ref_model")
    assert st.design == "unpaired" and any("Welch" in n for n in st.notes)
    assert st.power.test.startswith("Welch") and all("unpaired" in v.text for v in st.verdict)
    worse = next(v.text for v in st.verdict if v.group == 10.0)
    assert "significant worsening" in worse and "Welch t p (Holm)" in worse and "Hedges' g" in worse
