"""raycg: distributed, statistically rigorous study runner for machine-learned CG protein models.

Pipeline stages, one package each (data flows one way):
data -> priors -> cv -> model/train -> sim -> evaluate -> stats -> report, composed by ``study``.
Units everywhere inside raycg: Å, kcal/mol, kcal/mol/Å, ps, amu, K (see :mod:`raycg.units`).
"""

__version__ = "0.1.0"
