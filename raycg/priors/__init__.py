"""Classical prior terms fitted by Boltzmann inversion (bonds, angles, dihedrals, repulsion).

API: ``fit_priors(dataset, PriorConfig(...)) -> PriorSet``; ``PriorSet.save/load`` (versioned
JSON with fit diagnostics); ``PriorSet.to_module() -> PriorEnergy`` (torch, ``pos[R,B,3] Å ->
energy[R] kcal/mol``, forces by autograd). Energy forms: bonds ½k(r−r0)², angles ½k(θ−θ0)²,
dihedrals Σ_n c_n cos nφ + s_n sin nφ (n ≤ 3), repulsion (σ/r)⁶ over pairs ≥ 3 bonds apart.
Each form is a term class of :mod:`raycg.priors.terms`, found by kind name in its registry.
"""

from raycg.priors.config import PriorConfig
from raycg.utils.lazy import lazy_exports

#: imported on first use, so that ``PriorConfig`` (a spec's ``priors:``) validates without torch
_LAZY = {
    "PriorEnergy": "raycg.priors.energy", "fit_priors": "raycg.priors.fit",
    "PriorSet": "raycg.priors.prior_set", "TermFit": "raycg.priors.prior_set",
    "TermTable": "raycg.priors.prior_set", "PriorTopology": "raycg.priors.topology",
    "build_topology": "raycg.priors.topology", "TermSum": "raycg.priors.energy",
    "TERMS": "raycg.priors.terms", "Term": "raycg.priors.terms",
    "register_term": "raycg.priors.terms",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["TERMS", "PriorConfig", "PriorEnergy", "PriorSet", "PriorTopology", "Term", "TermFit",
           "TermSum", "TermTable", "build_topology", "fit_priors", "register_term"]
