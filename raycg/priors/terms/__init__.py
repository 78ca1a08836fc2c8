"""The library of energy terms: one class per term, found by kind name in :data:`TERMS`.

Fitted priors: ``bonds`` (:class:`HarmonicBond`), ``angles`` (:class:`HarmonicAngle`),
``dihedrals`` (:class:`FourierDihedral`), ``repulsion`` (:class:`Repulsion`); also fittable:
``cos_angles`` (:class:`CosineAngle`). The Gō model of :mod:`raycg.synth` adds ``chirality``,
``go_dihedrals`` and ``contacts``. A new term is one subclass of :class:`Term` (or of
:class:`HarmonicTerm`) decorated with :func:`register_term`; ``PriorConfig(extra_terms=[kind])``
fits it, priors files save and load it, and :class:`~raycg.priors.PriorEnergy` sums it.
"""

from raycg.priors.terms.base import TERMS, Term, register_term, term_class
from raycg.priors.terms.boltzmann import Histogram
from raycg.priors.terms.dihedral import FourierDihedral, GoDihedral
from raycg.priors.terms.harmonic import (
    Chirality,
    CosineAngle,
    HarmonicAngle,
    HarmonicBond,
    HarmonicTerm,
)
from raycg.priors.terms.pairs import ContactPairs, Repulsion

__all__ = ["TERMS", "Chirality", "ContactPairs", "CosineAngle", "FourierDihedral", "GoDihedral",
           "HarmonicAngle", "HarmonicBond", "HarmonicTerm", "Histogram", "Repulsion", "Term",
           "register_term", "term_class"]
