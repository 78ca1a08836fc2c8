import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from raycg._testing.datasets import hairpin
from raycg.cv import (
    feature_dim,
    featurize,
    featurize_torch,
    pair_distances,
    pair_distances_torch,
    pair_indices,
    pseudo_dihedrals,
)
from raycg.errors import InputError


def _coords(f=37, b=10, seed=0):
    return np.random.default_rng(seed).normal(0, 5, size=(f, b, 3)).astype(np.float32)


def test_pair_distances_match_pdist_order_and_dtype():
    x = _coords()
    d = pair_distances(x)
    assert d.dtype == np.float32 and d.shape == (37, 45)
    for f in (0, 17, 36):
        np.testing.assert_allclose(d[f], pdist(x[f].astype(np.float64)), rtol=1e-5)
    i, j = pair_indices(10)
    assert (i[0], j[0]) == (0, 1) and (i[9], j[9]) == (1, 2) and np.all(i < j)


def test_pair_distances_chunking_is_invisible():
    x = _coords(f=101)
    np.testing.assert_array_equal(pair_distances(x, chunk_frames=7), pair_distances(x))


def test_torch_features_equal_numpy_and_are_differentiable():
    x = _coords(f=5)
    pos = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    for kind in ("pair_distances", "pair_distances+pseudo_dihedrals"):
        t = featurize_torch(pos, kind)
        np.testing.assert_allclose(t.detach().numpy(), featurize(x, kind), rtol=1e-5, atol=1e-5)
        assert t.shape[-1] == feature_dim(kind, 10)
    pair_distances_torch(pos).sum().backward()
    assert torch.isfinite(pos.grad).all() and pos.grad.abs().sum() > 0


def test_pseudo_dihedrals_match_mdtraj_and_flip_under_mirror():
    import mdtraj

    from raycg._testing.datasets import make_meta
    from raycg.data.format import make_cg_topology

    x = hairpin()[None].astype(np.float32)
    meta = make_meta(10, 1, 1)
    top = make_cg_topology(meta.beads, np.array(meta.bonds))
    quads = np.array([[i, i + 1, i + 2, i + 3] for i in range(7)])
    phi = mdtraj.compute_dihedrals(mdtraj.Trajectory(x / 10, top), quads)[0]
    dih = pseudo_dihedrals(x)[0]
    np.testing.assert_allclose(dih[:7], np.cos(phi), atol=1e-5)
    np.testing.assert_allclose(dih[7:], np.sin(phi), atol=1e-5)
    mirror = pseudo_dihedrals(x * np.array([1, 1, -1], np.float32))[0]
    np.testing.assert_allclose(mirror[7:], -dih[7:], atol=1e-5)
    np.testing.assert_allclose(pair_distances(x * np.array([1, 1, -1], np.float32)), pair_distances(x), atol=1e-5)


def test_bad_shapes_and_kinds_are_one_line_errors():
    with pytest.raises(InputError, match="shape"):
        pair_distances(np.zeros((4, 10, 2)))
    with pytest.raises(InputError, match="unknown TICA feature kind"):
        featurize(_coords(), "contacts")
