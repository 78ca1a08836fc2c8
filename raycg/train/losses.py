"""Force-matching and energy-matching losses."""

from __future__ import annotations

import torch
from torch import Tensor


def force_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared force error per component, (kcal/mol/Å)²: MSE(network forces, data − prior forces)."""
    return (pred - target).pow(2).mean()


def energy_loss(pred: Tensor, target: Tensor, *, offset_invariant: bool = False) -> Tensor:
    """MSE on energies, (kcal/mol)². ``offset_invariant``: both sides centred within the batch."""
    if offset_invariant:
        pred = pred - pred.mean()
        target = target - target.mean()
    return (pred - target).pow(2).mean()


def total_loss(lf: Tensor | None, le: Tensor | None, force_weight: float, energy_weight: float) -> Tensor:
    """w_F·L_F + w_E·L_E (a term with weight 0 or None is left out)."""
    out = None
    if lf is not None and force_weight > 0:
        out = force_weight * lf
    if le is not None and energy_weight > 0:
        out = energy_weight * le if out is None else out + energy_weight * le
    if out is None:
        raise ValueError("no loss term with a positive weight")
    return out


def forces_and_energy(network: torch.nn.Module, pos: Tensor, types: Tensor, *,
                      create_graph: bool) -> tuple[Tensor, Tensor]:
    """Network energy [R] and forces −∇E [R,B,3] (graph w.r.t. the weights kept if ``create_graph``).

    Uses the network's fused ``energy_and_forces`` when it has one (CGSchNet), else autograd.
    """
    if hasattr(network, "energy_and_forces"):
        return network.energy_and_forces(pos, types, create_graph=create_graph)
    with torch.enable_grad():
        p = pos.detach().requires_grad_(True)
        e = network(p, types)
        (g,) = torch.autograd.grad(e.sum(), p, create_graph=create_graph)
    return e, -g
