"""Physics of the CLN025 Gō model: forces are −∇E, the native structure is a minimum, RMSD, transitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from raycg import units as U
from raycg.errors import InputError
from raycg.synth import GoPotential, build_go_system, count_transitions, kabsch_rmsd, native_pdb_path

T_K = 350.0


@pytest.fixture(scope="module")
def system():
    return build_go_system()


def _perturbed(system, n=4, scale=0.4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.as_tensor(system.native, dtype=torch.float64)[None].repeat(n, 1, 1)
    return x + scale * torch.randn(x.shape, generator=g, dtype=torch.float64)


def test_packaged_structure_and_beads(system):
    assert native_pdb_path().name == "cln025_allatom.pdb"
    assert system.n_beads == 19                                   # 10 Cα + 9 side chains (no Gly7)
    assert system.bead_names.count("CA") == 10 and system.bead_names.count("SC") == 9
    assert 6 not in [r for r, n in zip(system.bead_residues, system.bead_names) if n == "SC"]  # Gly7
    assert system.residue_names == ["TYR", "TYR", "ASP", "PRO", "GLU", "THR", "GLY", "THR", "TRP", "TYR"]
    ca_bonds = np.linalg.norm(np.diff(system.native[:10], axis=0), axis=1)
    assert np.all(np.abs(ca_bonds - 3.8) < 0.1)
    # masses: backbone (N, H, Cα, Hα, C, O) ≈ 56 amu (+ terminal H2/H3, OXT); Trp side chain
    # C9H8N ≈ 130 amu; Thr C2H5O ≈ 45; Tyr C7H7O ≈ 107
    m = system.masses
    assert np.all(np.abs(m[:9] - 56.5) < 2.5)
    assert m[9] == pytest.approx(72.0, abs=0.5)
    sc_mass = {system.residue_names[r]: m[b] for b, r in enumerate(system.bead_residues) if b >= 10}
    assert sc_mass["TRP"] == pytest.approx(130.2, abs=0.5)
    assert sc_mass["THR"] == pytest.approx(45.1, abs=0.5)
    assert sc_mass["TYR"] == pytest.approx(107.1, abs=0.5)
    assert 20 <= system.n_contacts <= 45
    # contacts are long-range in sequence
    res = np.asarray(system.bead_residues)
    cp = system.pairs[system.pair_is_contact]
    assert np.all(np.abs(res[cp[:, 0]] - res[cp[:, 1]]) >= 3)


@pytest.mark.parametrize("contacts", ["attractive", "repulsive"])
def test_forces_are_minus_finite_difference_gradient(system, contacts):
    pot = GoPotential(system, contacts=contacts).double()
    x = _perturbed(system, n=3, scale=0.5)
    _, f = pot.energy_and_forces(x)
    h = 1e-5
    fd = torch.zeros_like(x)
    for b in range(system.n_beads):
        for k in range(3):
            xp, xm = x.clone(), x.clone()
            xp[:, b, k] += h
            xm[:, b, k] -= h
            fd[:, b, k] = -(pot(xp) - pot(xm)) / (2 * h)
    scale = f.abs().max()
    assert scale > 1.0                       # a real test: forces are not trivially zero
    assert torch.allclose(f, fd, atol=1e-5 * float(scale), rtol=1e-5)
    # and the same as autograd of forward()
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(pot(xr).sum(), xr)
    assert torch.allclose(f, -g, atol=1e-9 * float(scale))


def test_energy_is_rigid_motion_invariant_and_float32_consistent(system):
    pot = GoPotential(system).double()
    x = _perturbed(system, n=2)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    y = x @ q.T + torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    assert torch.allclose(pot(x), pot(y), atol=1e-8)
    e32, f32 = GoPotential(system).energy_and_forces(x.float())
    e64, f64 = pot.energy_and_forces(x)
    assert torch.allclose(e32.double(), e64, rtol=1e-4, atol=1e-3)
    assert torch.allclose(f32.double(), f64, rtol=1e-3, atol=1e-2)


def test_native_structure_is_a_local_minimum(system):
    pot = GoPotential(system).double()
    kt = U.kbt(T_K)
    x0 = torch.as_tensor(system.native, dtype=torch.float64)[None]
    e0, f0 = pot.energy_and_forces(x0)
    # typical thermal force on a bead: sqrt(3 kT k_bond) ≈ 14 kcal/mol/Å; native forces are tiny
    thermal = np.sqrt(3 * kt * system.params.k_bond)
    assert float(f0.norm(dim=-1).max()) < 0.1 * thermal
    # steepest descent barely moves it: the native structure sits at (very near) a minimum
    from scipy.optimize import minimize

    def fun(flat):
        e, f = pot.energy_and_forces(torch.as_tensor(flat.reshape(1, -1, 3)))
        return float(e[0]), -f.numpy().ravel()

    opt = minimize(fun, system.native.ravel(), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    assert opt.fun < float(e0)                          # the minimiser did its job
    # ... but barely moved: the native structure sits at (very near) a minimum
    assert float(e0) - opt.fun < 0.5 * kt
    xmin = opt.x.reshape(-1, 3)
    assert np.sqrt(np.mean(np.sum((xmin - system.native) ** 2, axis=1))) < 0.1
    # every small random displacement raises the energy
    ex = pot(x0 + 0.15 * torch.randn((64, 19, 3), dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    assert bool((ex > e0).all())
    # all native contacts sit at the bottom of their wells: energy −ε each
    assert float(e0) < -0.9 * system.params.epsilon * system.n_contacts


def test_native_energy_is_the_contact_and_repulsion_sum(system):
    """At the native structure every bonded term sits at its minimum (zero), every native contact at
    the bottom of its well (−ε), and the non-native pairs give their repulsion: a known answer."""
    p = system.params
    d = np.linalg.norm(system.native[system.pairs[:, 0]] - system.native[system.pairs[:, 1]], axis=1)
    rep = ~system.pair_is_contact
    expected = -p.epsilon * system.n_contacts + np.sum(p.epsilon_repulsion * (system.pair_sigma[rep] / d[rep]) ** 12)
    e = GoPotential(system).double()(torch.as_tensor(system.native)[None])
    assert float(e[0]) == pytest.approx(expected, abs=1e-9)
    # with the wells removed (unfolding model) the native contacts contribute nothing
    e_rep = GoPotential(system, contacts="repulsive").double()(torch.as_tensor(system.native)[None])
    assert float(e_rep[0]) == pytest.approx(expected + p.epsilon * system.n_contacts, abs=1e-9)


def test_mirror_image_is_penalised(system):
    """Side-chain chirality and Cα dihedrals make the mirror image of the native fold unfavourable."""
    pot = GoPotential(system).double()
    x0 = torch.as_tensor(system.native, dtype=torch.float64)[None]
    mirror = x0 * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert float(pot(mirror) - pot(x0)) > 20 * U.kbt(T_K)


def test_kabsch_rmsd_known_values(system):
    ref = system.native[:10]
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    moved = ref @ q.T + np.array([5.0, -1.0, 2.0])
    assert kabsch_rmsd(moved[None], ref)[0] == pytest.approx(0.0, abs=1e-6)
    # a uniform displacement of one bead by d (after no rotation can remove it fully) gives ≤ d/√N
    shifted = ref.copy()
    shifted[0] += np.array([1.0, 0.0, 0.0])
    assert 0 < kabsch_rmsd(shifted[None], ref)[0] <= 1.0 / np.sqrt(10) + 1e-9
    # the mirror image is not superimposable (proper rotations only)
    assert kabsch_rmsd((ref * np.array([-1, 1, 1]))[None], ref)[0] > 1.0


def test_count_transitions_with_hysteresis():
    # U(4) → F(0.5) → barrier recrossing inside the hysteresis band (no event) → U(3.5) → F → U
    r = [4.0, 2.0, 0.5, 1.5, 2.5, 1.2, 0.8, 3.5, 3.2, 0.9, 3.1]
    assert count_transitions(r, 1.0, 3.0) == (2, 2)
    assert count_transitions([0.5, 2.0, 0.6], 1.0, 3.0) == (0, 0)   # never committed to unfolded
    assert count_transitions([], 1.0, 3.0) == (0, 0)
    with pytest.raises(InputError):
        count_transitions(r, 3.0, 1.0)


def test_bad_positions_shape_is_one_clear_error(system):
    with pytest.raises(InputError, match=r"\[R, 19, 3\]"):
        GoPotential(system)(torch.zeros(2, 10, 3))


@pytest.fixture(scope="module")
def dual():
    """The embedded reference's system: native and misfolded states."""
    from raycg.synth.reference import PARAMETERS

    return build_go_system(params=PARAMETERS)


