"""Prior energy in torch: batched, vectorised over terms, any float dtype/device, forces by autograd."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from raycg.priors.geometry import gather, torch_angles, torch_dihedrals, torch_distances


def _long(a: np.ndarray, m: int) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.int64).reshape(-1, m))


def _f64(a: np.ndarray, *shape: int) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64).reshape(*shape))


class PriorEnergy(nn.Module):
    """Sum of the fitted prior terms. ``forward(pos[R,B,3] Å) -> energy[R]`` kcal/mol.

    bonds ½k(r−r0)², angles ½k(θ−θ0)², dihedrals Σ_n c_n cos nφ + s_n sin nφ, repulsion (σ/r)⁶.
    Index and parameter tensors are buffers (not trained), so ``.to(device)`` moves them; the
    parameters are stored in float64 and cast to the dtype/device of ``pos`` on the fly.
    No Python loop over terms: one gather + elementwise expression per kind (torch.compile-able).
    A 2-D ``pos[B,3]`` is treated as one replica and gives energy[1].
    """

    def __init__(self, n_beads: int, *, bonds: np.ndarray, bond_k: np.ndarray, bond_x0: np.ndarray,
                 angles: np.ndarray, angle_k: np.ndarray, angle_x0: np.ndarray,
                 dihedrals: np.ndarray, dihedral_cos: np.ndarray, dihedral_sin: np.ndarray,
                 pairs: np.ndarray, sigma: np.ndarray, dihedral_order: int = 3):
        super().__init__()
        self.n_beads = int(n_beads)
        order = self.dihedral_order = int(dihedral_order)
        self.register_buffer("bond_idx", _long(bonds, 2))
        self.register_buffer("bond_k", _f64(bond_k, -1))
        self.register_buffer("bond_x0", _f64(bond_x0, -1))
        self.register_buffer("angle_idx", _long(angles, 3))
        self.register_buffer("angle_k", _f64(angle_k, -1))
        self.register_buffer("angle_x0", _f64(angle_x0, -1))
        nd = len(np.asarray(dihedrals).reshape(-1, 4))
        self.register_buffer("dihedral_idx", _long(dihedrals, 4))
        self.register_buffer("dihedral_cos", _f64(dihedral_cos, nd, order))
        self.register_buffer("dihedral_sin", _f64(dihedral_sin, nd, order))
        self.register_buffer("dihedral_n", torch.arange(1, order + 1, dtype=torch.float64))
        self.register_buffer("pair_idx", _long(pairs, 2))
        self.register_buffer("pair_sigma2", _f64(np.asarray(sigma, dtype=np.float64) ** 2, -1))
        self.n_bonds = int(self.bond_idx.shape[0])
        self.n_angles = int(self.angle_idx.shape[0])
        self.n_dihedrals = int(self.dihedral_idx.shape[0])
        self.n_pairs = int(self.pair_idx.shape[0])

    def extra_repr(self) -> str:
        return (f"n_beads={self.n_beads}, bonds={self.n_bonds}, angles={self.n_angles}, "
                f"dihedrals={self.n_dihedrals} (order {self.dihedral_order}), repulsion_pairs={self.n_pairs}")

    # ---------------------------------------------------------------------------------------
    def energy_terms(self, pos: torch.Tensor) -> dict[str, torch.Tensor]:
        """Energy of every individual term, kcal/mol: {kind: Tensor[R, N_kind]}."""
        if pos.dim() == 2:
            pos = pos.unsqueeze(0)
        out: dict[str, torch.Tensor] = {}
        if self.n_bonds:
            r = torch_distances(pos, self.bond_idx)
            out["bonds"] = 0.5 * self.bond_k.to(r) * (r - self.bond_x0.to(r)) ** 2
        if self.n_angles:
            t = torch_angles(pos, self.angle_idx)
            out["angles"] = 0.5 * self.angle_k.to(t) * (t - self.angle_x0.to(t)) ** 2
        if self.n_dihedrals:
            phi = torch_dihedrals(pos, self.dihedral_idx)
            nphi = phi.unsqueeze(-1) * self.dihedral_n.to(phi)
            out["dihedrals"] = (self.dihedral_cos.to(phi) * torch.cos(nphi)
                                + self.dihedral_sin.to(phi) * torch.sin(nphi)).sum(-1)
        if self.n_pairs:
            g = gather(pos, self.pair_idx)
            d = g[:, :, 1] - g[:, :, 0]
            r2 = (d * d).sum(-1)
            out["repulsion"] = (self.pair_sigma2.to(r2) / r2) ** 3
        return out

    def energy_by_kind(self, pos: torch.Tensor) -> dict[str, torch.Tensor]:
        """Energy per term kind, kcal/mol: {kind: Tensor[R]}."""
        return {k: v.sum(-1) for k, v in self.energy_terms(pos).items()}

    def forward(self, pos: torch.Tensor) -> torch.Tensor:
        """Total prior energy [R] in kcal/mol for positions [R,B,3] in Å."""
        if pos.dim() == 2:
            pos = pos.unsqueeze(0)
        e = pos.new_zeros(pos.shape[0])
        for v in self.energy_terms(pos).values():  # ≤ 4 kinds, not a loop over terms
            e = e + v.sum(-1)
        return e

    def energy_and_forces(self, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(energy[R] kcal/mol, forces[R,B,3] kcal/mol/Å) with forces = −∂E/∂pos by autograd."""
        with torch.enable_grad():
            p = pos.detach().requires_grad_(True)
            e = self.forward(p)
            (g,) = torch.autograd.grad(e.sum(), p)
        return e.detach(), -g
