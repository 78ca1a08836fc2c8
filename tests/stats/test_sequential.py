"""Group-sequential boundaries against published tables, the decision rule's known answers, and
small calibration runs under the null (raycg.stats.sequential)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from raycg.stats import sequential as sq

EQUAL = {k: tuple((np.arange(k) + 1.0) / k) for k in (2, 3, 4, 5)}


@pytest.mark.parametrize("k, c", [(2, 2.178), (3, 2.289), (4, 2.361), (5, 2.413)])
def test_pocock_constant_matches_jennison_turnbull_table_2_1(k: int, c: float) -> None:
    assert sq.constant_boundaries(k, 0.05, "pocock") == pytest.approx(np.full(k, c), abs=6e-4)


@pytest.mark.parametrize("k, c", [(2, 1.977), (3, 2.004), (4, 2.024), (5, 2.040)])
def test_obrien_fleming_constant_matches_jennison_turnbull_table_2_3(k: int, c: float) -> None:
    z = sq.constant_boundaries(k, 0.05, "obrien-fleming")
    assert z[-1] == pytest.approx(c, abs=6e-4)
    assert z == pytest.approx(c * np.sqrt(k / (np.arange(k) + 1.0)), abs=2e-3)


@pytest.mark.parametrize(
    "k, z",
    [
        (2, (2.963, 1.969)),
        (3, (3.710, 2.511, 1.993)),
        (4, (4.333, 2.963, 2.359, 2.014)),
        (5, (4.877, 3.357, 2.680, 2.290, 2.031)),
    ],
)
def test_lan_demets_obf_two_sided_matches_published(k: int, z: tuple[float, ...]) -> None:
    """Two-sided α = 0.05, equally spaced (ldbounds / gsDesign: α/2 per side)."""
    assert sq.boundaries(EQUAL[k], 0.05, "obrien-fleming").z == pytest.approx(z, abs=1.5e-3)


def test_lan_demets_pocock_and_one_sided_match_published() -> None:
    poc = sq.boundaries(EQUAL[5], 0.05, "pocock").z
    assert poc == pytest.approx((2.438, 2.427, 2.410, 2.397, 2.386), abs=1.5e-3)
    one = sq.boundaries(EQUAL[4], 0.05, "obrien-fleming", sides=1)
    assert one.z[:2] == pytest.approx((3.7496, 2.5399), abs=2e-4)  # 8.86e-5 spent at t = 1/4
    assert one.cumulative[0] == pytest.approx(8.85754e-5, rel=1e-4)


@pytest.mark.parametrize("spending", sq.SPENDING)
def test_spending_reaches_alpha_at_one_and_grows(spending: str) -> None:
    t = np.linspace(0.0, 1.0, 51)
    a = sq.spent(t, 0.05, spending)
    assert a[0] == 0.0 and a[-1] == pytest.approx(0.05, abs=1e-12)
    assert np.all(np.diff(a) > 0)


@pytest.mark.parametrize("spending", sq.SPENDING)
@pytest.mark.parametrize("sides", [1, 2])
def test_boundaries_spend_exactly_the_spending_function(spending: str, sides: int) -> None:
    t = (0.3, 0.55, 0.8, 1.0)
    b = sq.boundaries(t, 0.05, spending, sides)
    exits = sq.crossing_probabilities(b.z, t, sides)
    assert np.cumsum(exits) == pytest.approx(b.cumulative, abs=2e-7)
    assert exits.sum() == pytest.approx(0.05, abs=2e-7)


def test_rectangle_probability_agrees_with_scipy_multivariate_normal() -> None:
    t = np.array((1 / 3, 2 / 3, 1.0))
    b = sq.boundaries(t, 0.05, "pocock")
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    c = np.array(b.z)
    inside = stats.multivariate_normal.cdf(
        c,
        mean=np.zeros(3),
        cov=cov,
        lower_limit=-c,
        abseps=1e-7,
        releps=0,
        rng=np.random.default_rng(0),
    )
    assert 1.0 - inside == pytest.approx(0.05, abs=2e-5)


def test_boundaries_hold_by_monte_carlo_with_drift() -> None:
    """Brownian paths: the crossing rate equals the computed one at θ = 0 and at θ = 2.5."""
    t = np.array((0.25, 0.5, 0.75, 1.0))
    b = sq.boundaries(t, 0.05, "obrien-fleming")
    rng = np.random.default_rng(7)
    steps = rng.standard_normal((200_000, 4)) * np.sqrt(np.diff((0.0, *t)))
    for drift in (0.0, 2.5):
        s = np.cumsum(steps, axis=1) + drift * t
        hit = (np.abs(s / np.sqrt(t)) >= np.array(b.z)).any(axis=1).mean()
        want = sq.crossing_probabilities(b.z, t, 2, drift).sum()
        assert hit == pytest.approx(want, abs=4 * math.sqrt(want * (1 - want) / 200_000))
    assert 0.6 < want < 0.8


def test_prefix_boundaries_do_not_depend_on_later_looks() -> None:
    a = sq.boundaries((0.4, 0.7), 0.05).z
    b = sq.boundaries((0.4, 0.7, 1.0), 0.05).z
    assert a == pytest.approx(b[:2], abs=1e-9)


def test_fractions_must_increase() -> None:
    with pytest.raises(ValueError, match="increase"):
        sq.boundaries((0.5, 0.5, 1.0), 0.05)


def test_stagewise_p_is_the_spent_error_on_the_boundary() -> None:
    t = EQUAL[4]
    b = sq.boundaries(t, 0.05)
    assert sq.stagewise_p(b, 0, 1.96) == pytest.approx(2 * stats.norm.sf(1.96), abs=1e-9)
    for k in range(4):
        assert sq.stagewise_p(b, k, b.z[k]) == pytest.approx(b.cumulative[k], abs=1e-6)
    assert sq.stagewise_p(b, 3, b.z[3] - 0.2) > 0.05 > sq.stagewise_p(b, 3, b.z[3] + 0.2)
    assert sq.stagewise_p(b, 2, 10.0) == pytest.approx(b.cumulative[1], abs=1e-9)


def test_pair_fractions_skip_looks_without_new_pairs_and_last_spends_all() -> None:
    assert sq.pair_fractions([3, 3, 7, 11], 12) == [0.25, None, 7 / 12, 1.0]
    assert sq.pair_fractions([1, 4], 12, n_looks=4) == [None, 4 / 12]
    levels = sq.look_levels([3, 3, 7, 11], 12, 0.05)
    assert levels[1] == 0 and 0 < levels[0] < levels[2] < levels[3] < 0.05


def test_smallest_level_and_conditional_power() -> None:
    assert sq.smallest_level(5) == 2 / 32 and sq.smallest_level(5, sides=1) == 1 / 32
    assert sq.smallest_level(3, "paired-t") == 0.0
    # B-value: given z at t, the final Z has mean z√t + θ(1 − t) and variance 1 − t
    cp = sq.conditional_power(1.0, 0.5, 1.96, 2.0)
    assert cp == pytest.approx(stats.norm.sf((1.96 - math.sqrt(0.5) - 1.0) / math.sqrt(0.5)))


def _levels(m: int, value: float) -> np.ndarray:
    """(m steps, m weights): level α_r = value / r at Holm step r."""
    return np.repeat((value / np.arange(1, m + 1))[:, None], m, axis=1)


def test_holm_step_down_and_stopped_weights_keep_their_share() -> None:
    st = sq.new_state((2,))
    both = sq.decide_look(
        st, 0, np.array([0.02, 0.04]), np.array([True, False]), _levels(2, 0.05), final=False
    )
    assert both["stopped"].all() and list(both["status"]) == [
        0,
        1,
    ]  # 0.02 ≤ 0.025, then 0.04 ≤ 0.05
    none = sq.decide_look(
        st, 0, np.array([0.03, 0.04]), np.array([True, True]), _levels(2, 0.05), final=False
    )
    assert not none["stopped"].any()
    # weight 0 equivalent at look 0: it is not rejected, so weight 1 still needs α/2 later
    eq = sq.decide_look(
        st,
        0,
        np.array([0.5, 0.2]),
        np.array([True, True]),
        _levels(2, 0.05),
        final=False,
        tost_p=np.array([0.001, 0.5]),
        eq_levels=_levels(2, 0.05),
    )
    assert list(eq["reason"]) == [1, -1] and list(eq["status"]) == [2, -1]
    later = sq.decide_look(
        eq, 1, np.array([0.5, 0.04]), np.array([True, True]), _levels(2, 0.05), final=True
    )
    assert list(later["reason"]) == [1, 3] and later["status"][1] == 3 and later["look"][1] == 1


def test_unconverged_look_stops_nothing_and_ends_inconclusive() -> None:
    st = sq.new_state((1,))
    p, better = np.array([1e-6]), np.array([True])
    mid = sq.decide_look(
        st,
        0,
        p,
        better,
        _levels(1, 0.05),
        final=False,
        converged=False,
        tost_p=np.array([1e-6]),
        eq_levels=_levels(1, 0.05),
    )
    assert not mid["stopped"].any()
    end = sq.decide_look(mid, 1, p, better, _levels(1, 0.05), final=True, converged=False)
    assert end["reason"][0] == 3 and end["status"][0] == 4
    ok = sq.decide_look(mid, 1, p, better, _levels(1, 0.05), final=True, converged=True)
    assert ok["reason"][0] == 0 and ok["status"][0] == 0


def _null_rate(test: str, looks: tuple[int, ...], reps: int, naive: bool = False) -> float:
    """Any 'significant' among 2 weights vs a baseline, seed-correlated normal values."""
    rng = np.random.default_rng(11)
    x = rng.normal(0, 0.7, (reps, 1, looks[-1])) + rng.normal(0, 1, (reps, 3, looks[-1]))
    d = x[:, 1:] - x[:, :1]
    res = [sq.look_tests(d[..., :n], test) for n in looks]
    p = np.stack([r["p"] for r in res], axis=-2)
    better = np.stack([r["mean"] < 0 for r in res], axis=-2)
    eff = sq.level_table(np.array(looks), looks[-1], 0.05, weights=2)
    if naive:  # every look at the fixed design's Holm levels: the inflation the design prevents
        eff = np.broadcast_to(_levels(2, 0.05), eff.shape)
    st = sq.sequential_decisions(p, better, eff)
    return float((st["status"] <= 1).any(-1).mean())


def test_null_family_wise_error_is_kept_and_naive_looks_inflate_it() -> None:
    reps = 4000  # SE ≈ 0.0035 at 5%
    assert _null_rate("paired-t", (3, 5, 8, 12), reps) < 0.062
    assert _null_rate("paired-t", (3, 5, 8, 12), reps, naive=True) > 0.075
    assert _null_rate("sign-flip", (8, 10, 12), 2000) < 0.065


def test_repeated_interval_covers_at_an_effect() -> None:
    """OBF [3, 5, 8, 12], paired t, d_z = 1: the interval at the stopping look covers the truth."""
    rng = np.random.default_rng(5)
    looks, reps, delta = (3, 5, 8, 12), 3000, -1.0
    d = rng.normal(delta, 1.0, (reps, 1, 12))
    res = [sq.look_tests(d[..., :n], "paired-t") for n in looks]
    p = np.stack([r["p"] for r in res], axis=-2)
    better = np.stack([r["mean"] < 0 for r in res], axis=-2)
    st = sq.sequential_decisions(p, better, sq.level_table(np.array(looks), 12, 0.05))
    b = sq.boundaries([n / 12 for n in looks], 0.05)
    cover = np.zeros(reps, bool)
    for k, n in enumerate(looks):
        rows = np.flatnonzero(st["look"][:, 0] == k)
        lo, hi = sq.repeated_interval(d[rows, 0, :n], b.nominal[k], "paired-t")
        cover[rows] = (lo <= delta) & (delta <= hi)
    assert cover.mean() > 0.94
    assert 0.25 < (st["look"][:, 0] < 3).mean()  # many studies stopped early
