import numpy as np

from raycg.evaluate.projection import project

from .evaluate_helpers import replicas_of


def test_projection_of_a_frame_does_not_depend_on_its_batch(reference):
    """The same frame gets bit-identical TIC coordinates alone, in one replica, or in the whole
    reference (a BLAS product rounds differently by batch shape; issue 16)."""
    ds, tica, _ = reference
    whole = project(tica, ds.coords, 2)
    parts = np.concatenate([project(tica, r, 2) for r in replicas_of(ds)])
    assert np.array_equal(whole, parts)
    odd = np.concatenate([project(tica, ds.coords[s : s + 7], 2) for s in range(0, 700, 7)])
    assert np.array_equal(whole[:700], odd)
    singles = np.concatenate([project(tica, ds.coords[i : i + 1], 2) for i in range(50)])
    assert np.array_equal(whole[:50], singles)
    np.testing.assert_allclose(whole, tica.transform(ds.coords, 2), rtol=0, atol=1e-10)
