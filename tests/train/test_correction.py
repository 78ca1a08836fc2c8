"""The fes-corrected target: U₀ + F_ref − F₀ on one grid, floors, offset, stopping rule, config, trainer."""

from __future__ import annotations

import numpy as np
import pytest

from raycg.config import validate_config
from raycg.errors import ConfigError, InputError
from raycg.train import (
    CorrectionInputs,
    TrainConfig,
    continue_correction,
    corrected_targets,
    fes_correction,
    marginal_js_divergence,
)
from raycg.train.targets import choose_components, compute_energy_targets
from raycg.units import kbt

KT = kbt(300.0)


def sample_1d(free_energy, n, rng, lo=-3.0, hi=3.0):
    """n samples of p(s) ∝ exp(−F(s)/kT) on [lo, hi] by inverse-CDF on a fine grid."""
    s = np.linspace(lo, hi, 20001)
    p = np.exp(-(free_energy(s) - free_energy(s).min()) / KT)
    cdf = np.cumsum(p)
    cdf /= cdf[-1]
    return np.interp(rng.random(n), cdf, s)


def f0(s):
    return 0.5 * s**2                           # base marginal (kcal/mol)


def g(s):
    return 0.4 * np.sin(1.5 * s) + 0.2 * s      # what the reference adds to it


def test_equal_marginals_give_the_base_energy():
    rng = np.random.default_rng(0)
    y = sample_1d(f0, 50_000, rng)[:, None]
    e0 = rng.normal(3.0, 1.0, len(y))
    out = corrected_targets(e0, y, y.copy(), KT, bins=40, smooth_bins=1.0)
    np.testing.assert_allclose(out.free_energy, e0, atol=1e-9)       # same samples: F_ref − F₀ is a constant
    assert out.info["mode"] == "fes-corrected" and out.info["n_floored_base"] == 0
    # independent samples of the same marginal: the target differs from U₀ by sampling noise only
    y_base = sample_1d(f0, 200_000, rng)[:, None]
    out = corrected_targets(e0, y, y_base, KT, bins=40, smooth_bins=1.0)
    core = np.abs(y[:, 0]) < 1.5
    assert np.max(np.abs(out.free_energy - e0)[core]) < 0.05


@pytest.mark.parametrize("smooth", [0.0, 1.0])
def test_known_shift_is_recovered_in_1d(smooth):
    rng = np.random.default_rng(1)
    y_ref = sample_1d(lambda s: f0(s) + g(s), 200_000, rng)[:, None]
    y_base = sample_1d(f0, 200_000, rng)[:, None]
    e0 = f0(y_ref[:, 0]) + rng.normal(0.0, 0.3, len(y_ref))           # any U₀ with that marginal
    out = corrected_targets(e0, y_ref, y_base, KT, bins=50, smooth_bins=smooth)
    core = np.abs(y_ref[:, 0]) < 1.5
    resid = (out.free_energy - e0 - g(y_ref[:, 0]))[core]
    assert np.std(resid) < 0.03, np.std(resid)
    assert abs(np.mean(out.free_energy) - np.mean(e0)) < 1e-9          # offset: mean target = mean U₀


def test_known_shift_is_recovered_in_2d():
    rng = np.random.default_rng(2)
    n = 400_000
    # independent axes: base N(0,1)², reference with g(s1) + 0.3 s2 added (tilts the second axis)
    a = sample_1d(f0, n, rng)
    b = sample_1d(f0, n, rng)
    ra = sample_1d(lambda s: f0(s) + g(s), n, rng)
    rb = sample_1d(lambda s: f0(s) + 0.3 * s, n, rng)
    y_base, y_ref = np.stack([a, b], 1), np.stack([ra, rb], 1)
    e0 = np.zeros(n)
    out = corrected_targets(e0, y_ref, y_base, KT, bins=30, smooth_bins=1.0)
    core = np.all(np.abs(y_ref) < 1.3, axis=1)
    want = g(y_ref[:, 0]) + 0.3 * y_ref[:, 1]
    resid = (out.free_energy - want)[core]
    assert np.std(resid) < 0.06, np.std(resid)
    assert out.info["n_components"] == 2


