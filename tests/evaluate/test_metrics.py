"""Metric functions against known answers (closed forms for Gaussians, exact zeros, directions)."""

import numpy as np
import pytest

from raycg.evaluate import metrics as M

N = 400_000


def _hists(a, b, bins=60):
    edges = M.grid_edges(np.concatenate([a, b]), bins, 0.05)
    ha, oa = M.histogram2d(a, edges[0], edges[1])
    hb, ob = M.histogram2d(b, edges[0], edges[1])
    return M.with_outside(ha, oa), M.with_outside(hb, ob)


def _kl_gauss(mu0, s0, mu1, s1):
    """KL(N(mu0, s0² I) ‖ N(mu1, s1² I)) in 2-D, closed form."""
    d = 2
    return float(d * np.log(s1 / s0) + (d * s0**2 + np.sum((np.asarray(mu0) - mu1) ** 2)) / (2 * s1**2) - d / 2)


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(12345)


def test_identical_samples_give_exact_zeros(rng):
    a = rng.normal(size=(50_000, 2))
    p, q = _hists(a, a.copy())
    assert M.kl_divergence(p, q) == 0.0
    assert M.kl_divergence(q, p) == 0.0
    assert M.js_divergence(p, q) == 0.0
    assert M.wasserstein_2d_grid(a, a.copy()) == 0.0
    assert M.wasserstein_1d(a[:, 0], a[:, 0].copy()) == 0.0


def test_kl_of_shifted_gaussians_matches_closed_form(rng):
    a = rng.normal(size=(N, 2))
    b = rng.normal(size=(N, 2)) + [1.0, 0.0]
    p, q = _hists(a, b)
    exact = _kl_gauss([0, 0], 1.0, [1, 0], 1.0)  # = 0.5
    assert exact == pytest.approx(0.5)
    assert M.kl_divergence(p, q) == pytest.approx(exact, abs=0.05)
    assert M.kl_divergence(q, p) == pytest.approx(exact, abs=0.05)


def test_kl_direction_with_different_widths(rng):
    """KL is asymmetric: swapping the arguments gives the other closed form."""
    a = rng.normal(size=(N, 2))
    b = 1.5 * rng.normal(size=(N, 2))
    p, q = _hists(a, b)
    narrow_wide = _kl_gauss([0, 0], 1.0, [0, 0], 1.5)  # 0.255
    wide_narrow = _kl_gauss([0, 0], 1.5, [0, 0], 1.0)  # 0.439
    assert M.kl_divergence(p, q) == pytest.approx(narrow_wide, abs=0.04)
    assert M.kl_divergence(q, p) == pytest.approx(wide_narrow, abs=0.06)


