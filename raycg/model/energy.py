"""EnergyModel: total CG energy = prior + network, with the bead types stored inside."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from raycg.model.schnet import CGSchNet


class EnergyModel(nn.Module):
    """``forward(pos[R,B,3]) -> energy[R]`` (kcal/mol) = prior(pos) + network(pos, bead_types).

    Either part may be None (a prior-only or network-only model). Forces come from autograd:
    :meth:`energy_and_forces`. This is the object the simulation engine accepts directly.
    """

    def __init__(self, bead_types: Sequence[int] | np.ndarray | Tensor, prior: nn.Module | None = None,
                 network: CGSchNet | None = None) -> None:
        super().__init__()
        types = torch.as_tensor(np.asarray(bead_types), dtype=torch.long).reshape(-1)
        self.register_buffer("bead_types", types)
        self.prior = prior
        self.network = network
        if network is not None and types.numel() and int(types.max()) >= network.config.num_types:
            from raycg.errors import InputError

            raise InputError(f"bead type {int(types.max())} does not fit the network's embedding table "
                             f"(num_types={network.config.num_types})", hint="raise model.num_types")

    @property
    def n_beads(self) -> int:
        return int(self.bead_types.numel())

    def _check(self, pos: Tensor) -> Tensor:
        if pos.dim() == 2:
            pos = pos.unsqueeze(0)
        if pos.dim() != 3 or pos.shape[1:] != (self.n_beads, 3):
            raise ValueError(f"positions must be [R, {self.n_beads}, 3], got {tuple(pos.shape)}")
        return pos

    def prior_energy(self, pos: Tensor) -> Tensor:
        pos = self._check(pos)
        if self.prior is None:
            return pos.new_zeros(pos.shape[0])
        return self.prior(pos)

    def network_energy(self, pos: Tensor) -> Tensor:
        pos = self._check(pos)
        if self.network is None:
            return pos.new_zeros(pos.shape[0])
        return self.network(pos, self.bead_types)

    def forward(self, pos: Tensor) -> Tensor:
        pos = self._check(pos)
        e = self.network_energy(pos)
        if self.prior is not None:
            e = e + self.prior(pos)
        return e

    def energy_and_forces(self, pos: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
        """Energies [R] and forces −∇E [R, B, 3] (kcal/mol/Å).

        The network's forces come from its fused analytic pass (dense path; no autograd over
        positions, ``torch.compile``-able) or autograd (sparse path); the prior's by autograd.
        ``create_graph=True`` keeps the result differentiable w.r.t. the weights (training).
        """
        pos = self._check(pos)
        if self.network is not None:
            e, f = self.network.energy_and_forces(pos, self.bead_types, create_graph=create_graph)
        else:
            e, f = pos.new_zeros(pos.shape[0]), torch.zeros_like(pos)
        if self.prior is not None:
            ep, fp = forces_of(self.prior, pos, create_graph=create_graph)
            e, f = e + ep, f + fp
        if not create_graph:
            e, f = e.detach(), f.detach()
        return e, f


def forces_of(module: nn.Module, pos: Tensor, *, create_graph: bool = False) -> tuple[Tensor, Tensor]:
    """Energies and forces of any ``pos -> energy`` module by autograd."""
    with torch.enable_grad():
        if not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        e = module(pos)
        (g,) = torch.autograd.grad(e.sum(), pos, create_graph=create_graph)
    return (e if create_graph else e.detach()), -g
