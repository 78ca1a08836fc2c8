"""Dihedral terms: the fitted Fourier series and the Gō model's cosine dihedrals.

φ in rad (−π..π, IUPAC sign), energies kcal/mol. A dihedral has no Jacobian (J = 1) and its
histogram spans −π..π periodically.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from raycg.priors import geometry as G
from raycg.priors.terms.base import Term, column, register_term
from raycg.priors.terms.boltzmann import SparseHistogram, free_energy, residual_stats, wlsq


def _coefficients(a, n: int) -> np.ndarray:
    """Fourier coefficients as float64 ``[n, order]``."""
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(n, -1) if n else a.reshape(0, a.shape[-1] if a.ndim == 2 else 0)


@register_term
class FourierDihedral(Term):
    """Σ_n c_n cos nφ + s_n sin nφ, n = 1..order; params ``cos``, ``sin`` [N, order] kcal/mol."""

    kind = "dihedrals"
    arity = 4
    param_names = ("cos", "sin")
    noun = "dihedral"
    unit = "rad"
    axis_label = "φ (deg)"
    periodic = True
    domain = (-np.pi, np.pi)
    energy_form = ("sum_n cos[n-1]*cos(n*phi) + sin[n-1]*sin(n*phi), n=1..order; phi in rad "
                   "(IUPAC sign), kcal/mol")

    def __init__(self, atoms, cos, sin):
        super().__init__(atoms)
        n = self.n_terms
        self.register_buffer("cos", torch.as_tensor(_coefficients(cos, n)))
        self.register_buffer("sin", torch.as_tensor(_coefficients(sin, n)))
        order = self.cos.shape[1]
        self.register_buffer("harmonics", torch.arange(1, order + 1, dtype=torch.float64))

    @property
    def order(self) -> int:
        return int(self.cos.shape[1])

    def _energies(self, P: Tensor, F: Tensor | None) -> Tensor:
        phi = G.dihedrals(P, self.idx)
        nphi = phi.unsqueeze(-1) * self.param("harmonics", phi)           # [N, R, order]
        c, s = self.param("cos", phi).unsqueeze(1), self.param("sin", phi).unsqueeze(1)
        return (c * torch.cos(nphi) + s * torch.sin(nphi)).sum(-1)

    @classmethod
    def check_params(cls, params, n, config):
        return {k: v.reshape(n, config.dihedral_order) for k, v in params.items()}

    @classmethod
    def select(cls, topology, config) -> np.ndarray:
        return topology.dihedrals

    @classmethod
    def features(cls, P: Tensor, idx: Tensor) -> Tensor:
        return G.dihedrals(P, idx)

    @classmethod
    def fit(cls, hist, kbt: float, config) -> dict[str, Any]:
        """Weighted least squares of the Fourier series (ridge ``dihedral_ridge``); with fewer
        than 2·order + 3 populated bins a lower order, or zero (``sparse_fallback``)."""
        order = config.dihedral_order
        fe = free_energy(hist, np.ones(hist.nbins), kbt, config)
        nfit = int(fe.mask.sum())
        use = min(order, (nfit - 3) // 2)        # a Fourier series of order o needs >= 2o + 3 bins
        if use < order and not config.sparse_fallback:
            raise SparseHistogram(nfit, 2 * order + 3)
        if use < 1:
            zeros = [0.0] * order
            return {"params": {"cos": zeros, "sin": zeros}, "method": "not-fitted",
                    "n_fit_bins": nfit,
                    "note": f"only {nfit} populated bin(s): dihedral prior set to zero"}
        x = fe.centers[fe.mask]
        n = np.arange(1, use + 1)
        nx = np.outer(x, n)
        design = np.concatenate([np.ones((nfit, 1)), np.cos(nx), np.sin(nx)], axis=1)
        coef = wlsq(design, fe.free[fe.mask], fe.neff[fe.mask], ridge=config.dihedral_ridge)
        stats = residual_stats(fe.free[fe.mask], design @ coef, fe.c[fe.mask])
        pad = [0.0] * (order - use)
        params = {"cos": coef[1:1 + use].tolist() + pad, "sin": coef[1 + use:].tolist() + pad}
        note = "" if use == order else f"only {nfit} populated bins: Fourier order reduced to {use}"
        return {"params": params, "method": "fourier-lsq", "n_fit_bins": nfit, "note": note,
                **stats}

    @classmethod
    def curve(cls, params: dict[str, Any], x: np.ndarray) -> np.ndarray:
        n = np.arange(1, len(params["cos"]) + 1)
        return (np.cos(np.outer(x, n)) @ np.asarray(params["cos"])
                + np.sin(np.outer(x, n)) @ np.asarray(params["sin"]))

    @classmethod
    def summary(cls, params: dict[str, Any]) -> str:
        return ("cos=" + ",".join(f"{v:+.3f}" for v in params["cos"])
                + " sin=" + ",".join(f"{v:+.3f}" for v in params["sin"]))

    @classmethod
    def title(cls, params: dict[str, Any]) -> str:
        return ("c=" + ",".join(f"{v:.2f}" for v in params["cos"])
                + " s=" + ",".join(f"{v:.2f}" for v in params["sin"]))


def _cosine_terms(cphi: Tensor, sphi: Tensor, cos0: Tensor, sin0: Tensor, k1: Tensor,
                  k3: Tensor) -> tuple[Tensor, Tensor]:
    """k1 [1 − cos(φ−φ0)] + k3 [1 − cos 3(φ−φ0)] and its derivative dE/dφ, from cos φ, sin φ."""
    cd = cphi * cos0 + sphi * sin0                      # cos(φ-φ0)
    sd = sphi * cos0 - cphi * sin0                      # sin(φ-φ0)
    energy = k1 * (1.0 - cd) + k3 * (1.0 - (4.0 * cd * cd * cd - 3.0 * cd))
    return energy, k1 * sd + 3.0 * k3 * (3.0 * sd - 4.0 * sd * sd * sd)


def add_dihedral_forces(F: Tensor, idx: Tensor, f: G.DihedralFrame, dv: Tensor) -> None:
    """Add the forces −dE/dφ ∂φ/∂P of dihedrals ``idx[4, N]`` into ``F[3, B, R]`` (dv = dE/dφ)."""
    m2 = G.dot(f.m, f.m).clamp_min(1e-30)
    n2 = G.dot(f.n, f.n).clamp_min(1e-30)
    f0 = (dv * f.lb2 / m2).unsqueeze(0) * f.m
    f3 = (-dv * f.lb2 / n2).unsqueeze(0) * f.n
    lb22 = (f.lb2 * f.lb2).unsqueeze(0)
    pp = -G.dot(f.b1, f.b2).unsqueeze(0) / lb22
    qq = -G.dot(f.b3, f.b2).unsqueeze(0) / lb22
    s = pp * f0 - qq * f3
    F.index_add_(1, idx[0], f0)
    F.index_add_(1, idx[1], -(f0 - s))
    F.index_add_(1, idx[2], -(f3 + s))
    F.index_add_(1, idx[3], f3)


@register_term
class GoDihedral(Term):
    """Gō dihedrals k1 [1 − cos(φ − φ0)] + k3 [1 − cos 3(φ − φ0)]; with a second minimum φ1 and
    ``mixing`` w > 0 (kcal/mol) the smooth minimum −w ln(e^(−V0/w) + e^(−V1/w)) of the two forms.
    Params ``k1``, ``k3`` (kcal/mol), ``phi0``, ``phi1`` (rad); analytic forces."""

    kind = "go_dihedrals"
    arity = 4
    param_names = ("k1", "k3", "phi0", "phi1")
    noun = "dihedral"
    unit = "rad"
    analytic = True
    periodic = True
    domain = (-np.pi, np.pi)
    energy_form = ("k1*(1 - cos(phi - phi0)) + k3*(1 - cos(3*(phi - phi0))), smooth minimum over "
                   "phi0 and phi1")

    def __init__(self, atoms, k1, k3, phi0, phi1=None, mixing: float = 0.0):
        super().__init__(atoms)
        phi1 = phi0 if phi1 is None else phi1
        self.mixing = float(mixing)
        for name, v in (("k1", k1), ("k3", k3), ("phi0", phi0), ("phi1", phi1),
                        ("cos0", np.cos(phi0)), ("sin0", np.sin(phi0)),
                        ("cos1", np.cos(phi1)), ("sin1", np.sin(phi1))):
            self.register_buffer(name, column(v))

    @classmethod
    def params_from_buffers(cls, buffers) -> dict[str, np.ndarray]:
        return {n: buffers[n][:, 0].detach().cpu().numpy() for n in cls.param_names}

    def _energies(self, P: Tensor, F: Tensor | None) -> Tensor:
        f = G.dihedral_frame(P, self.idx)
        norm = torch.sqrt(f.x * f.x + f.y * f.y).clamp_min(1e-30)
        cphi, sphi = f.x / norm, f.y / norm
        p = {n: self.param(n, P) for n in ("k1", "k3", "cos0", "sin0", "cos1", "sin1")}
        v, dv = _cosine_terms(cphi, sphi, p["cos0"], p["sin0"], p["k1"], p["k3"])
        if self.mixing > 0:
            vm, dvm = _cosine_terms(cphi, sphi, p["cos1"], p["sin1"], p["k1"], p["k3"])
            low = torch.minimum(v, vm)
            wn, wm = torch.exp((low - v) / self.mixing), torch.exp((low - vm) / self.mixing)
            v = low - self.mixing * torch.log(wn + wm)
            dv = (wn * dv + wm * dvm) / (wn + wm)
        if F is not None:
            add_dihedral_forces(F, self.idx, f, dv)
        return v

    @classmethod
    def features(cls, P: Tensor, idx: Tensor) -> Tensor:
        return G.dihedrals(P, idx)