def test_empty_base_bins_are_floored_not_infinite():
    rng = np.random.default_rng(3)
    y_ref = rng.uniform(-2.0, 2.0, (5000, 1))
    y_base = rng.uniform(-2.0, 0.0, (5000, 1))           # never visits s > 0
    w = rng.uniform(0.5, 1.5, len(y_ref))
    e0 = np.zeros(len(y_ref))
    grid = dict(bins=20, range=[(-2.0, 2.0)], smooth_bins=0.0)
    out = corrected_targets(e0, y_ref, y_base, KT, weights=w, **grid)
    assert np.all(np.isfinite(out.free_energy))
    assert out.info["n_floored_base"] == int(np.sum(y_ref[:, 0] >= 0.0)) > 0
    assert np.sum(w * out.free_energy) == pytest.approx(np.sum(w * e0), abs=1e-6)   # weighted offset
    # the unvisited region is pulled down (toward the reference) by the floored F₀
    right = y_ref[:, 0] > 0.3
    left = y_ref[:, 0] < -0.3
    assert out.free_energy[right].max() < out.free_energy[left].min()
    # the floor is half a (lightest) sample per bin
    corr = fes_correction(y_ref, y_base, KT, **grid)
    vol = 4.0 / 20
    assert out.info["floor_energy_base_kcal"] == pytest.approx(-KT * np.log(0.5 / (5000 * vol)))
    assert corr.base_floored.sum() == 10 and np.all(np.isfinite(corr.f_base))
    # base samples outside the grid are counted, and NaN/shape errors are clear
    out2 = corrected_targets(e0, y_ref, np.concatenate([y_base, [[9.0]]]), KT, **grid)
    assert out2.info["n_base_outside"] == 1
    with pytest.raises(InputError, match="base_energy has 3 values"):
        corrected_targets(np.zeros(3), y_ref, y_base, KT)
    with pytest.raises(InputError, match="1 or 2 TICA components"):
        corrected_targets(e0, np.zeros((len(y_ref), 3)), np.zeros((4, 3)), KT)


def test_js_divergence_and_stopping_rule():
    rng = np.random.default_rng(4)
    y = rng.normal(size=(20_000, 1))
    assert marginal_js_divergence(y, y) == pytest.approx(0.0, abs=1e-12)
    far = marginal_js_divergence(y + 100.0, y)
    assert far == pytest.approx(np.log(2.0), rel=1e-9)                  # all model samples outside the grid
    assert 0.0 < marginal_js_divergence(y + 0.5, y) < far
    assert continue_correction([], max_iterations=3, tolerance=0.01)[0]
    assert continue_correction([0.1], max_iterations=3, tolerance=0.01)[0]
    stop, why = continue_correction([0.1, 0.05, 0.005], max_iterations=5, tolerance=0.01)
    assert not stop and "< correction_tolerance" in why
    stop, why = continue_correction([0.1, 0.12], max_iterations=5, tolerance=0.01)
    assert not stop and "stopped decreasing" in why
    stop, why = continue_correction([0.1, 0.05], max_iterations=2, tolerance=0.01)
    assert not stop and "reached correction_iterations" in why


@pytest.mark.parametrize("loss, pattern", [
    ({"energy_target": "fes-corrected", "energy_weight": 1.0, "density": "kde"}, "density='kde'"),
    ({"energy_target": "fes-corrected", "energy_weight": 1.0, "n_components": 3}, "n_components=3"),
    ({"energy_target": "fes-corrected", "energy_weight": 1.0, "n_components": "all"}, "n_components='all'"),
    ({"energy_target": "tica-marginal", "energy_weight": 1.0, "correction_iterations": 2}, "correction_iterations=2"),
    ({"energy_target": "fes-corrected", "energy_weight": 1.0, "base_model": "md"}, "loss.base_model"),
    ({"energy_target": "fes-corrected", "energy_weight": 1.0, "smooth_bins": -1}, "loss.smooth_bins"),
])
def test_fes_corrected_config_errors_name_the_field(loss, pattern):
    with pytest.raises(ConfigError) as err:
        validate_config(TrainConfig, {"loss": loss, "tica": {"lag": 2}})
    assert pattern in str(err.value), str(err.value)


def test_fes_corrected_config_defaults():
    c = validate_config(TrainConfig, {"loss": {"energy_target": "fes-corrected", "energy_weight": 1.0},
                                      "tica": {"lag": 2}})
    assert (c.loss.base_model, c.loss.smooth_bins, c.loss.correction_iterations) == ("priors", 1.0, 1)
    with pytest.raises(ConfigError, match="needs TICA settings"):
        validate_config(TrainConfig, {"loss": {"energy_target": "fes-corrected", "energy_weight": 1.0}})
    assert choose_components("fes-corrected", "slow", [0.99, 0.98, 0.97]).k == 2
    with pytest.raises(InputError, match="1 or 2"):
        choose_components("fes-corrected", 3, [0.99, 0.98, 0.97])


