"""Start-frame selection and Maxwell–Boltzmann velocities."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raycg import units as U
from raycg._testing.datasets import two_state_dataset
from raycg.errors import InputError
from raycg.sim import (
    internal_mass,
    kinetic_temperature,
    max_bond_from_data,
    maxwell_boltzmann,
    select_start_frames,
)


@pytest.fixture(scope="module")
def two_state():
    return two_state_dataset(n_traj=4, length=300, p_switch=0.01, noise_A=0.3, seed=1)


def test_kcenters_covers_both_states(two_state):
    ds, states = two_state
    frames = select_start_frames(ds, 6, method="kcenters", seed=0)
    assert len(frames) == 6 and len(set(frames.tolist())) == 6
    assert set(states.reshape(-1)[frames].tolist()) == {0, 1}
    np.testing.assert_array_equal(frames, select_start_frames(ds, 6, method="kcenters", seed=0))


def test_stratified_spreads_over_a_feature():
    coords = np.zeros((1000, 3, 3), np.float32)
    feat = np.concatenate([np.zeros(900), np.linspace(1, 10, 100)])  # 90% of frames sit at 0
    frames = select_start_frames(coords, 10, method="stratified", seed=1, features=feat)
    # random picks would mostly land at 0; stratified takes one per occupied bin of [0, 10]
    assert np.sum(feat[frames] == 0) <= 1 and len(set(frames.tolist())) == 10
    f2 = select_start_frames(coords, 9, method="stratified", seed=1, features=np.stack([feat, -feat], 1))
    assert len(f2) == 9
    with pytest.raises(InputError, match="'stratified' needs features"):
        select_start_frames(coords, 4, method="stratified")
    with pytest.raises(InputError, match="unknown start-frame method"):
        select_start_frames(coords, 4, method="best")
    with pytest.raises(InputError, match="features must be"):
        select_start_frames(coords, 4, method="stratified", features=np.zeros(5))


def test_more_replicas_than_frames_reuses_frames():
    coords = np.random.default_rng(0).normal(size=(3, 4, 3))
    for method in ("kcenters", "random"):
        frames = select_start_frames(coords, 7, method=method, seed=0)
        assert len(frames) == 7 and set(frames.tolist()) == {0, 1, 2}


def test_maxwell_boltzmann_statistics():
    masses = np.array([12.0, 50.0, 100.0])
    gen = torch.Generator().manual_seed(0)
    temps = np.array([200.0] * 20000 + [400.0] * 20000)
    v = maxwell_boltzmann(masses, temps, 40000, gen, dtype=torch.float64)
    m_int = internal_mass(torch.as_tensor(masses, dtype=torch.float64))
    for sel, temp in ((slice(0, 20000), 200.0), (slice(20000, 40000), 400.0)):
        var = v[sel].var(dim=(0, 2))  # per bead; relative s.e. sqrt(2/60000) = 0.6%
        np.testing.assert_allclose(var.numpy(), (U.KB_KCAL_PER_MOL_K * temp / m_int).numpy(), rtol=0.03)
        assert abs(kinetic_temperature(v[sel], m_int).mean().item() / temp - 1) < 0.01
    # 12 amu at 300 K: sqrt(k_B T * 418.4 / m) = 4.56 Å/ps per component
    v1 = maxwell_boltzmann([12.0], 300.0, 20000, torch.Generator().manual_seed(1), dtype=torch.float64)
    assert abs(v1.std().item() - np.sqrt(U.kbt(300.0) * 418.4 / 12.0)) < 0.05
    with pytest.raises(InputError, match="masses must be finite"):
        maxwell_boltzmann([0.0], 300.0, 1)


def test_bond_envelope_from_data(two_state):
    ds, _ = two_state
    d = np.linalg.norm(np.diff(np.asarray(ds.coords), axis=1), axis=-1).max()
    assert max_bond_from_data(ds, factor=1.5) == pytest.approx(1.5 * d, rel=1e-5)


def test_equilibrium_starts_follow_the_reference_distribution():
    """90% of frames in one state, 10% in another: equilibrium starts keep 90/10 (kcenters and
    stratified would split them about evenly), exactly in expectation, weights respected."""
    rng = np.random.default_rng(0)
    feat = np.concatenate([rng.normal(0.0, 0.3, 9000), rng.normal(5.0, 0.3, 1000)])
    coords = rng.normal(size=(10000, 4, 3))
    frames = select_start_frames(coords, 100, method="equilibrium", seed=3, features=feat)
    assert len(frames) == 100 and len(set(frames.tolist())) == 100
    assert (feat[frames] > 2.5).sum() == 10                     # proportional allocation: exactly n * p
    again = select_start_frames(coords, 100, method="equilibrium", seed=3, features=feat)
    assert np.array_equal(frames, again)
    strat = select_start_frames(coords, 100, method="stratified", seed=3, features=feat)
    assert (feat[strat] > 2.5).sum() > 30                       # uniform over cells: the minor state over-represented
    w = np.where(feat > 2.5, 9.0, 1.0)                           # reweighted to 50/50
    fw = select_start_frames(coords, 100, method="equilibrium", seed=3, features=feat, weights=w)
    assert (feat[fw] > 2.5).sum() == 50
    with pytest.raises(InputError, match="'equilibrium' needs features"):
        select_start_frames(coords, 4, method="equilibrium")
