"""The term library: each class's forces, energies and schema; a new term is one class."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raycg.errors import InputError
from raycg.model import EnergyModel
from raycg.priors import PriorConfig, PriorEnergy, PriorSet, fit_priors
from raycg.priors.geometry import coordinate_major
from raycg.priors.terms import TERMS, HarmonicBond, register_term, term_class
from raycg.sim import SimulationConfig, simulate

from .helpers import make_dataset, sample_bond

T = 350.0


def _example(cls, rng) -> tuple[PriorEnergy, torch.Tensor]:
    """A module of 3 random terms of ``cls`` on 6 beads and positions near a zig-zag chain."""
    atoms = np.array([rng.permutation(6)[: cls.arity] for _ in range(3)])
    n = len(atoms)
    u = rng.uniform
    params = {"k": u(5, 20, n), "x0": u(0.2, 0.8, n), "sigma": u(2, 4, n),
              "cos": rng.normal(size=(n, 3)), "sin": rng.normal(size=(n, 3)),
              "k1": u(0, 2, n), "k3": u(0, 1, n), "phi0": u(-3, 3, n),
              "phi1": u(-3, 3, n), "c12": u(0, 2, n), "c10": u(0, 2, n), "shift": u(0, 1, n),
              "truncate": rng.random(n) < 0.5}
    term = cls.from_params(atoms, params)
    chain = np.stack([np.arange(6) * 3.0, np.tile([0.0, 2.0], 3), np.zeros(6)], 1)
    pos = torch.as_tensor(chain[None] + 0.4 * rng.normal(size=(4, 6, 3)))
    return PriorEnergy(6, [term]), pos


@pytest.mark.parametrize("kind", sorted(TERMS))
def test_every_term_energy_forces_and_schema(kind):
    rng = np.random.default_rng(sorted(TERMS).index(kind))
    cls = term_class(kind)
    mod, pos = _example(cls, rng)
    term = mod.terms[kind]
    e, f = mod.energy_and_forces(pos)
    p = pos.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(mod(p).sum(), p)
    assert float(g.abs().max()) > 1e-3                       # the example has real forces
    torch.testing.assert_close(f, -g, rtol=1e-9, atol=1e-9)  # analytic (if any) = autograd
    torch.testing.assert_close(mod.energy_terms(pos)[kind].sum(1), e, rtol=1e-12, atol=1e-12)
    # the schema's parameters rebuild the same module; so do its buffers (exactly)
    again = cls.from_params(term.idx.T.numpy(), cls.params_from_buffers(term.state_dict()))
    torch.testing.assert_close(again.energy(coordinate_major(pos)), e, rtol=1e-12, atol=1e-12)
    back = PriorEnergy.from_state_dict(6, mod.state_dict())
    assert torch.equal(back(pos), mod(pos)) and set(back.terms) == {kind}
    assert cls.kind == kind and cls.energy_form and term.idx.shape == (cls.arity, 3)


def test_unknown_kind_is_one_clear_error():
    with pytest.raises(InputError, match="unknown term kind 'nope'"):
        term_class("nope")
    with pytest.raises(InputError, match="unknown term kind"):
        fit_priors(make_dataset(np.zeros((60, 2, 3)) + np.arange(2)[:, None], [(0, 1)]),
                   PriorConfig(extra_terms=["nope"]))
    with pytest.raises(ValueError, match="built in"):
        PriorConfig(extra_terms=["bonds"])


class EndToEnd(HarmonicBond):
    """A harmonic restraint on the distance between the first and the last bead: the whole new
    term (features, energy, analytic forces, fit with the r² Jacobian and schema are inherited)."""

    kind = "end_to_end"
    noun = "end-to-end distance"

    @classmethod
    def select(cls, topology, config) -> np.ndarray:
        return np.array([[0, topology.n_beads - 1]])


@pytest.fixture
def end_to_end():
    register_term(EndToEnd)
    yield EndToEnd
    TERMS.pop(EndToEnd.kind, None)


def test_a_new_term_fits_saves_loads_and_simulates(end_to_end, tmp_path):
    """Distances sampled from ½·40 (r − 4)² in 3-D: the new term alone recovers k and r0, its file
    round-trips, and a prior-only simulation keeps the distance near r0."""
    rng = np.random.default_rng(11)
    n = 100_000
    r = sample_bond(40.0, 4.0, T, n, rng)
    u = rng.normal(size=(n, 3))
    x = np.stack([np.zeros((n, 3)), r[:, None] * u / np.linalg.norm(u, axis=1, keepdims=True)], 1)
    cfg = PriorConfig(bonds=False, angles=False, dihedrals=False, repulsion=False,
                      extra_terms=["end_to_end"])
    ps = fit_priors(make_dataset(x, [(0, 1)], T), cfg)
    assert list(ps.terms) == ["end_to_end"] and ps.terms["end_to_end"].atoms.tolist() == [[0, 1]]
    (fit,) = ps.fits["end_to_end"]
    assert fit.method == "harmonic-lsq" and fit.label == "ALA1-ALA2"
    assert fit.params["k"] == pytest.approx(40.0, rel=0.05)
    assert fit.params["x0"] == pytest.approx(4.0, abs=0.01)
    back = PriorSet.load(ps.save(tmp_path / "priors.json"))
    assert back.to_json() == ps.to_json()
    pos = torch.as_tensor(x[:16])
    assert torch.equal(back.to_module()(pos), ps.to_module()(pos))
    lines = back.summary_lines()
    assert lines[1].startswith("end_to_end: 1 terms") and "k=" in lines[2]
    run = SimulationConfig(n_steps=2000, save_every=20, dt_ps=0.005, temperature_K=T, seed=0,
                           dtype="float64", compile=False)
    model = EnergyModel(np.zeros(2, np.int64), prior=back.to_module())
    res = simulate(model, np.full(2, 12.0), x[:8], run, progress=False)
    d = np.linalg.norm(np.diff(res.positions[:, 10:], axis=2)[:, :, 0], axis=-1)
    assert res.alive.all() and abs(float(d.mean()) - 4.0) < 0.1 and float(d.std()) < 0.3
    TERMS.pop("end_to_end")                          # a file of an unknown kind is refused
    with pytest.raises(InputError, match="unknown term kind 'end_to_end'"):
        PriorSet.load(tmp_path / "priors.json")
    register_term(EndToEnd)


def test_fitted_prior_forces_match_the_documented_sum_of_terms():
    """PriorEnergy is the sum of its term modules, in the fit's order."""
    rng = np.random.default_rng(3)
    steps = rng.normal(size=(3000, 4, 3))
    steps *= 3.8 / np.linalg.norm(steps, axis=2, keepdims=True)
    x = np.concatenate([np.zeros((3000, 1, 3)), np.cumsum(steps, axis=1)], axis=1)
    with pytest.warns(UserWarning):
        ps = fit_priors(make_dataset(x, [(i, i + 1) for i in range(4)], T), PriorConfig(bins=40))
    mod = ps.to_module()
    assert list(mod.terms) == ["bonds", "angles", "dihedrals", "repulsion"] and not mod.analytic
    pos = torch.as_tensor(x[:5])
    P = coordinate_major(pos)
    total = sum(t.energy(P) for t in mod.terms.values())
    torch.testing.assert_close(mod(pos), total, rtol=1e-14, atol=1e-12)
