"""Basin escape barriers on a known free-energy surface."""

import numpy as np
import pytest

from raycg.evaluate.metrics import find_basins
from raycg.synth.landscape import basin_barriers, basin_saddles


def _double_well(barrier: float, dip: float = 1.0, n: int = 30) -> np.ndarray:
    """F(x, y) with minima 0 (x = 0.25) and ``dip`` (x = 0.75) and a ridge of height ``barrier`` at x = 0.5."""
    x = np.linspace(0, 1, n)[:, None] * np.ones((1, n))
    y = np.linspace(0, 1, n)[None, :] * np.ones((n, 1))
    left = 40 * (x - 0.25) ** 2
    right = dip + 40 * (x - 0.75) ** 2
    ridge = barrier * np.exp(-((x - 0.5) ** 2) / 0.002)
    return np.minimum(left, right) + ridge + 2 * (y - 0.5) ** 2


def test_barriers_of_a_double_well():
    kT = 0.7
    fes = kT * _double_well(barrier=3.0)
    prob = np.exp(-fes / kT)
    labels, fmin = find_basins(fes, prob / prob.sum(), kT)
    assert len(fmin) == 2
    bar = basin_barriers(labels, fes, fmin) / kT
    # the saddle is the ridge top on the grid line y = 0.5: ≈ 3 + 40·0.25² (grid-sampled), minus each minimum
    sad = basin_saddles(labels, fes)
    assert list(sad) == [(0, 1)]
    assert bar[0] == pytest.approx(sad[(0, 1)] / kT - fmin[0] / kT)
    assert bar[1] == pytest.approx(bar[0] - 1.0, abs=0.05)           # the shallower well: 1 kT less
    assert 3.0 < bar[1] < 6.0
    # a lower ridge gives lower barriers; one basin has no barrier
    lower = kT * _double_well(barrier=1.0)
    lab2, fmin2 = find_basins(lower, np.exp(-lower / kT), kT, merge_kT=0.5)
    assert np.all(basin_barriers(lab2, lower, fmin2) < bar)
    one = np.zeros((5, 5))
    assert np.isnan(basin_barriers(np.zeros((5, 5), np.int64), one, np.zeros(1))).all()
