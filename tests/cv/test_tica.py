import json

import numpy as np
import pytest
import torch

from raycg._testing.datasets import make_dataset, two_state_dataset
from raycg.cv import ReferenceTICA, fit_reference_tica, pair_distances
from raycg.errors import DatasetError, InputError


@pytest.fixture(scope="module")
def two_state():
    ds, states = two_state_dataset(n_traj=8, length=1500, p_switch=0.005, seed=1)
    return ds, states, fit_reference_tica(ds, lag=20)


def test_two_states_are_apart_on_tic1(two_state):
    ds, states, tica = two_state
    y = tica.transform(ds.coords, 2)
    a, b = y[states == 0, 0], y[states == 1, 0]
    gap = abs(a.mean() - b.mean())
    assert gap > 10 * max(a.std(), b.std())
    # the states are separable by one threshold on TIC 1
    lo, hi = (a, b) if a.mean() < b.mean() else (b, a)
    assert lo.max() < hi.min()
    # TIC 2 does not separate them
    assert abs(y[states == 0, 1].mean() - y[states == 1, 1].mean()) < 0.2 * gap


def test_implied_timescales_positive_ordered_and_near_truth(two_state):
    _, _, tica = two_state
    ts = tica.timescales_ps
    assert np.all(ts > 0) and np.all(np.diff(ts) <= 1e-9)
    truth = -1.0 / np.log(1 - 2 * 0.005)  # two-state chain, dt = 1 ps
    assert 0.7 * truth < ts[0] < 1.3 * truth
    assert ts[1] < 0.3 * ts[0]


def test_matches_deeptime_list_fit_and_never_crosses_boundaries():
    from deeptime.decomposition import TICA

    # many short trajectories: boundary pairs would be a large fraction of all pairs
    ds, _ = two_state_dataset(n_traj=40, length=45, p_switch=0.05, seed=3)
    lag = 10
    ours = fit_reference_tica(ds, lag=lag, chunk_rows=97)
    trajs = [pair_distances(ds.coords[ds.trajectory_slice(t)]).astype(np.float64) for t in range(40)]
    ref = TICA(lagtime=lag).fit(trajs).fetch_model()
    np.testing.assert_allclose(ours.eigenvalues, ref.singular_values, rtol=1e-6, atol=1e-9)
    concat = TICA(lagtime=lag).fit(np.concatenate(trajs)).fetch_model()
    assert not np.allclose(ours.eigenvalues[:3], concat.singular_values[:3], rtol=1e-3)
    assert ours.n_pairs == 40 * (45 - lag)
    # blocks of whole trajectories and chunked long trajectories give the same covariances
    mixed = make_dataset(ds.coords[:500], [45, 45, 300, 20, 45, 45])
    small_chunks = fit_reference_tica(mixed, lag=lag, chunk_rows=64)
    one_chunk = fit_reference_tica(mixed, lag=lag, chunk_rows=10_000)
    np.testing.assert_allclose(small_chunks.eigenvalues, one_chunk.eigenvalues, rtol=1e-9, atol=1e-12)
    assert small_chunks.n_pairs == one_chunk.n_pairs == 4 * 35 + 290 + 10


def test_short_trajectories_are_skipped_and_counted():
    ds, _ = two_state_dataset(n_traj=3, length=200, seed=4)
    coords = np.concatenate([ds.coords, ds.coords[:15]])
    short = make_dataset(coords, [200, 200, 200, 10, 5])
    tica = fit_reference_tica(short, lag=20)
    assert tica.n_trajectories_skipped == 2 and tica.n_trajectories_used == 3
    with pytest.raises(DatasetError, match="no trajectory is longer than the TICA lag"):
        fit_reference_tica(make_dataset(coords[:15], [10, 5]), lag=20)


