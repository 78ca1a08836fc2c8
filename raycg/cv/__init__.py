"""Collective variables shared by train and evaluate: pair distances and the reference TICA."""

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
from raycg.cv.tica import ReferenceTICA, fit_reference_tica

__all__ = [
    "FEATURE_KINDS",
    "ReferenceTICA",
    "feature_dim",
    "featurize",
    "featurize_torch",
    "fit_reference_tica",
    "pair_distances",
    "pair_distances_torch",
    "pair_indices",
    "pseudo_dihedrals",
    "pseudo_dihedrals_torch",
]
