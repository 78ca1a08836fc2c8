import pytest

from raycg._testing.datasets import two_state_dataset
from raycg.cv import fit_reference_tica


@pytest.fixture(scope="session")
def reference():
    """Two-state reference (folded = CLN025 native Cα trace, unfolded = extended), its TICA and states."""
    ds, states = two_state_dataset(n_traj=8, length=1500, p_switch=0.005, seed=11, name="ref")
    return ds, fit_reference_tica(ds, lag=20), states
