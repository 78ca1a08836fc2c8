"""Energy-matching targets vs an independent numpy computation of the published formula."""

from __future__ import annotations

import numpy as np
import pytest

from raycg.errors import DatasetError, InputError
from raycg.train.targets import SLOW_EIGENVALUE, choose_components, compute_energy_targets, tica_free_energy
from raycg.units import kbt


def independent_projection(dataset, tica, k):
    """Pair distances by explicit loops over (i<j), projected with the deeptime model itself."""
    x = np.asarray(dataset.coords, dtype=np.float64)
    b = x.shape[1]
    feats = np.stack([np.linalg.norm(x[:, i] - x[:, j], axis=-1) for i in range(b) for j in range(i + 1, b)], 1)
    return tica.deeptime_model.transform(feats.astype(np.float32))[:, :k].astype(np.float64)


def published_marginal(y, kt, bins):
    """E(x) = -k_BT Σ_c ln p_c(y_c(x)), p_c a 1-D histogram density (numpy.histogram, density=True)."""
    e = np.zeros(len(y))
    for c in range(y.shape[1]):
        p, edges = np.histogram(y[:, c], bins=bins, density=True)
        idx = np.clip(np.digitize(y[:, c], edges[1:-1]), 0, bins - 1)
        e += -kt * np.log(p[idx])
    return e


def off_edge(y, bins, tol=1e-5):
    """Frames not within float32 rounding of a histogram bin edge (those may fall either side)."""
    ok = np.ones(len(y), bool)
    for c in range(y.shape[1]):
        edges = np.histogram_bin_edges(y[:, c], bins=bins)
        ok &= np.min(np.abs(y[:, c, None] - edges[None, 1:-1]), axis=1) > tol * (edges[-1] - edges[0])
    return ok


def test_tica_marginal_matches_published_formula(dataset, tica, tmp_path):
    out = compute_energy_targets(dataset, tica, "tica-marginal", n_components="all", bins=40, cache_dir=tmp_path)
    y = independent_projection(dataset, tica, tica.dim)
    ref = published_marginal(y, kbt(dataset.temperature), 40)
    assert out.info["n_components"] == tica.dim == 3
    ok = off_edge(y, 40)
    assert ok.mean() > 0.99
    np.testing.assert_allclose(out.free_energy[ok], ref[ok], rtol=1e-6, atol=1e-6)
    assert out.info["n_floored"] == 0 and np.all(np.isfinite(out.free_energy))
    # first k components only
    k1 = compute_energy_targets(dataset, tica, "tica-marginal", n_components=1, bins=40, cache_dir=tmp_path)
    ok = off_edge(y[:, :1], 40)
    np.testing.assert_allclose(k1.free_energy[ok], published_marginal(y[:, :1], kbt(dataset.temperature), 40)[ok],
                               rtol=1e-6, atol=1e-6)
    # cached the second time, same numbers
    again = compute_energy_targets(dataset, tica, "tica-marginal", n_components="all", bins=40, cache_dir=tmp_path)
    assert again.info["cached"] and np.array_equal(again.free_energy, out.free_energy)


def test_tica_joint_histogram_matches_numpy(dataset, tica, tmp_path):
    out = compute_energy_targets(dataset, tica, "tica-joint", bins=12, cache_dir=tmp_path)
    y = independent_projection(dataset, tica, 2)
    h, ex, ey = np.histogram2d(y[:, 0], y[:, 1], bins=12, density=True)
    ix = np.clip(np.digitize(y[:, 0], ex[1:-1]), 0, 11)
    iy = np.clip(np.digitize(y[:, 1], ey[1:-1]), 0, 11)
    ref = -kbt(dataset.temperature) * np.log(h[ix, iy])
    ok = off_edge(y, 12)
    np.testing.assert_allclose(out.free_energy[ok], ref[ok], rtol=1e-6, atol=1e-6)
    assert out.info["n_components"] == 2


def test_kde_marginal_close_to_direct_kde(dataset, tica, tmp_path):
    from scipy.stats import gaussian_kde

    out = compute_energy_targets(dataset, tica, "tica-marginal", n_components=2, density="kde", cache_dir=tmp_path)
    y = independent_projection(dataset, tica, 2)
    kt = kbt(dataset.temperature)
    ref = sum(-kt * np.log(gaussian_kde(y[:, c])(y[:, c])) for c in range(2))
    np.testing.assert_allclose(out.free_energy, ref, atol=0.02)


def test_empty_bins_are_floored_never_inf():
    rng = np.random.default_rng(0)
    y = np.concatenate([rng.normal(0, 1, (500, 2)), [[40.0, 40.0]]])
    w = np.ones(len(y))
    w[-1] = 0.0                                   # the outlier's bin holds no weight: p = 0 there
    for mode in ("tica-marginal", "tica-joint"):
        for density in ("histogram", "kde"):
            out = tica_free_energy(y, 0.6, mode, density=density, bins=30, weights=w)
            assert np.all(np.isfinite(out.free_energy))
            assert out.info["n_floored"] >= 1
            assert np.isclose(out.free_energy[-1], max(out.free_energy)), (mode, density)
            assert all(np.isfinite(out.info["floor_energy_kcal"]))


def test_unbuildable_targets_fail_clearly():
    with pytest.raises(DatasetError, match="NaN"):
        tica_free_energy(np.array([[0.0], [np.nan], [1.0]]), 0.6, "tica-marginal")
    with pytest.raises(DatasetError, match="at least 2 frames"):
        tica_free_energy(np.zeros((1, 2)), 0.6, "tica-joint")
    with pytest.raises(InputError, match="too large"):
        tica_free_energy(np.random.default_rng(0).normal(size=(10, 5)), 0.6, "tica-joint", bins=1000)


def test_too_many_components_named(dataset, tica, tmp_path):
    with pytest.raises(InputError, match="loss.n_components"):
        compute_energy_targets(dataset, tica, "tica-marginal", n_components=9, cache_dir=tmp_path)


def test_component_rule_slow_all_first_n():
    lam = [0.95, 0.6, 0.2, 0.05, -0.1]
    assert SLOW_EIGENVALUE == pytest.approx(np.exp(-1))
    assert choose_components("tica-marginal", "slow", lam).k == 2      # 0.95 and 0.6 exceed 1/e
    assert choose_components("tica-marginal", None, lam).rule == "slow"
    assert choose_components("tica-joint", "slow", [0.99, 0.9, 0.8, 0.1]).k == 2
    assert choose_components("tica-marginal", "slow", [0.1, 0.05]).k == 1   # at least one component
    assert choose_components("tica-marginal", "all", lam).k == 5
    first = choose_components("tica-marginal", 3, lam)
    assert (first.rule, first.k, first.eigenvalues) == ("first-n", 3, (0.95, 0.6, 0.2))


def test_default_target_uses_slow_components_and_records_it(dataset, tica, tmp_path):
    slow = compute_energy_targets(dataset, tica, "tica-marginal", bins=40, cache_dir=tmp_path)
    n_slow = int(np.sum(np.asarray(tica.eigenvalues)[: tica.dim] > np.exp(-1)))
    assert slow.info["components"]["rule"] == "slow"
    assert slow.info["n_components"] == max(1, n_slow)
    full = compute_energy_targets(dataset, tica, "tica-marginal", n_components="all", bins=40, cache_dir=tmp_path)
    assert full.info["components"]["rule"] == "all" and full.info["n_components"] == tica.dim
    if n_slow < tica.dim:                          # fast components only widen the target
        assert np.std(slow.free_energy) < np.std(full.free_energy)