def test_misfolded_state_is_a_register_shifted_hairpin(dual):
    from raycg.synth.go_model import misfolded_register_pairs

    mis, nat = dual.misfolded, dual.native
    ca = dual.ca_index
    # a distinct structure: 2-3.5 Å Cα RMSD from native (as all-atom CLN025's misfolded hairpins)
    assert 2.0 < kabsch_rmsd(mis[None, ca], nat[ca])[0] < 3.5
    # its cross-strand pairs (i, register - i) are at hairpin distances, the native ones are not
    reg = dual.params.misfolded_register
    for i, j in misfolded_register_pairs(reg):
        assert np.linalg.norm(mis[i] - mis[j]) < 6.0 < np.linalg.norm(nat[i] - nat[j]) + 2.5
    assert np.linalg.norm(mis[1] - mis[8]) > np.linalg.norm(nat[1] - nat[8]) + 1.0   # native Y2–W9 pair broken
    # its own wells exist only where the native structure has no contact
    assert dual.pair_is_misfolded_contact.any()
    assert not (dual.pair_is_misfolded_contact & dual.pair_is_contact).any()
    # bonds and angles stay native-like (the restraints pulled, the chain did not break)
    b = dual.bonds
    assert np.allclose(np.linalg.norm(mis[b[:, 0]] - mis[b[:, 1]], axis=1),
                       np.linalg.norm(nat[b[:, 0]] - nat[b[:, 1]], axis=1), atol=0.05)


