"""Helpers shared by the export tests."""

from __future__ import annotations

import numpy as np
import torch


def raycg_energy_forces(model, x_A: np.ndarray, dtype=torch.float64):
    """raycg's energies [F] (kcal/mol) and forces [F, B, 3] (kcal/mol/Å) as float64 arrays."""
    e, f = model.to(dtype).energy_and_forces(torch.as_tensor(np.array(x_A), dtype=dtype))
    return e.double().numpy(), f.double().numpy()


class HarmonicBonds(torch.nn.Module):
    """A prior of harmonic bonds ½k(r − r0)² (kcal/mol, Å) between (i, j) pairs: a known answer."""

    def __init__(self, pairs, k: float, r0: float) -> None:
        super().__init__()
        self.register_buffer("pairs", torch.as_tensor(pairs, dtype=torch.long).reshape(-1, 2))
        self.k, self.r0 = float(k), float(r0)

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        if pos.dim() == 2:
            pos = pos.unsqueeze(0)
        r = (pos[:, self.pairs[:, 1]] - pos[:, self.pairs[:, 0]]).norm(dim=-1)
        return (0.5 * self.k * (r - self.r0) ** 2).sum(-1)