def test_compute_energy_targets_fes_corrected(dataset, tica, tmp_path):
    with pytest.raises(InputError, match="CorrectionInputs"):
        compute_energy_targets(dataset, tica, "fes-corrected", cache_dir=tmp_path)
    k = choose_components("fes-corrected", "slow", np.asarray(tica.eigenvalues)[: tica.dim]).k
    y = tica.transform(dataset.coords, n_components=k)
    e0 = np.linspace(0.0, 1.0, dataset.n_frames)
    # base samples = the reference frames: the target is U₀ itself
    inputs = CorrectionInputs(y_base=y, base_energy=e0, base_model="force-matched")
    out = compute_energy_targets(dataset, tica, "fes-corrected", bins=20, cache_dir=tmp_path, correction=inputs)
    np.testing.assert_allclose(out.free_energy, e0, atol=1e-6)
    assert out.info["base_model"] == "force-matched" and not out.info["cached"]
    again = compute_energy_targets(dataset, tica, "fes-corrected", bins=20, cache_dir=tmp_path, correction=inputs)
    assert again.info["cached"] and np.array_equal(again.free_energy, out.free_energy)
    other = CorrectionInputs(y_base=y[::2], base_energy=e0, base_model="force-matched")
    assert not compute_energy_targets(dataset, tica, "fes-corrected", bins=20, cache_dir=tmp_path,
                                      correction=other).info["cached"]
    with pytest.raises(InputError, match="base_energy"):
        CorrectionInputs(y_base=y, base_model="force-matched")


def test_training_on_the_fes_corrected_target(dataset, priors, tica, tmp_path):
    """Base model = the priors: the network's target is F_ref − F₀ (+ c) at every frame."""
    from raycg.train import train

    c = validate_config(TrainConfig, dict(
        seed=0, epochs=2, batch_size=64, val_fraction=0.2, progress=False, early_stopping_patience=None,
        model=dict(num_types=8, hidden_channels=16, num_filters=16, num_interactions=1, num_rbf=8, cutoff_upper=12.0),
        loss=dict(energy_weight=1.0, energy_target="fes-corrected", bins=20), tica=dict(lag=5)))
    with pytest.raises(InputError, match="CorrectionInputs"):
        train(c, dataset, priors, tica, tmp_path / "none", cache_dir=tmp_path / "cache")
    k = choose_components("fes-corrected", "slow", np.asarray(tica.eigenvalues)[: tica.dim]).k
    y = tica.transform(dataset.coords, n_components=k)
    rng = np.random.default_rng(0)
    y_base = y[rng.permutation(len(y))[: len(y) // 2]] + 0.2 * np.std(y, 0)   # a shifted base marginal
    res = train(c, dataset, priors, tica, tmp_path / "run", cache_dir=tmp_path / "cache",
                correction=CorrectionInputs(y_base=y_base))
    assert res.target_info["mode"] == "fes-corrected" and res.target_info["base_model"] == "priors"
    assert all(np.isfinite(h["train_energy_loss"]) for h in res.history)
    # what the network is fitted to: target − E_prior = F_ref − F₀ + c, without any prior term
    import torch

    from raycg.train.trainer import prepare_data

    data = prepare_data(c, dataset, priors, tica, tmp_path / "prep", torch.device("cpu"), tmp_path / "cache",
                        CorrectionInputs(y_base=y_base))
    corr = fes_correction(y, y_base, kbt(dataset.temperature), bins=20, smooth_bins=c.loss.smooth_bins)
    want = corr.delta_at(y) + res.target_info["offset_kcal"]
    idx = dataset.frames_of(data.train_traj)
    np.testing.assert_allclose(data.t_tr.double().numpy(), want[idx], atol=2e-4)
    with pytest.raises(ConfigError, match="loss.base_model"):
        train(c, dataset, priors, tica, tmp_path / "fm", cache_dir=tmp_path / "cache",
              correction=CorrectionInputs(y_base=y_base, base_energy=np.zeros(dataset.n_frames),
                                          base_model="force-matched"))
