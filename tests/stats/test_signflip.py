"""raycg.stats.signflip: equal to scipy's permutation test, exact under a symmetric null, its
inverted interval, the one-sided tests of TOST, and the sign-flip power."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from raycg.stats import (
    min_pairs,
    power_t,
    signflip_interval,
    signflip_p,
    signflip_power,
    signflip_tost,
    smallest_p,
)

ALPHA = 0.05


def _scipy_p(d: np.ndarray, alternative: str) -> float:
    res = stats.permutation_test((d,), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
                                 alternative=alternative, n_resamples=10**6)
    return float(res.pvalue)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_p_equals_scipy_permutation_test(alternative):
    rng = np.random.default_rng(3)
    cases = [rng.normal(0.4, 1.0, n) for n in (2, 3, 5, 8, 12)]
    cases += [np.array([1.0, 1.0, 1.0, 2.0, 2.0, -1.0]), np.array([0.5, -0.5, 0.5, -0.5]), np.zeros(4)]
    for d in cases:
        assert signflip_p(d, alternative) == pytest.approx(_scipy_p(d, alternative), rel=1e-12), d
    batch = np.stack(cases[:1] * 3)
    assert signflip_p(batch, alternative).shape == (3,)
    assert signflip_p(batch.T, alternative, axis=0) == pytest.approx(signflip_p(batch, alternative))


def test_monte_carlo_above_sixteen_pairs_and_edge_cases():
    d = np.random.default_rng(5).normal(0.5, 1.0, 20)
    p = float(signflip_p(d))
    assert p == pytest.approx(_scipy_p(d, "two-sided"), abs=0.01) and p >= 1 / 20_001
    assert signflip_p(d) == p  # the Monte Carlo sign vectors are fixed: same p on every call
    assert np.isnan(signflip_p(np.array([1.0]))) and np.isnan(signflip_p(np.array([1.0, np.nan, 2.0])))
    assert smallest_p(5) == 2 / 32 and min_pairs(0.05) == 6 and min_pairs(0.05 / 4) == 8 and min_pairs(0.05 / 3) == 7
    with pytest.raises(ValueError, match="alternative"):
        signflip_p(d, "both")


def test_exact_under_a_symmetric_null():
    """4000 studies of 8 heavy-tailed symmetric differences (t, 2 df): the rejection rate at α is the
    exact size floor(α·256)/256 = 4.69% up to 3 SE, for the two-sided and both one-sided tests; the
    paired t on the same draws is not (the check can fail)."""
    reps, n = 4000, 8
    d = np.random.default_rng(11).standard_t(2, (reps, n))
    size = np.floor(ALPHA * 2**n) / 2**n
    se = np.sqrt(size * (1 - size) / reps)
    for alternative in ("two-sided", "greater", "less"):
        rate = (signflip_p(d, alternative) <= ALPHA).mean()
        assert abs(rate - size) <= 3 * se and rate <= ALPHA + 3 * se, (alternative, rate)
    t = stats.ttest_1samp(d, 0.0, axis=-1).pvalue
    assert abs((t <= ALPHA).mean() - size) > 3 * se


def test_interval_inverts_the_test():
    """Each finite bound sits where p(d − δ) crosses α: rejected just outside, accepted just inside;
    the interval holds the mean; with too few pairs for α it is (−∞, ∞) (NaN bounds)."""
    rng = np.random.default_rng(2)
    d = rng.lognormal(0.0, 1.0, (50, 9)) - 1.0
    a = ALPHA / 4
    lo, hi = signflip_interval(d, a)
    eps = 1e-6 * (d.max(-1) - d.min(-1))
    assert (signflip_p(d - (lo - eps)[:, None]) <= a).all() and (signflip_p(d - (lo + eps)[:, None]) > a).all()
    assert (signflip_p(d - (hi + eps)[:, None]) <= a).all() and (signflip_p(d - (hi - eps)[:, None]) > a).all()
    assert ((lo <= d.mean(-1)) & (d.mean(-1) <= hi)).all() and (lo >= d.min(-1)).all() and (hi <= d.max(-1)).all()
    lo5, hi5 = signflip_interval(d[:, :5], ALPHA)
    assert np.isnan(lo5).all() and np.isnan(hi5).all()
    lo6, hi6 = signflip_interval(np.full(6, 2.0), ALPHA)
    assert lo6 == pytest.approx(2.0) and hi6 == pytest.approx(2.0)


def test_tost_is_two_one_sided_sign_flip_tests_and_exact_at_the_margin():
    rng = np.random.default_rng(7)
    d = rng.normal(0.1, 0.3, 7)
    r = signflip_tost(d, 0.5)
    assert r["p_lower"] == pytest.approx(_scipy_p(d + 0.5, "greater"))
    assert r["p_upper"] == pytest.approx(_scipy_p(d - 0.5, "less"))
    assert r["p"] == max(r["p_lower"], r["p_upper"])
    at_margin = rng.laplace(0.5, 1.0, (4000, 8))  # true mean difference = +margin: H0 holds
    size = (signflip_tost(at_margin, 0.5)["p"] <= ALPHA).mean()
    assert size <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / 4000)
    with pytest.raises(ValueError, match="margin"):
        signflip_tost(d, 0.0)


def test_signflip_power_is_zero_below_n_min_and_near_the_t_power_above():
    assert signflip_power(3.0, 5, ALPHA) == 0.0 and signflip_power(3.0, 7, ALPHA / 4) == 0.0
    assert np.isnan(signflip_power(1.0, 1, ALPHA))
    sf, t = signflip_power(1.0, 10, ALPHA), float(power_t(1.0, 10, ALPHA))
    assert abs(sf - t) <= 3 * np.sqrt(t * (1 - t) / 2000)
    assert signflip_power(1.0, 8, ALPHA / 4) < float(power_t(1.0, 8, ALPHA / 4))  # discreteness costs power


def test_signflip_detectable_effect_is_where_simulated_power_crosses_80_percent():
    """Bisection on the seeded power simulation: power >= 0.8 at the returned d_z and < 0.8 just below;
    infinite where the test cannot reach alpha; larger than the paired t's at 6 pairs (it needs all signs)."""
    from raycg.stats.power import detectable_effect, signflip_detectable_effect, signflip_power

    d6 = signflip_detectable_effect(6, 0.8, 0.05)
    assert signflip_power(d6, 6, 0.05) >= 0.8 > signflip_power(d6 - 0.02, 6, 0.05)
    assert d6 > detectable_effect(6, 0.8, 0.05, "paired") + 0.2
    assert signflip_detectable_effect(5, 0.8, 0.05) == float("inf")
