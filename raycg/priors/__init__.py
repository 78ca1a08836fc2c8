"""Classical prior terms fitted by Boltzmann inversion (bonds, angles, dihedrals, repulsion).

API: ``fit_priors(dataset, PriorConfig(...)) -> PriorSet``; ``PriorSet.save/load`` (versioned
JSON with fit diagnostics); ``PriorSet.to_module() -> PriorEnergy`` (torch, ``pos[R,B,3] Å ->
energy[R] kcal/mol``, forces by autograd). Energy forms: bonds ½k(r−r0)², angles ½k(θ−θ0)²,
dihedrals Σ_n c_n cos nφ + s_n sin nφ (n ≤ 3), repulsion (σ/r)⁶ over pairs ≥ 3 bonds apart.
"""

from raycg.priors.config import PriorConfig
from raycg.priors.energy import PriorEnergy
from raycg.priors.fit import fit_priors
from raycg.priors.prior_set import PriorSet, TermFit, TermTable
from raycg.priors.topology import PriorTopology, build_topology

__all__ = ["PriorConfig", "PriorEnergy", "PriorSet", "PriorTopology", "TermFit", "TermTable", "build_topology",
           "fit_priors"]
