"""PriorEnergy: documented forms, forces = −gradient, batching/dtypes, JSON round trip, topology."""

from __future__ import annotations

import json
import warnings

import mdtraj
import numpy as np
import pytest
import torch

from raycg.priors import PriorConfig, PriorSet, build_topology, fit_priors
from raycg.priors import geometry as G
from raycg.priors.geometry import numpy_features

from .helpers import make_dataset


def _random_chain(n_frames: int, n_beads: int, rng, bond: float = 3.8) -> np.ndarray:
    """Random-walk chains with bond ≈ 3.8 Å and self-avoidance-free random directions."""
    steps = rng.normal(size=(n_frames, n_beads - 1, 3))
    steps *= (bond + 0.1 * rng.normal(size=(n_frames, n_beads - 1, 1))) / np.linalg.norm(steps, axis=2, keepdims=True)
    return np.concatenate([np.zeros((n_frames, 1, 3)), np.cumsum(steps, axis=1)], axis=1)


@pytest.fixture(scope="module")
def ten_bead():
    """Priors fitted to a 10-bead random-walk chain (all term kinds present), and the dataset."""
    rng = np.random.default_rng(0)
    x = _random_chain(20_000, 10, rng)
    ds = make_dataset(x, [(i, i + 1) for i in range(9)], 300.0)
    with warnings.catch_warnings():   # random-walk angles are flat after the sin θ correction: moments fallback
        warnings.simplefilter("ignore", UserWarning)
        return fit_priors(ds, PriorConfig(bins=60)), ds


def test_topology_of_a_chain_and_a_branch():
    topo = build_topology(np.array([[i, i + 1] for i in range(9)]), 10)
    assert len(topo.bonds) == 9 and len(topo.angles) == 8 and len(topo.dihedrals) == 7
    assert len(topo.pairs) == 45 - 9 - 8          # 1-2 and 1-3 excluded by default
    assert topo.angles[0].tolist() == [0, 1, 2] and topo.dihedrals[-1].tolist() == [6, 7, 8, 9]
    assert len(build_topology(topo.bonds, 10, repulsion_min_bond_separation=4).pairs) == 45 - 9 - 8 - 7
    # branched: 0-1, 1-2, 1-3, 3-4 and a separate bead 5 (disconnected pairs are non-bonded)
    t = build_topology(np.array([[1, 0], [1, 2], [1, 3], [3, 4]]), 6)
    assert t.angles.tolist() == [[0, 1, 2], [0, 1, 3], [1, 3, 4], [2, 1, 3]]
    assert t.dihedrals.tolist() == [[0, 1, 3, 4], [2, 1, 3, 4]]
    assert t.separation[0, 4] == 3 and t.separation[0, 5] == -1
    assert [0, 5] in t.pairs.tolist() and [0, 2] not in t.pairs.tolist() and [0, 4] in t.pairs.tolist()


def np_distances(x, idx):
    return numpy_features(G.distances, x, idx, 2)


def np_angles(x, idx):
    return numpy_features(G.angles, x, idx, 3)


def np_dihedrals(x, idx):
    return numpy_features(G.dihedrals, x, idx, 4)


def test_geometry_matches_mdtraj_in_both_precisions():
    """The one torch implementation, on numpy data by conversion, against mdtraj (float32 there)."""
    rng = np.random.default_rng(1)
    x = _random_chain(50, 6, rng)
    ds = make_dataset(x, [(i, i + 1) for i in range(5)])
    traj = ds.to_mdtraj()
    ang = np.array([[0, 1, 2], [2, 3, 4]])
    dih = np.array([[0, 1, 2, 3], [1, 2, 3, 4], [2, 3, 4, 5]])
    pairs = np.array([[0, 3], [1, 5]])
    for xx in (x, x.astype(np.float32)):
        assert np_angles(xx, ang).dtype == xx.dtype and np_angles(xx, ang).shape == (50, 2)
        np.testing.assert_allclose(np_angles(xx, ang), mdtraj.compute_angles(traj, ang), atol=1e-5)
        np.testing.assert_allclose(np_dihedrals(xx, dih), mdtraj.compute_dihedrals(traj, dih),
                                   atol=1e-5)
        np.testing.assert_allclose(np_distances(xx, pairs),
                                   10 * mdtraj.compute_distances(traj, pairs), atol=1e-4)
    # cos θ and chirality agree with their definitions
    u, v = x[:, 0] - x[:, 1], x[:, 2] - x[:, 1]
    cos = np.sum(u * v, -1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    got = numpy_features(G.cos_angles, x, [[0, 1, 2]], 3)[:, 0]
    np.testing.assert_allclose(got, cos, rtol=1e-12)
    w = x[:, 3] - x[:, 1]
    chi = np.sum(u * np.cross(v, w), -1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1)
                                            * np.linalg.norm(w, axis=-1))
    got = numpy_features(G.chirality, x, [[0, 1, 2, 3]], 4)[:, 0]
    np.testing.assert_allclose(got, chi, atol=1e-12)


