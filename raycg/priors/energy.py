"""Energies as sums of term modules (:mod:`raycg.priors.terms`): the fitted prior and the Gō model.

``forward(pos[R, B, 3] Å) -> energy[R]`` kcal/mol, batched and vectorised over terms, any float
dtype/device; forces from the terms' analytic forces when every term has them, else autograd.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from raycg.errors import InputError
from raycg.priors.geometry import coordinate_major
from raycg.priors.terms import Term, term_class


class TermSum(nn.Module):
    """Sum of term modules, one per kind, in the given order.

    Index and parameter tensors are buffers (not trained), so ``.to(device)`` moves them.
    A 2-D ``pos[B, 3]`` is one replica (energy[1]). The loop runs over kinds, not terms.
    """

    def __init__(self, n_beads: int, terms: Iterable[Term]):
        super().__init__()
        self.n_beads = int(n_beads)
        self.terms = nn.ModuleDict({t.kind: t for t in terms})

    def extra_repr(self) -> str:
        counts = ", ".join(f"{k}={t.n_terms}" for k, t in self.terms.items())
        return f"n_beads={self.n_beads}, {counts}"

    @property
    def analytic(self) -> bool:
        """Whether every term has analytic forces (then :meth:`energy_and_forces` uses them)."""
        return all(t.analytic for t in self.terms.values())

    def _positions(self, pos: Tensor) -> Tensor:
        """pos[R, B, 3] (or [B, 3]) -> P[3, B, R], checking B."""
        if pos.dim() not in (2, 3) or pos.shape[-2] != self.n_beads or pos.shape[-1] != 3:
            raise InputError(f"{type(self).__name__} expects positions [R, {self.n_beads}, 3], "
                             f"got {tuple(pos.shape)}")
        return coordinate_major(pos)

    def _sum(self, P: Tensor, F: Tensor | None) -> Tensor:
        energy = None
        for term in self.terms.values():
            e = term.energy(P, F)
            energy = e if energy is None else energy + e
        return P.new_zeros(P.shape[2]) if energy is None else energy

    def forward(self, pos: Tensor) -> Tensor:
        """Total energy [R] kcal/mol of positions [R, B, 3] Å."""
        return self._sum(self._positions(pos), None)

    def energy_terms(self, pos: Tensor) -> dict[str, Tensor]:
        """Energy of every individual term, kcal/mol: {kind: Tensor[R, N_kind]}."""
        P = self._positions(pos)
        return {k: t.term_energies(P).T for k, t in self.terms.items() if t.n_terms}

    def energy_by_kind(self, pos: Tensor) -> dict[str, Tensor]:
        """Energy per term kind, kcal/mol: {kind: Tensor[R]}."""
        P = self._positions(pos)
        return {k: t.energy(P) for k, t in self.terms.items() if t.n_terms}

    def energy_and_forces(self, pos: Tensor) -> tuple[Tensor, Tensor]:
        """(energy[R] kcal/mol, forces kcal/mol/Å shaped as ``pos``), forces = −∂E/∂pos: analytic
        when :attr:`analytic`, else by autograd; no graph is kept."""
        if self.analytic:
            with torch.no_grad():
                P = self._positions(pos)
                F = torch.zeros_like(P)
                energy = self._sum(P, F)
            return energy, F.permute(2, 1, 0).reshape(pos.shape)
        with torch.enable_grad():
            p = pos.detach().requires_grad_(True)
            e = self.forward(p)
            (g,) = torch.autograd.grad(e.sum(), p)
        return e.detach(), -g


class PriorEnergy(TermSum):
    """The fitted prior (:meth:`raycg.priors.PriorSet.to_module`): bonds ½k(r−r0)², angles
    ½k(θ−θ0)², dihedrals Σ_n c_n cos nφ + s_n sin nφ, repulsion (σ/r)⁶, and any registered term.
    Parameters are float64 buffers cast to the dtype/device of ``pos`` on the fly.
    """

    @classmethod
    def from_tables(cls, n_beads: int, tables: Mapping[str, tuple[np.ndarray, Mapping[str, Any]]]
                    ) -> PriorEnergy:
        """From ``{kind: (atoms[N, arity], {param: array})}`` (a term's schema parameters)."""
        return cls(n_beads, [term_class(k).from_params(a, dict(p)) for k, (a, p) in tables.items()])

    def tables(self) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
        """``{kind: (atoms, params)}``: the inverse of :meth:`from_tables` (float64 numpy)."""
        return {k: (t.idx.T.cpu().numpy(), t.params_from_buffers(t.state_dict()))
                for k, t in self.terms.items()}

    @classmethod
    def from_state_dict(cls, n_beads: int, state: Mapping[str, Tensor]) -> PriorEnergy:
        """Rebuild from :meth:`state_dict` (keys ``terms.<kind>.<buffer>``), buffers exact."""
        by_kind: dict[str, dict[str, Tensor]] = {}
        for key, value in state.items():
            _, kind, name = key.split(".", 2)
            by_kind.setdefault(kind, {})[name] = value
        return cls(n_beads, [term_class(k).from_buffers(b) for k, b in by_kind.items()])