def test_weights_zero_on_a_trajectory_equals_dropping_it():
    ds, _ = two_state_dataset(n_traj=4, length=300, p_switch=0.02, seed=5)
    w = np.ones(ds.n_frames)
    w[ds.trajectory_slice(2)] = 0.0
    weighted = fit_reference_tica(ds, lag=5, weights=w)
    dropped = fit_reference_tica(ds.subset([0, 1, 3]), lag=5)
    np.testing.assert_allclose(weighted.eigenvalues, dropped.eigenvalues, rtol=1e-6, atol=1e-9)
    uniform = fit_reference_tica(ds, lag=5, weights=np.full(ds.n_frames, 3.0))
    plain = fit_reference_tica(ds, lag=5, weights=None)
    np.testing.assert_allclose(uniform.eigenvalues, plain.eigenvalues, rtol=1e-6, atol=1e-9)
    assert not np.allclose(weighted.eigenvalues[:3], plain.eigenvalues[:3], rtol=1e-4)
    with pytest.raises(InputError, match="one value per frame"):
        fit_reference_tica(ds, lag=5, weights=np.ones(3))


def test_save_load_roundtrip_rebuilds_deeptime_model(two_state, tmp_path):
    ds, _, tica = two_state
    path = tica.save(tmp_path / "tica.npz")
    assert path.is_file() and (tmp_path / "tica.json").is_file()
    header = json.loads((tmp_path / "tica.json").read_text())
    assert header["format_version"] == 1 and header["lag_frames"] == 20 and header["n_beads"] == 10
    with np.load(path, allow_pickle=False) as z:  # no pickle anywhere
        assert "coefficients" in z.files
    back = ReferenceTICA.load(path)
    x = ds.coords[:300]
    np.testing.assert_allclose(back.transform(x), tica.transform(x), rtol=1e-12, atol=1e-12)
    model = back.deeptime_model
    assert type(model).__name__ == "CovarianceKoopmanModel"
    np.testing.assert_allclose(model.transform(pair_distances(x).astype(np.float64))[:, :back.dim],
                               tica.transform(x), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(back.timescales_ps, tica.timescales_ps, rtol=1e-12)
    assert (back.lag, back.dim, back.n_beads, back.feature_kind, back.dataset_hash) == (
        20, tica.dim, 10, "pair_distances", ds.content_hash)


def test_transform_torch_same_numbers_and_gradients(two_state):
    ds, _, tica = two_state
    x = ds.coords[:64]
    pos = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    y = tica.transform_torch(pos, 2)
    # numpy features are float32 (Å), so agreement is to float32 precision
    np.testing.assert_allclose(y.detach().numpy(), tica.transform(x, 2), rtol=0, atol=2e-5)
    y[:, 0].sum().backward()
    assert torch.isfinite(pos.grad).all() and pos.grad.abs().sum() > 0
    y32 = tica.transform_torch(torch.tensor(x), 2)
    assert y32.dtype == torch.float32
    np.testing.assert_allclose(y32.numpy(), tica.transform(x, 2), atol=1e-3)


def test_check_compatible(two_state, tmp_path):
    ds, _, tica = two_state
    tica.check_compatible(ds)
    tica.check_compatible(10)
    other, _ = two_state_dataset(n_traj=2, length=100, seed=99)
    with pytest.raises(DatasetError, match="another dataset"):
        ReferenceTICA.load(tica.save(tmp_path / "t.npz")).check_compatible(other)
    with pytest.raises(DatasetError, match="12 beads"):
        tica.check_compatible(12)
    with pytest.raises(DatasetError, match="beads"):
        tica.transform(np.zeros((3, 12, 3), np.float32))


def test_bad_files_and_arguments(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ReferenceTICA.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not an npz")
    with pytest.raises(InputError, match="not a readable TICA file"):
        ReferenceTICA.load(tmp_path / "junk.npz")
    ds, _ = two_state_dataset(n_traj=2, length=100)
    with pytest.raises(InputError, match="lag"):
        fit_reference_tica(ds, lag=0)
    frozen = make_dataset(np.repeat(ds.coords[:1], 100, axis=0), [100])
    with pytest.raises(DatasetError, match="constant"):
        fit_reference_tica(frozen, lag=5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_transform_torch_on_cuda_matches_cpu(two_state):
    ds, _, tica = two_state
    x = torch.tensor(ds.coords[:256], dtype=torch.float64)
    np.testing.assert_allclose(tica.transform_torch(x.cuda(), 2).cpu().numpy(),
                               tica.transform_torch(x, 2).numpy(), rtol=1e-10, atol=1e-10)
