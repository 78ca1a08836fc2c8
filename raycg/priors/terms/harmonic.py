"""Terms harmonic in one feature, ½ k (x − x0)²: bonds, angles, cos-angles, side-chain chirality.

Parameters per term: ``k`` (kcal/mol per feature unit²) and ``x0`` (feature unit). Bonds,
cos-angles and chirality have analytic forces (the Gō model's); all but chirality are fitted
by Boltzmann inversion with their Jacobian (r², sin θ, 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from raycg.priors import geometry as G
from raycg.priors.terms.base import Term, column, register_term
from raycg.priors.terms.boltzmann import fit_harmonic


class HarmonicTerm(Term):
    """½ k (x − x0)² in the feature x of :meth:`features`. Subclasses with ``analytic`` implement
    :meth:`_feature_forces`, the feature and a function adding g·∂x/∂P into F."""

    param_names = ("k", "x0")

    def __init__(self, atoms, k, x0):
        super().__init__(atoms)
        self.register_buffer("k", column(k))
        self.register_buffer("x0", column(x0))

    @classmethod
    def params_from_buffers(cls, buffers) -> dict[str, np.ndarray]:
        return {n: buffers[n][:, 0].detach().cpu().numpy() for n in cls.param_names}

    def _kdx2(self, P: Tensor, F: Tensor | None) -> Tensor:
        """k (x − x0)² ``[N, R]``; with ``F``, adds the forces −k (x − x0) ∂x/∂P into it."""
        k = self.param("k", P)
        if F is None:
            dx = self.features(P, self.idx) - self.param("x0", P)
        else:
            x, add_forces = self._feature_forces(P)
            dx = x - self.param("x0", P)
            add_forces(F, -(k * dx))
        return k * dx * dx

    def energy(self, P: Tensor, F: Tensor | None = None) -> Tensor:
        return 0.5 * self._kdx2(P, F).sum(0)

    def term_energies(self, P: Tensor) -> Tensor:
        return 0.5 * self._kdx2(P, None)

    def _feature_forces(self, P: Tensor):
        raise NotImplementedError

    @classmethod
    def fit(cls, hist, kbt: float, config) -> dict[str, Any]:
        jac = cls.jacobian(hist.centers) if config.jacobian else np.ones(hist.nbins)
        return fit_harmonic(hist, jac, kbt, config)

    @classmethod
    def curve(cls, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        return 0.5 * params["k"] * (x - params["x0"]) ** 2

    @classmethod
    def summary(cls, params: dict[str, Any]) -> str:
        return f"k={params['k']:9.3f}  x0={params['x0']:8.4f}"


@register_term
class HarmonicBond(HarmonicTerm):
    """Bonds ½ k (r − r0)²: r in Å, k in kcal/mol/Å², x0 = r0 in Å."""

    kind = "bonds"
    arity = 2
    noun = "bond"
    axis_label = "r (Å)"
    analytic = True
    energy_form = "0.5*k*(r - x0)**2; r in angstrom, k in kcal/mol/angstrom^2"

    @classmethod
    def select(cls, topology, config) -> np.ndarray:
        return topology.bonds

    @classmethod
    def features(cls, P: Tensor, idx: Tensor) -> Tensor:
        return G.distances(P, idx)

    @classmethod
    def jacobian(cls, x: np.ndarray) -> np.ndarray:
        return x ** 2

    def _feature_forces(self, P: Tensor):
        i, j = self.idx
        d = P.index_select(1, j) - P.index_select(1, i)
        r = G.norm(d)

        def add(F: Tensor, g: Tensor) -> None:          # g = −dE/dr
            fj = (g / r).unsqueeze(0) * d
            F.index_add_(1, j, fj)
            F.index_add_(1, i, -fj)
        return r, add

    @classmethod
    def title(cls, params: dict[str, Any]) -> str:
        return f"k={params['k']:.1f}, r0={params['x0']:.3f} Å"


@register_term
class HarmonicAngle(HarmonicTerm):
    """Angles ½ k (θ − θ0)²: θ in rad (0..π) at the middle bead, k in kcal/mol/rad²."""

    kind = "angles"
    arity = 3
    noun = "angle"
    unit = "rad"
    axis_label = "θ (deg)"
    domain = (0.0, np.pi)
    energy_form = "0.5*k*(theta - x0)**2; theta in rad (0..pi), k in kcal/mol/rad^2"

    @classmethod
    def select(cls, topology, config) -> np.ndarray:
        return topology.angles

    @classmethod
    def features(cls, P: Tensor, idx: Tensor) -> Tensor:
        return G.angles(P, idx)

    @classmethod
    def jacobian(cls, x: np.ndarray) -> np.ndarray:
        return np.sin(x)

    @classmethod
    def summary(cls, params: dict[str, Any]) -> str:
        return super().summary(params) + f" ({np.degrees(params['x0']):6.1f} deg)"

    @classmethod
    def title(cls, params: dict[str, Any]) -> str:
        return f"k={params['k']:.1f}, θ0={np.degrees(params['x0']):.1f}°"


@register_term
class CosineAngle(HarmonicTerm):
    """Angles harmonic in cos θ, ½ k (cos θ − x0)² (no singularity at 180°; with
    k = k_θ/sin²θ0 it equals ½ k_θ (θ − θ0)² near θ0). cos θ is uniform for an unbiased angle:
    J = 1."""

    kind = "cos_angles"
    arity = 3
    noun = "angle"
    unit = ""
    axis_label = "cos θ"
    analytic = True
    domain = (-1.0, 1.0)
    energy_form = "0.5*k*(cos(theta) - x0)**2; k in kcal/mol"

    @classmethod
    def select(cls, topology, config) -> np.ndarray:
        return topology.angles

    @classmethod
    def features(cls, P: Tensor, idx: Tensor) -> Tensor:
        return G.cos_angles(P, idx)

    def _feature_forces(self, P: Tensor):
        ia, ib, ic = self.idx
        sel = P.index_select
        u = sel(1, ia) - sel(1, ib)
        v = sel(1, ic) - sel(1, ib)
        lu = torch.sqrt(G.dot(u, u))
        lv = torch.sqrt(G.dot(v, v))
        cos = G.dot(u, v) / (lu * lv)

        def add(F: Tensor, g: Tensor) -> None:          # g = −dE/dcos θ
            fa = g.unsqueeze(0) * (v / (lu * lv).unsqueeze(0) - (cos / (lu * lu)).unsqueeze(0) * u)
            fc = g.unsqueeze(0) * (u / (lu * lv).unsqueeze(0) - (cos / (lv * lv)).unsqueeze(0) * v)
            F.index_add_(1, ia, fa)
            F.index_add_(1, ic, fc)
            F.index_add_(1, ib, -(fa + fc))
        return cos, add


@register_term
class Chirality(HarmonicTerm):
    """Chirality ½ k (χ − χ0)², χ = u·(v×w)/(|u||v||w|) of (a, b, c, s): u, v, w from bead b to
    a, c, s (Gō side chains: b its Cα, a and c Cα neighbours, s the side chain). Unlike a
    dihedral it has no singularity when three beads are collinear. Not fitted (no simple J)."""

    kind = "chirality"
    arity = 4
    noun = "chirality"
    unit = ""
    axis_label = "χ"
    analytic = True
    domain = (-1.0, 1.0)
    energy_form = "0.5*k*(chi - x0)**2; chi = u.(v x w)/(|u||v||w|), k in kcal/mol"

    @classmethod
    def features(cls, P: Tensor, idx: Tensor) -> Tensor:
        return G.chirality(P, idx)

    def _feature_forces(self, P: Tensor):
        ia, ib, ic, i_s = self.idx
        sel = P.index_select
        pb = sel(1, ib)
        u, v, w = sel(1, ia) - pb, sel(1, ic) - pb, sel(1, i_s) - pb
        uu, vv, ww = G.dot(u, u), G.dot(v, v), G.dot(w, w)
        vxw = torch.linalg.cross(v, w, dim=0)
        inv_n = 1.0 / torch.sqrt(uu * vv * ww)
        chi = G.dot(u, vxw) * inv_n

        def add(F: Tensor, g: Tensor) -> None:          # g = −dE/dχ
            g = g.unsqueeze(0)
            gi, gc = g * inv_n.unsqueeze(0), g * chi.unsqueeze(0)
            fu = gi * vxw - gc * u / uu.unsqueeze(0)
            fv = gi * torch.linalg.cross(w, u, dim=0) - gc * v / vv.unsqueeze(0)
            fw = gi * torch.linalg.cross(u, v, dim=0) - gc * w / ww.unsqueeze(0)
            F.index_add_(1, ia, fu)
            F.index_add_(1, ic, fv)
            F.index_add_(1, i_s, fw)
            F.index_add_(1, ib, -(fu + fv + fw))
        return chi, add
