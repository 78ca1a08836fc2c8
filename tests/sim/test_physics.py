"""Physics of the integrators against known answers (units: Å, ps, amu, kcal/mol, K)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raycg import units as U
from raycg.sim import SimulationConfig, simulate

MASS = 12.0  # amu


def harmonic(k: float):
    """E = ½ k |x|² per replica (kcal/mol, k in kcal/mol/Å²)."""
    return lambda x: 0.5 * k * x.square().sum(dim=(1, 2))


def _boltzmann_starts(rng, temps, k, n_beads):
    sd = np.sqrt(U.KB_KCAL_PER_MOL_K * np.asarray(temps) / k)
    return rng.normal(size=(len(temps), n_beads, 3)) * sd[:, None, None]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_harmonic_oscillator_variance_and_kinetic_temperature(dtype):
    """3-D oscillator, two temperatures across replicas: <x²> = k_BT/k (2%), T_kin = T (1%), both precisions."""
    k, n_beads = 1.0, 24
    temps = [250.0] * 160 + [400.0] * 160
    rng = np.random.default_rng(0)
    x0 = _boltzmann_starts(rng, temps, k, n_beads)  # start in equilibrium; MB velocities from the seed
    cfg = SimulationConfig(dt_ps=0.01, friction_per_ps=5.0, temperature_K=temps, n_steps=600, save_every=5,
                           seed=3, dtype=dtype)
    res = simulate(harmonic(k), np.full(n_beads, MASS), x0, cfg, progress=False)
    assert res.alive.all()
    t = np.asarray(temps)
    for temp in (250.0, 400.0):
        sel = t == temp
        # one time-averaged x² per independent oscillator (replica x bead x axis): their spread gives the error
        x2 = (res.positions[sel] ** 2).mean(axis=1).reshape(-1)
        target = U.kbt(temp) / k
        rel = x2.mean() / target - 1
        rel_se = x2.std(ddof=1) / np.sqrt(x2.size) / target
        assert rel_se < 0.02 / 3, f"test too noisy: relative s.e. {rel_se:.4f}"
        assert abs(rel) < 0.02, f"T={temp}: <x^2> off by {rel:.4f} (s.e. {rel_se:.4f})"
        tk = res.kinetic_temperature[sel].mean(axis=1)
        rel_t = tk.mean() / temp - 1
        se_t = tk.std(ddof=1) / np.sqrt(tk.size) / temp
        assert se_t < 0.01 / 3, f"test too noisy: kinetic temperature s.e. {se_t:.4f}"
        assert abs(rel_t) < 0.01, f"T={temp}: kinetic temperature off by {rel_t:.4f} (s.e. {se_t:.4f})"


@pytest.mark.parametrize("omega_dt", [0.67, 1.5])
def test_baoab_large_steps_keep_configurations_exact(omega_dt):
    """BAOAB at large steps (Leimkuhler & Matthews 2013): a harmonic mode's <x²> stays exactly k_BT/k
    while the full-step kinetic temperature is T·(1 - (ω·dt)²/4). 0.67 is the quickstart's stiffest
    prior bond at 8 fs (k ≈ 100 kcal/mol/Å², reduced mass 6 amu)."""
    k, n_beads, temp = 1.0, 8, 300.0
    omega = math.sqrt(U.ACCEL_FACTOR_A_PER_PS2 * k / MASS)
    dt = omega_dt / omega
    rng = np.random.default_rng(0)
    x0 = _boltzmann_starts(rng, [temp] * 400, k, n_beads)
    cfg = SimulationConfig(dt_ps=dt, friction_per_ps=0.5 / dt, temperature_K=temp, n_steps=800, save_every=4,
                           seed=1, dtype="float64")
    res = simulate(harmonic(k), np.full(n_beads, MASS), x0, cfg, progress=False)
    x2 = (res.positions**2).mean(axis=1).reshape(-1) / (U.kbt(temp) / k)
    se = x2.std(ddof=1) / np.sqrt(x2.size)
    assert se < 0.002, f"test too noisy: relative s.e. {se:.4f}"
    assert abs(x2.mean() - 1) < 4 * se, f"<x^2> off by {x2.mean() - 1:.4f} (s.e. {se:.4f})"
    tk = res.kinetic_temperature.mean(axis=1) / temp
    se_t = tk.std(ddof=1) / np.sqrt(tk.size)
    assert abs(tk.mean() - (1 - omega_dt**2 / 4)) < 4 * se_t + 1e-3, f"T_kin/T {tk.mean():.4f}"


def test_brownian_harmonic_variance():
    """Overdamped dynamics samples <x²> = k_BT/k within 2%; exactly the Euler–Maruyama value (k_BT/k)/(1 - a/2),
    a = dt·418.4·k/(γm), within 3 s.e."""
    k, n_beads, temp, dt, gamma = 1.0, 4, 300.0, 0.002, 5.0
    rng = np.random.default_rng(1)
    x0 = _boltzmann_starts(rng, [temp] * 800, k, n_beads)
    cfg = SimulationConfig(integrator="brownian", dt_ps=dt, friction_per_ps=gamma, temperature_K=temp,
                           n_steps=1200, save_every=5, seed=5, dtype="float64")
    res = simulate(harmonic(k), np.full(n_beads, MASS), x0, cfg, progress=False)
    x2 = (res.positions**2).mean(axis=1).reshape(-1)
    target = U.kbt(temp) / k
    a = dt * U.ACCEL_FACTOR_A_PER_PS2 * k / (gamma * MASS)
    rel_se = x2.std(ddof=1) / np.sqrt(x2.size) / target
    assert rel_se < 0.02 / 4, f"test too noisy: relative s.e. {rel_se:.4f}"
    assert abs(x2.mean() / target - 1) < 0.02
    assert abs(x2.mean() / (target / (1 - a / 2)) - 1) < 3 * rel_se
    assert np.isnan(res.kinetic_temperature).all()  # documented: no velocities in brownian dynamics


def _double_well(h: float, a: float, tilt: float, k_perp: float):
    def energy(x):
        q = x[:, 0, 0] / a
        return h * (q * q - 1) ** 2 + tilt * x[:, 0, 0] + 0.5 * k_perp * x[:, 0, 1:].square().sum(-1)

    return energy


def test_double_well_population_ratio():
    """1-D double well from one basin: P(x<0)/P(x>0) matches the Boltzmann integral within 3 s.e."""
    temp = 300.0
    kt = U.kbt(temp)
    h, a, tilt, k_perp = 1.0 * kt, 1.0, 0.3 * kt, 2.0
    mass = 4.0  # light particle: basin hopping every few ps
    grid = np.linspace(-4, 4, 200001)
    w = np.exp(-(h * ((grid / a) ** 2 - 1) ** 2 + tilt * grid) / kt)
    exact = w[grid < 0].sum() / w[grid > 0].sum()
    n_rep = 2048
    x0 = np.zeros((n_rep, 1, 3))
    x0[:, 0, 0] = a  # everyone starts in the right (less populated) basin: equilibration is tested too
    cfg = SimulationConfig(dt_ps=0.005, friction_per_ps=5.0, temperature_K=temp, n_steps=2000, save_every=4,
                           seed=11, dtype="float64")
    res = simulate(_double_well(h, a, tilt, k_perp), np.array([mass]), x0, cfg, progress=False)
    burn = 3 * res.positions.shape[1] // 10  # 3 ps: relaxation from the start basin takes ~2 ps
    left = (res.positions[:, burn:, 0, 0] < 0).mean(axis=1)  # per-replica fraction (replicas independent)
    p = left.mean()
    se_p = left.std(ddof=1) / np.sqrt(n_rep)
    ratio = p / (1 - p)
    se_ratio = se_p / (1 - p) ** 2
    assert se_ratio < 0.03 * exact, f"test too noisy: s.e. {se_ratio:.3f} of ratio {exact:.3f}"
    assert abs(ratio - exact) < 3 * se_ratio, f"ratio {ratio:.4f} vs exact {exact:.4f} (s.e. {se_ratio:.4f})"
    assert exact > 1.5  # the tilt makes the test sensitive to which basin is favoured


def test_energy_conservation_and_period_without_friction():
    """γ = 0: BAOAB is velocity Verlet; total energy conserved, second order in dt; period 2π/ω with ω² = 418.4 k/m."""
    k = 1.0
    # an anharmonic 4-bead chain (bonds + quartic tether) to make conservation non-trivial
    bonds = torch.tensor([[0, 1], [1, 2], [2, 3]])

    def chain(x):
        d = (x[:, bonds[:, 1]] - x[:, bonds[:, 0]]).norm(dim=-1)
        return (5.0 * (d - 3.8) ** 2).sum(-1) + 0.01 * x.square().sum(-1).square().sum(-1)

    rng = np.random.default_rng(2)
    x0 = np.stack([np.arange(4) * 3.8 + rng.normal(scale=0.2, size=4), rng.normal(scale=0.3, size=4),
                   np.zeros(4)], -1)[None].repeat(8, 0) - np.array([5.7, 0, 0])
    drifts = []
    for dt in (0.002, 0.001):
        n = int(round(0.5 / dt))
        cfg = SimulationConfig(dt_ps=dt, friction_per_ps=0.0, temperature_K=300.0, n_steps=n, save_every=n // 50,
                               seed=0, dtype="float64")
        res = simulate(chain, np.full(4, MASS), x0, cfg, progress=False)
        ke = 0.5 * 3 * 4 * U.KB_KCAL_PER_MOL_K * res.kinetic_temperature
        total = res.potential_energy + ke
        drifts.append(np.abs(total - total[:, :1]).max())
        assert ke.mean() > 0.5  # the system actually moves
    assert drifts[0] < 0.015 * U.kbt(300.0), f"energy not conserved: {drifts[0]:.2e} kcal/mol"
    assert 3.0 < drifts[0] / drifts[1] < 5.0, f"not second order: {drifts}"

    # period of a harmonic oscillator started at rest: x(t) = x0 cos(ωt)
    omega = math.sqrt(k * U.ACCEL_FACTOR_A_PER_PS2 / MASS)
    cfg = SimulationConfig(dt_ps=0.002, friction_per_ps=0.0, n_steps=300, save_every=1, dtype="float64")
    start = np.array([[[1.0, 0.0, 0.0]]])
    res = simulate(harmonic(k), np.array([MASS]), start, cfg, velocities=np.zeros((1, 1, 3)), progress=False)
    expected = np.cos(omega * res.time_ps)
    assert np.abs(res.positions[0, :, 0, 0] - expected).max() < 2e-3


def test_reproducible_and_seeded():
    cfg = SimulationConfig(dt_ps=0.01, friction_per_ps=2.0, n_steps=50, save_every=10, seed=7)
    x0 = np.zeros((3, 2, 3))
    a = simulate(harmonic(1.0), np.full(2, MASS), x0, cfg, progress=False)
    b = simulate(harmonic(1.0), np.full(2, MASS), x0, cfg, progress=False)
    c = simulate(harmonic(1.0), np.full(2, MASS), x0, cfg.model_copy(update={"seed": 8}), progress=False)
    assert a.positions.dtype == np.float32
    np.testing.assert_array_equal(a.positions, b.positions)
    assert not np.array_equal(a.positions, c.positions)
    assert not np.array_equal(a.positions[0], a.positions[1])  # replicas get different noise