def test_energy_is_the_documented_form(ten_bead):
    """The module evaluates ½k(r−r0)², ½k(θ−θ0)², Σ c cos nφ + s sin nφ and (σ/r)⁶ per term."""
    ps, ds = ten_bead
    x = np.asarray(ds.coords[:64], dtype=np.float64)
    t = ps.terms
    ref = {
        "bonds": 0.5 * t["bonds"].params["k"] * (np_distances(x, t["bonds"].atoms) - t["bonds"].params["x0"]) ** 2,
        "angles": 0.5 * t["angles"].params["k"] * (np_angles(x, t["angles"].atoms) - t["angles"].params["x0"]) ** 2,
        "repulsion": (t["repulsion"].params["sigma"] / np_distances(x, t["repulsion"].atoms)) ** 6,
    }
    phi = np_dihedrals(x, t["dihedrals"].atoms)
    n = np.arange(1, 4)
    ref["dihedrals"] = (t["dihedrals"].params["cos"] * np.cos(phi[..., None] * n)
                        + t["dihedrals"].params["sin"] * np.sin(phi[..., None] * n)).sum(-1)
    mod = ps.to_module()
    with torch.no_grad():
        got = mod.energy_terms(torch.as_tensor(x))
        total = mod(torch.as_tensor(x))
    assert set(got) == set(ref) == {"bonds", "angles", "dihedrals", "repulsion"}
    assert got["repulsion"].shape == (64, 28)
    for kind in ref:
        np.testing.assert_allclose(got[kind].numpy(), ref[kind], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(total.numpy(), sum(r.sum(-1) for r in ref.values()), rtol=1e-10)
    np.testing.assert_allclose(ps.energy(x), total.numpy(), rtol=1e-12)


def test_forces_equal_minus_finite_difference_gradient(ten_bead):
    ps, ds = ten_bead
    mod = ps.to_module()
    rng = np.random.default_rng(2)
    pos = torch.as_tensor(np.asarray(ds.coords[:3], dtype=np.float64) + 0.05 * rng.normal(size=(3, 10, 3)))
    e, f = mod.energy_and_forces(pos)
    assert f.shape == (3, 10, 3) and f.dtype == torch.float64
    h = 1e-5
    eye = torch.eye(30, dtype=torch.float64).reshape(30, 1, 10, 3) * h      # one displacement per coordinate
    with torch.no_grad():
        plus = mod((pos.unsqueeze(0) + eye).reshape(-1, 10, 3)).reshape(30, 3)
        minus = mod((pos.unsqueeze(0) - eye).reshape(-1, 10, 3)).reshape(30, 3)
    fd = (-(plus - minus) / (2 * h)).T.reshape(3, 10, 3)
    assert float(f.abs().max()) > 1.0      # non-trivial forces
    torch.testing.assert_close(f, fd, rtol=1e-6, atol=1e-6)
    # translation invariance: total force sums to zero
    torch.testing.assert_close(f.sum(1), torch.zeros(3, 3, dtype=torch.float64), atol=1e-9, rtol=0)


def test_batching_dtype_and_single_frame(ten_bead):
    ps, ds = ten_bead
    mod = ps.to_module()
    x64 = torch.as_tensor(np.asarray(ds.coords[:5], dtype=np.float64))
    e64 = mod(x64)
    e32 = mod(x64.float())
    assert e64.dtype == torch.float64 and e32.dtype == torch.float32 and e64.shape == (5,)
    torch.testing.assert_close(e32.double(), e64, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(mod(x64[2]), e64[2:3])
    # one replica's energy does not depend on the others in the batch
    torch.testing.assert_close(mod(x64[[4, 2]]), e64[[4, 2]])
    assert not any(p.requires_grad for p in mod.parameters())
    names = {n for n, _ in mod.named_buffers()}
    assert {"terms.bonds.idx", "terms.bonds.k", "terms.repulsion.sigma2",
            "terms.dihedrals.cos"} <= names


def test_save_load_round_trip_identical_energies(ten_bead, tmp_path):
    ps, ds = ten_bead
    path = ps.save(tmp_path / "priors.json")
    back = PriorSet.load(path)
    x = torch.as_tensor(np.asarray(ds.coords[:32], dtype=np.float64))
    with torch.no_grad():
        a, b = ps.to_module(), back.to_module()
        assert torch.equal(a(x), b(x))
        for kind, v in a.energy_terms(x).items():
            assert torch.equal(v, b.energy_terms(x)[kind])
    assert back.config == ps.config and back.temperature_K == ps.temperature_K
    assert [f.params for f in back.fits["bonds"]] == [f.params for f in ps.fits["bonds"]]
    assert back.fits["angles"][0].histogram == ps.fits["angles"][0].histogram
    d = json.loads(path.read_text())
    assert d["format"] == "raycg-priors" and d["format_version"] == 1
    assert set(d["fits"]["bonds"][0]) >= {"params", "rms_kcal", "range", "n_samples", "histogram", "members"}
    assert back.to_json() == ps.to_json()     # stable re-serialisation
