"""Dihedral Fourier fits stay bounded where the data leave the series unconstrained."""

from __future__ import annotations

import numpy as np

from raycg.data import load
from raycg.priors import PriorConfig, fit_priors
from raycg.synth import embedded_dataset


def _max_coef(priors) -> float:
    return max(max(np.abs(f.params["cos"]).max(), np.abs(f.params["sin"]).max()) for f in priors.fits["dihedrals"])


def test_narrow_dihedrals_give_bounded_coefficients_with_the_default_ridge():
    ds = load(embedded_dataset())          # Cα dihedrals of a hairpin: narrow, two-state windows
    free = fit_priors(ds, PriorConfig(dihedral_ridge=0.0), progress=False)
    ridge = fit_priors(ds, PriorConfig(), progress=False)
    assert _max_coef(free) > 30.0          # unregularised: ±100 kcal/mol terms that cancel on the data only
    assert _max_coef(ridge) < 10.0
    kt = 0.0019872041 * ds.temperature
    for f in ridge.fits["dihedrals"]:      # and the fit still follows the data within a fraction of k_BT
        assert f.rms_kcal < 0.5 * kt, (f.label, f.rms_kcal)
