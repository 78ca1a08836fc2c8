"""The entropy double counting of free-energy targets, on a toy with an exact answer, sampled by raycg.

One bead in a tilted double well along x (the collective variable s = x) inside a channel in y
that is narrow (0.3 Å) in the folded well (x < 0) and wide (1.5 Å) in the other, with stiff
harmonic walls outside the channel; z is confined by a harmonic well of fixed width, and a box
wall at |x| = L keeps a model without the x profile in place.

- the true model U = V(x) + walls: its folded fraction P(x < 0) follows from quadrature;
- the published target sets the total energy to the reference free energy F(x) inside the same
  channel: U_pub = F(x) + walls samples e^{−βV} Ω², not e^{−βV} Ω (Ω(x): the channel's volume);
- the corrected target U₀ + F_ref − F₀ with U₀ = the walls alone, F_ref and F₀ histogrammed from
  raycg simulations of U and U₀ by ``raycg.train.fes_correction`` (the production code), recovers P.
"""

from __future__ import annotations

import numpy as np
import torch

from raycg.sim import simulate
from raycg.train import corrected_targets, fes_correction
from raycg.units import kbt

TEMPERATURE = 300.0
KT = kbt(TEMPERATURE)
K_WALL = 200.0                  # kcal/mol/Å², walls: K (distance beyond the wall)²
W_FOLDED, W_OTHER, W_SWITCH = 0.3, 1.5, 0.15    # channel width (Å) at x << 0, x >> 0; switch length (Å)
BOX = 2.0                       # |x| wall (Å)
BARRIER, TILT = 0.9, 0.75       # V(x) = BARRIER (x² − 1)² + TILT x, kcal/mol, x in Å
MASS = 10.0                     # amu
N_REPLICAS, N_STEPS, SAVE_EVERY, BURN_FRAMES = 512, 14_000, 20, 80
SIM = dict(dt_ps=0.005, friction_per_ps=5.0, temperature_K=TEMPERATURE, n_steps=N_STEPS, save_every=SAVE_EVERY,
           dtype="float32", compile=False)
BINS, SMOOTH = 80, 1.0


# ---------------------------------------------------------------- the system, in torch and numpy

def _width_t(x):
    return W_FOLDED + (W_OTHER - W_FOLDED) * torch.sigmoid(x / W_SWITCH)


def walls(pos: torch.Tensor) -> torch.Tensor:
    """U₀: channel walls in y, a harmonic z well and the x box; zero inside the channel."""
    x, y, z = pos[:, 0, 0], pos[:, 0, 1], pos[:, 0, 2]
    return K_WALL * (torch.relu(y.abs() - _width_t(x) / 2) ** 2 + z**2 + torch.relu(x.abs() - BOX) ** 2)


def v_t(x):
    return BARRIER * (x**2 - 1) ** 2 + TILT * x


def true_energy(pos):
    return v_t(pos[:, 0, 0]) + walls(pos)


XS = np.linspace(-BOX - 0.5, BOX + 0.5, 5001)


def omega(x: np.ndarray) -> np.ndarray:
    """∫ e^{−β W_y(y; x)} dy by quadrature: the channel's accessible width at x (Å)."""
    ys = np.linspace(-2.0, 2.0, 8001)
    w = (W_FOLDED + (W_OTHER - W_FOLDED) / (1 + np.exp(-x / W_SWITCH)))[:, None]
    return np.trapezoid(np.exp(-K_WALL * np.maximum(np.abs(ys)[None] - w / 2, 0) ** 2 / KT), ys, axis=1)


def v_np(x):
    return BARRIER * (x**2 - 1) ** 2 + TILT * x + K_WALL * np.maximum(np.abs(x) - BOX, 0) ** 2


def exact_free_energy(x):
    """F(x) = V(x) − k_BT ln Ω(x) (+ const: the z well's constant width)."""
    return v_np(x) - KT * np.log(omega(x))


def folded_fraction(p: np.ndarray) -> float:
    return float(np.trapezoid(np.where(XS < 0, p, 0.0), XS) / np.trapezoid(p, XS))


def quadrature_true() -> float:
    return folded_fraction(np.exp(-v_np(XS) / KT) * omega(XS))


def quadrature_published() -> float:
    """U_pub = F(x) + walls: marginal e^{−βF} Ω = e^{−βV} Ω²."""
    return folded_fraction(np.exp(-exact_free_energy(XS) / KT) * omega(XS))