def test_dual_basin_forces_are_minus_the_gradient(dual):
    """Misfolded wells and dihedral mixing: analytic forces = −∇E."""
    pot = GoPotential(dual).double()
    x = _perturbed(dual, n=3, scale=0.3)
    x[1] = torch.as_tensor(dual.misfolded) + 0.2 * torch.randn((19, 3), dtype=torch.float64,
                                                               generator=torch.Generator().manual_seed(5))
    _, f = pot.energy_and_forces(x)
    xr = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(pot(xr).sum(), xr)
    assert float(f.abs().max()) > 1.0
    assert torch.allclose(f, -g, atol=1e-9 * float(f.abs().max()))
    h = 1e-5
    b, k = 3, 1                                          # one finite-difference column checks forward()
    xp, xm = x.clone(), x.clone()
    xp[:, b, k] += h
    xm[:, b, k] -= h
    assert torch.allclose(f[:, b, k], -(pot(xp) - pot(xm)) / (2 * h), atol=1e-5 * float(f.abs().max()))


def test_both_states_are_low_energy_minima(dual):
    """Native and misfolded structures sit near minima of the dual-basin energy, and each is far below
    an unfolded (stretched) chain; with the wells removed (unfolding model) neither is favoured."""
    from scipy.optimize import minimize

    pot = GoPotential(dual).double()

    def relaxed(x0):
        def fun(flat):
            e, f = pot.energy_and_forces(torch.as_tensor(flat.reshape(1, -1, 3)))
            return float(e[0]), -f.numpy().ravel()

        opt = minimize(fun, x0.ravel(), jac=True, method="L-BFGS-B", options={"maxiter": 500})
        return opt.x.reshape(-1, 3), opt.fun

    kt = U.kbt(T_K)
    e = {}
    for name, x0 in (("native", dual.native), ("misfolded", dual.misfolded)):
        xmin, e[name] = relaxed(x0)
        ca = dual.ca_index
        assert kabsch_rmsd(xmin[None, ca], x0[ca])[0] < 0.5          # stays in its own basin
    assert e["native"] < e["misfolded"] < e["native"] + 15 * kt     # the misfolded state is the weaker one
    rep = GoPotential(dual, contacts="repulsive").double()
    both = torch.as_tensor(np.stack([dual.native, dual.misfolded]))
    assert float(rep(both).max()) - float(rep(both).min()) < 5 * kt


def test_the_go_model_is_built_from_the_shared_term_classes(system):
    """Its bonds are the priors' bond class; every term is a registered class with analytic forces."""
    from raycg.priors.terms import TERMS, term_class

    pot = GoPotential(system)
    assert list(pot.terms) == ["bonds", "cos_angles", "go_dihedrals", "chirality", "contacts"]
    assert type(pot.terms["bonds"]) is term_class("bonds")
    assert all(TERMS[k] is type(t) and t.analytic for k, t in pot.terms.items()) and pot.analytic
    counts = {k: t.n_terms for k, t in pot.terms.items()}
    assert counts == {"bonds": len(system.bonds), "cos_angles": len(system.angles),
                      "go_dihedrals": len(system.dihedrals), "chirality": len(system.chiralities),
                      "contacts": len(system.pairs)}
    x = torch.as_tensor(system.native, dtype=torch.float64)[None]
    by_kind = pot.double().energy_by_kind(x)
    assert float(by_kind["bonds"][0]) == pytest.approx(0.0, abs=1e-12)       # native bond lengths
    assert float(sum(by_kind.values())[0]) == pytest.approx(float(pot(x)[0]), abs=1e-12)
