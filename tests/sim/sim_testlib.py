"""Small potentials shared by the sim tests (units: Å, kcal/mol)."""

from __future__ import annotations

import numpy as np
import torch

MASS = 12.0


class Chain:
    """Harmonic bonds (k = 20 kcal/mol/Å², r0 = 3.8 Å) along a chain plus a weak tether; energy_and_forces API."""

    def __init__(self, n_beads: int, nan_replica: int | None = None, nan_from_call: int | None = None,
                 raise_at_call: int | None = None):
        self.bonds = torch.stack([torch.arange(n_beads - 1), torch.arange(1, n_beads)], 1)
        self.calls = 0
        self.nan_replica, self.nan_from_call, self.raise_at_call = nan_replica, nan_from_call, raise_at_call

    def energy(self, x):
        d = (x[:, self.bonds[:, 1]] - x[:, self.bonds[:, 0]]).norm(dim=-1)
        return 20.0 * ((d - 3.8) ** 2).sum(-1) + 0.05 * x.mean(1).square().sum(-1)

    def energy_and_forces(self, x):
        if self.raise_at_call is not None and self.calls == self.raise_at_call:
            raise RuntimeError("simulated crash")
        xr = x.detach().requires_grad_(True)
        e = self.energy(xr)
        (g,) = torch.autograd.grad(e.sum(), xr)
        f = -g
        if self.nan_from_call is not None and self.calls >= self.nan_from_call:
            f = f.clone()
            f[self.nan_replica, 1, 0] = float("nan")
        self.calls += 1
        return e.detach(), f


def chain_starts(n_replicas: int, n_beads: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.stack([np.arange(n_beads) * 3.8, np.zeros(n_beads), np.zeros(n_beads)], -1)
    return base[None] + rng.normal(scale=0.1, size=(n_replicas, n_beads, 3))


def chain_bonds(n_beads: int) -> np.ndarray:
    return np.stack([np.arange(n_beads - 1), np.arange(1, n_beads)], 1)