class GridInterp(torch.nn.Module):
    """Linear interpolation of a function of x tabulated at uniform centres; constant beyond them."""

    def __init__(self, centres: np.ndarray, values: np.ndarray):
        super().__init__()
        self.c0, self.h, self.n = float(centres[0]), float(centres[1] - centres[0]), len(centres)
        self.register_buffer("g", torch.as_tensor(values, dtype=torch.float64))

    def forward(self, x):
        t = (x.clamp(self.c0, self.c0 + self.h * (self.n - 1)) - self.c0) / self.h
        i = t.detach().floor().clamp(0, self.n - 2).long()
        f = t - i
        g = self.g.to(x.dtype)
        return g[i] * (1 - f) + g[i + 1] * f


def run(potential, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """x of every saved frame after burn-in [R, T] and the frames' positions [R*T, 1, 3]."""
    x0 = np.zeros((N_REPLICAS, 1, 3))
    x0[:, 0, 0] = np.where(np.arange(N_REPLICAS) % 2 == 0, -1.0, 1.0)
    res = simulate(potential, [MASS], x0, {**SIM, "seed": seed}, progress=False)
    assert res.alive.all()
    pos = res.positions[:, BURN_FRAMES:]
    return pos[..., 0, 0].astype(np.float64), pos.reshape(-1, 1, 3)


def fraction_and_error(x: np.ndarray) -> tuple[float, float]:
    per_replica = (x < 0).mean(1)          # replicas are independent: the standard error is across them
    return float(per_replica.mean()), float(per_replica.std(ddof=1) / np.sqrt(len(per_replica)))


# ---------------------------------------------------------------- tests

def test_published_target_double_counts_the_orthogonal_entropy():
    p_true, p_pub = quadrature_true(), quadrature_published()
    assert abs(p_true - 0.69) < 0.01             # the widths and well were chosen for this
    assert p_true - p_pub > 0.2
    grid = torch.as_tensor(XS)
    f_t = GridInterp(XS, exact_free_energy(XS))
    assert torch.isfinite(f_t(grid)).all()

    def published(pos):
        return f_t(pos[:, 0, 0]) + walls(pos)

    x, _ = run(published, seed=11)
    sampled, se = fraction_and_error(x)
    print(f"\ntrue P(folded) {p_true:.3f}; published target: quadrature {p_pub:.3f}, sampled {sampled:.3f} ± {se:.3f}")
    assert abs(sampled - p_pub) < 4 * se + 0.005
    assert p_true - sampled > 0.2


def test_corrected_target_recovers_the_folded_fraction():
    p_true = quadrature_true()
    x_ref, pos_ref = run(true_energy, seed=21)               # the reference ("all-atom") model
    ref_sampled, ref_se = fraction_and_error(x_ref)
    assert abs(ref_sampled - p_true) < 4 * ref_se + 0.005    # the sampler samples the true model
    x_base, _ = run(walls, seed=22)                          # the base model: channel, no x profile
    y_ref, y_base = x_ref.reshape(-1, 1), x_base.reshape(-1, 1)

    corr = fes_correction(y_ref, y_base, KT, bins=BINS, range=[(-BOX, BOX)], smooth_bins=SMOOTH)
    # the per-frame targets (what the network is trained on), with U₀ at every reference frame
    with torch.no_grad():
        e0 = walls(torch.as_tensor(pos_ref, dtype=torch.float64)).numpy()
    tg = corrected_targets(e0, y_ref, y_base, KT, bins=BINS, range=[(-BOX, BOX)], smooth_bins=SMOOTH)
    assert np.all(np.isfinite(tg.free_energy)) and tg.info["n_floored_base"] == 0
    assert abs(np.mean(tg.free_energy) - np.mean(e0)) < 1e-9          # the offset rule
    # target − U₀ = F_ref − F₀ = V(x) + const where the reference lives (the exact answer)
    g = tg.free_energy - e0
    v = v_np(y_ref[:, 0])
    well = (y_ref[:, 0] > -1.4) & (y_ref[:, 0] < 1.2)
    dev = (g - v)[well] - np.mean((g - v)[well])
    assert np.sqrt(np.mean(dev**2)) < 0.1, np.sqrt(np.mean(dev**2))
    np.testing.assert_allclose(g - tg.info["offset_kcal"], corr.delta_at(y_ref), atol=1e-9)

    delta = GridInterp(corr.centres[0], corr.delta)

    def corrected(pos):
        return walls(pos) + delta(pos[:, 0, 0])

    x, _ = run(corrected, seed=23)
    sampled, se = fraction_and_error(x)
    print(f"\ntrue P(folded) {p_true:.3f} (reference run {ref_sampled:.3f} ± {ref_se:.3f}); "
          f"corrected target sampled {sampled:.3f} ± {se:.3f}")
    assert abs(sampled - p_true) < 0.02
