"""Collective variables shared by train and evaluate: pair distances, the reference TICA and
two-state (hysteresis) transition counting, Cα RMSD to native."""

from raycg.cv.features import (
    FEATURE_KINDS,
    feature_dim,
    featurize,
    featurize_torch,
    pair_distances,
    pair_distances_torch,
    pair_indices,
    pseudo_dihedrals,
    pseudo_dihedrals_torch,
)
from raycg.cv.rmsd import mirror, rmsd_to
from raycg.cv.tica import ReferenceTICA, fit_reference_tica
from raycg.cv.transitions import count_two_state_transitions, count_two_state_transitions_per_trajectory

__all__ = [
    "FEATURE_KINDS",
    "ReferenceTICA",
    "count_two_state_transitions",
    "count_two_state_transitions_per_trajectory",
    "feature_dim",
    "featurize",
    "featurize_torch",
    "fit_reference_tica",
    "mirror",
    "pair_distances",
    "pair_distances_torch",
    "pair_indices",
    "pseudo_dihedrals",
    "pseudo_dihedrals_torch",
    "rmsd_to",
]
