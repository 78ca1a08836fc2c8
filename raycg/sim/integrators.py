"""Batched integrators: BAOAB Langevin and overdamped Brownian dynamics.

Units: positions Å, velocities Å/ps, forces kcal/mol/Å, energies kcal/mol, masses amu, time ps,
temperature K. Masses are converted once into the *internal* mass ``m / 418.4`` (kcal/mol·ps²/Å²)
by :func:`internal_mass`; that is the only place where ``units.ACCEL_FACTOR_A_PER_PS2`` is used,
after which ``a = F / m_int`` (Å/ps²) and ``KE = ½ m_int v²`` (kcal/mol) need no factor.

All tensors are batched over replicas: positions ``[R, B, 3]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from raycg import units as U
from raycg.errors import InputError

ForceFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

#: codes of blow-up reasons (0 = alive)
REASONS = {
    1: "non-finite positions",
    2: "non-finite forces",
    3: "non-finite potential energy",
    4: "non-finite velocities",
    5: "bonded distance beyond the envelope (blowup_max_bond_A)",
}


def internal_mass(masses: torch.Tensor) -> torch.Tensor:
    """Masses in amu -> internal mass in kcal/mol·ps²/Å² (so that a[Å/ps²] = F[kcal/mol/Å] / m_int)."""
    return masses / U.ACCEL_FACTOR_A_PER_PS2


def kinetic_temperature(velocities: torch.Tensor, m_int: torch.Tensor) -> torch.Tensor:
    """Instantaneous kinetic temperature (K) per replica: 2·KE / (3B·k_B), no constraints removed.

    velocities [R, B, 3] Å/ps, m_int [B] internal masses -> [R].
    """
    ke = 0.5 * (m_int[:, None] * velocities.square()).sum(dim=(-1, -2))
    n_dof = 3 * velocities.shape[-2]
    return 2.0 * ke / (n_dof * U.KB_KCAL_PER_MOL_K)


def maxwell_boltzmann(masses, temperature, n_replicas: int, generator: torch.Generator | None = None, *,
                      dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu") -> torch.Tensor:
    """Velocities [R, B, 3] in Å/ps drawn from Maxwell–Boltzmann at ``temperature`` (K, scalar or [R]).

    Each component ~ N(0, k_B T / m_int). Reproducible with a seeded ``generator`` (on ``device``).
    """
    m = torch.as_tensor(masses, dtype=torch.float64).reshape(-1)
    if m.numel() == 0 or not bool(torch.all(torch.isfinite(m) & (m > 0))):
        raise InputError("masses must be finite and > 0 amu", where="maxwell_boltzmann")
    t = torch.as_tensor(temperature, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(n_replicas)
    if t.numel() != n_replicas or not bool(torch.all(torch.isfinite(t) & (t > 0))):
        raise InputError(f"temperature must be one value or {n_replicas} values, all > 0 K",
                         where="maxwell_boltzmann")
    sigma = torch.sqrt(U.KB_KCAL_PER_MOL_K * t[:, None] / internal_mass(m)[None, :])  # [R, B]
    noise = torch.randn((n_replicas, m.numel(), 3), generator=generator, dtype=dtype, device=device)
    return noise * sigma[:, :, None].to(dtype=dtype, device=device)


# ----------------------------------------------------------------------------------------------
# forces


def make_force_fn(potential) -> ForceFn:
    """Wrap a potential into ``fn(pos[R,B,3]) -> (E[R], F[R,B,3])`` (detached tensors).

    ``potential`` is an object with ``energy_and_forces(pos)`` or a callable/module mapping
    ``pos -> E[R]`` (kcal/mol); forces are then ``-dE/dx`` by autograd.
    """
    eaf = getattr(potential, "energy_and_forces", None)
    if callable(eaf):
        def fn(x: torch.Tensor):
            with torch.enable_grad():
                energy, forces = eaf(x)
            return energy.detach().to(x.dtype), forces.detach().to(x.dtype)

        return fn
    if not callable(potential):
        raise InputError(f"potential of type {type(potential).__name__} is neither callable nor has "
                         f"energy_and_forces", where="simulate", hint="pass an nn.Module pos[R,B,3] -> E[R]")

    def fn(x: torch.Tensor):
        with torch.enable_grad():
            xr = x.detach().requires_grad_(True)
            energy = potential(xr)
            if not energy.requires_grad:
                return energy.detach().to(x.dtype), torch.zeros_like(x)
            (grad,) = torch.autograd.grad(energy.sum(), xr, allow_unused=True)
        if grad is None:
            grad = torch.zeros_like(x)
        return energy.detach().to(x.dtype), -grad

    return fn


# ----------------------------------------------------------------------------------------------
# steps


class StepCoefficients:
    """Precomputed per-step coefficients (tensors on the simulation device/dtype)."""

    def __init__(self, integrator: str, dt: float, friction: float, temperatures: torch.Tensor,
                 m_int: torch.Tensor):
        kt = (U.KB_KCAL_PER_MOL_K * temperatures)[:, None, None]  # [R,1,1] kcal/mol
        inv_m = (1.0 / m_int)[None, :, None]                        # [1,B,1]
        self.integrator = integrator
        self.half_dt = 0.5 * dt
        self.half_dt_inv_m = 0.5 * dt * inv_m
        if integrator == "baoab":
            c1 = math.exp(-friction * dt)
            self.c1 = c1
            self.noise_scale = math.sqrt(max(0.0, 1.0 - c1 * c1)) * torch.sqrt(kt * inv_m)  # [R,B,1] Å/ps
            self.stochastic = friction > 0
        else:
            self.c1 = 0.0
            self.drift = dt * inv_m / friction                                   # Å per (kcal/mol/Å)
            self.noise_scale = torch.sqrt(2.0 * kt * dt * inv_m / friction)      # Å
            self.stochastic = True


def baoab_step(x, v, f, noise, c: StepCoefficients, force_fn: ForceFn):
    """One BAOAB step (B-A-O-A-B) with one force evaluation; returns (x, v, f, E)."""
    v = torch.addcmul(v, c.half_dt_inv_m, f)               # B: v += dt/2 · F/m
    x = torch.add(x, v, alpha=c.half_dt)                     # A: x += dt/2 · v
    if noise is not None:                                    # O: v = c1 v + sqrt((1-c1²) kT/m) ξ
        v = torch.addcmul(v * c.c1, c.noise_scale, noise)
    x = torch.add(x, v, alpha=c.half_dt)                     # A
    energy, f = force_fn(x)
    v = torch.addcmul(v, c.half_dt_inv_m, f)               # B
    return x, v, f, energy


def brownian_step(x, v, f, noise, c: StepCoefficients, force_fn: ForceFn):
    """One Euler–Maruyama overdamped step: x += dt/(γ m) F + sqrt(2 kT dt/(γ m)) ξ; v stays 0."""
    x = torch.addcmul(torch.addcmul(x, c.drift, f), c.noise_scale, noise)
    energy, f = force_fn(x)
    return x, v, f, energy