def test_kl_ref_model_punishes_missing_reference_states(rng):
    """Reference with two states, model with only one: KL(ref‖model) >> KL(model‖ref) ≈ ln 2."""
    ref = np.concatenate([rng.normal(size=(N // 2, 2)), rng.normal(size=(N // 2, 2)) + [6.0, 0.0]])
    model = rng.normal(size=(N // 2, 2))
    p, q = _hists(ref, model)
    kl_rm, kl_mr = M.kl_divergence(p, q, 1e-6), M.kl_divergence(q, p, 1e-6)
    assert kl_mr == pytest.approx(np.log(2), abs=0.05)
    assert kl_rm > 3 * kl_mr
    # and the regulariser is what bounds it: a smaller epsilon gives a larger KL(ref‖model)
    assert M.kl_divergence(p, q, 1e-9) > kl_rm


def test_js_bounds_and_symmetry(rng):
    a = rng.normal(size=(N // 4, 2))
    b = rng.normal(size=(N // 4, 2)) + [50.0, 0.0]
    p, q = _hists(a, b)
    assert M.js_divergence(p, q) == pytest.approx(np.log(2), abs=1e-9)  # disjoint supports
    c = rng.normal(size=(N // 4, 2)) + [0.5, 0.0]
    p, q = _hists(a, c)
    assert M.js_divergence(p, q) == pytest.approx(M.js_divergence(q, p), abs=1e-12)
    assert 0 < M.js_divergence(p, q) < np.log(2)


def test_wasserstein_of_shifted_gaussians_is_the_shift(rng):
    """For equal covariances W1 = |Δμ| exactly (Jensen lower bound = translation upper bound)."""
    a = rng.normal(size=(N, 2))
    b = rng.normal(size=(N, 2)) + [0.6, 0.8]  # |Δμ| = 1
    assert M.wasserstein_2d_grid(a, b, bins=24) == pytest.approx(1.0, abs=0.03)
    assert M.wasserstein_1d(a[:, 0], b[:, 0]) == pytest.approx(0.6, abs=0.01)
    assert M.wasserstein_1d(a[:, 1], b[:, 1]) == pytest.approx(0.8, abs=0.01)
    # 1-D, different widths: W1(N(0,1), N(0,σ²)) = |σ-1|·sqrt(2/π)
    c = 2.0 * rng.normal(size=N)
    assert M.wasserstein_1d(a[:, 0], c) == pytest.approx(np.sqrt(2 / np.pi), abs=0.01)


def _transport_by_linprog(p, q, cost):
    """The transport problem as a dense linear program through scipy HiGHS (an independent solver)."""
    from scipy.optimize import linprog

    m, n = cost.shape
    a_eq = np.zeros((m + n, m * n))
    for i in range(m):
        a_eq[i, i * n:(i + 1) * n] = 1.0
    for j in range(n):
        a_eq[m + j, j::n] = 1.0
    res = linprog(cost.ravel(), A_eq=a_eq[:-1], b_eq=np.concatenate([p, q * p.sum() / q.sum()])[:-1],
                  bounds=(0, None), method="highs")
    assert res.status == 0
    return res.fun


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_transport_cost_matches_the_linear_program(seed):
    # the network simplex and HiGHS reach the same optimum (random masses, Euclidean and custom costs)
    from scipy.spatial.distance import cdist

    g = np.random.default_rng(seed)
    xp, xq = g.normal(size=(40, 2)), g.normal(size=(55, 2)) + 0.5
    p, q = g.random(40), g.random(55) * 3.0
    assert M.transport_cost(p, xp, q, xq) == pytest.approx(_transport_by_linprog(p, q, cdist(xp, xq)), rel=1e-9)
    cost = g.random((40, 56))
    q_out = np.append(q, 0.7)
    assert M.transport_cost(p, None, q_out, None, cost=cost) == pytest.approx(
        _transport_by_linprog(p, q_out, cost), rel=1e-9)


def test_transport_cost_small_known_case():
    # two point masses moved by distance 3 and 4 -> cost (3 + 4) / 2
    p = np.array([0.5, 0.5])
    xp = np.array([[0.0, 0.0], [10.0, 0.0]])
    xq = np.array([[3.0, 0.0], [10.0, 4.0]])
    assert M.transport_cost(p, xp, p, xq) == pytest.approx(3.5)


def test_free_energy_min_zero_nan_empty_and_boltzmann_ratio():
    kT = 0.6
    h = np.array([[100.0, 10.0], [0.0, 1.0]])
    f = M.free_energy(h, kT)
    assert np.nanmin(f) == 0.0 and np.isnan(f[1, 0])
    assert f[0, 1] - f[0, 0] == pytest.approx(kT * np.log(10))
    assert f[1, 1] - f[0, 0] == pytest.approx(kT * np.log(100))


def test_fes_mse_and_coverage():
    a = np.array([[0.0, 1.0], [2.0, np.nan]])
    b = a + 0.5
    b[1, 0] = np.nan
    assert M.fes_mse(a, b) == pytest.approx(0.25)
    assert M.fes_mse(a, b, aligned=True) == pytest.approx(0.0)
    assert np.isnan(M.fes_mse(a, np.full_like(a, np.nan)))
    href = np.array([[4.0, 1.0], [1.0, 0.0]])
    hmod = np.array([[1.0, 0.0], [7.0, 3.0]])
    assert M.coverage(href, hmod) == pytest.approx(2 / 3)
    assert M.coverage(href, hmod, weighted=True) == pytest.approx(5 / 6)


def test_bin_index_edges_and_outside():
    e = np.linspace(0.0, 1.0, 5)
    idx = M.bin_index(np.array([-0.1, 0.0, 0.24, 0.25, 0.999, 1.0, 1.01, np.nan]), e)
    assert idx.tolist() == [-1, 0, 0, 1, 3, 3, -1, -1]
    h, out = M.histogram2d(np.array([[0.1, 0.1], [2.0, 0.1], [0.9, 0.9]]), e, e)
    assert h.sum() == 2 and out == 1 and h[0, 0] == 1 and h[3, 3] == 1


def _double_well(n=30, noise=0.0, seed=0):
    x = np.linspace(-2, 2, n)
    gx, gy = np.meshgrid(x, x, indexing="ij")
    f = 2.0 * (gx**2 - 1) ** 2 + 1.5 * gy**2 + 0.3 * (gx > 0)  # right well 0.3 higher
    f += noise * np.random.default_rng(seed).random(f.shape)
    return f - f.min()


def test_find_basins_double_well_merges_noise_and_orders_by_depth():
    kT = 0.6
    f = _double_well(noise=0.15)
    prob = np.exp(-f / kT)
    prob /= prob.sum()
    labels, bmin = M.find_basins(f, prob, kT, merge_kT=1.5, min_population=0.01)
    assert len(bmin) == 2 and bmin[0] <= bmin[1]
    n = f.shape[0]
    assert labels[n // 4, n // 2] == 0  # left (deeper) well is basin 0
    assert labels[3 * n // 4, n // 2] == 1
    # a larger merge threshold than the barrier (2 kcal/mol) gives a single basin
    labels1, bmin1 = M.find_basins(f, prob, kT, merge_kT=10.0)
    assert len(bmin1) == 1 and np.all(labels1[np.isfinite(f)] == 0)


def test_core_labels_and_transition_counting():
    kT = 0.6
    f = _double_well()
    prob = np.exp(-f / kT)
    labels, bmin = M.find_basins(f, prob / prob.sum(), kT)
    cores = M.core_labels(labels, f, bmin, kT, core_kT=1.0)
    n = f.shape[0]
    assert cores[n // 2, n // 2] == -1  # the barrier top is in no core
    assert cores[n // 4, n // 2] == 0
    assert M.count_transitions(np.array([-1, 0, 0, -1, 0, 1, -1, 1, 0, -1])) == 2
    assert M.count_transitions(np.array([-1, -1])) == 0
    assert M.count_transitions(np.array([1, -1, 1, -1, 1])) == 0


def test_w1_grid_is_robust_to_one_far_outlier(rng):
    a = rng.normal(size=(100_000, 2))
    b = rng.normal(size=(100_000, 2)) + [1.0, 0.0]
    clean = M.wasserstein_2d_grid(a, b)
    b[0] = [1e6, -1e6]
    assert M.wasserstein_2d_grid(a, b) == pytest.approx(clean, abs=0.02)


def test_w1_net_mass_formulation_equals_the_full_transport_problem(rng):
    """wasserstein_2d_grid moves only the surplus of p - q; the full p -> q LP gives the same optimum."""
    a = np.concatenate([rng.normal(size=(20_000, 2)), rng.normal(size=(10_000, 2)) + [4, 1]])
    b = rng.normal(size=(30_000, 2)) * [1.5, 0.7] + [1, 0]
    bins = 12
    lo = np.minimum(a.min(0), np.quantile(b, 0.001, axis=0))
    hi = np.maximum(a.max(0), np.quantile(b, 0.999, axis=0))
    edges = M.grid_edges(np.stack([lo, hi]), bins, 0.0)
    ha, _ = M.histogram2d(a, *edges)
    hb, _ = M.histogram2d(np.clip(b, lo, hi), *edges)
    c = [0.5 * (e[1:] + e[:-1]) for e in edges]
    gx, gy = np.meshgrid(*c, indexing="ij")
    centres = np.column_stack([gx.ravel(), gy.ravel()])
    ma, mb = ha.ravel() > 0, hb.ravel() > 0
    full = M.transport_cost(ha.ravel()[ma] / ha.sum(), centres[ma], hb.ravel()[mb] / hb.sum(), centres[mb])
    assert M.wasserstein_2d_grid(a, b, bins=bins) == pytest.approx(full, rel=1e-7)
    assert full > 0.5


def test_kl_epsilon_variants_agree_under_full_coverage_and_order_under_missed_mass():
    """On a 4-cell grid: a model that visits every reference cell gets (nearly) the same KL at every ε;
    one that misses a cell gets a larger KL the smaller ε. missed_reference_mass = 1 − coverage_weighted."""
    from types import SimpleNamespace

    from raycg.evaluate.config import EvalConfig
    from raycg.evaluate.parts import Totals, distribution_metrics, kl_epsilon_name, kl_epsilon_sensitivity

    ref = SimpleNamespace(hist2d=np.array([[40.0, 30.0], [20.0, 10.0]]), outside2d=0.0)

    def totals(h):
        return Totals(hist=np.asarray(h, np.float64).ravel(), outside=0.0, lost=0.0, hist_w1=np.zeros(1),
                      rmsd_frames=0.0, folded=0.0, events=0.0, frames=float(np.sum(h)))

    cfg = EvalConfig()
    names = [kl_epsilon_name(e) for e in (1e-8, 1e-4, 1e-3)]
    assert names == ["kl_ref_model_eps8", "kl_ref_model_eps4", "kl_ref_model_eps3"]
    full = kl_epsilon_sensitivity(ref, totals([[25, 25], [25, 25]]), cfg)
    assert list(full) == names
    assert full["kl_ref_model_eps8"] > 0.05
    for k in names[1:]:
        assert full[k] == pytest.approx(full["kl_ref_model_eps8"], rel=0.01), full
    miss = kl_epsilon_sensitivity(ref, totals([[50, 30], [20, 0]]), cfg)
    assert miss["kl_ref_model_eps8"] > miss["kl_ref_model_eps4"] > miss["kl_ref_model_eps3"] > 0
    assert miss["kl_ref_model_eps8"] > 10 * full["kl_ref_model_eps8"]
    with pytest.raises(ValueError):
        kl_epsilon_name(3e-4)
    ref_full = SimpleNamespace(**ref.__dict__, fes2d=np.zeros((2, 2)), kT=0.6, folded_fraction=0.5,
                               folding_transitions_per_trajectory=np.zeros(1), folding_time_ns=1.0)
    m = distribution_metrics(ref_full, totals([[50, 30], [20, 0]]), cfg, 1.0, w1=False)
    assert (m["missed_reference_mass"] == 1.0 - m["coverage_weighted"]
            and m["missed_reference_mass"] == pytest.approx(0.1))
    assert distribution_metrics(ref_full, totals([[4, 3], [2, 1]]), cfg, 1.0, w1=False)["missed_reference_mass"] == 0.0
