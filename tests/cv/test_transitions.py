"""Two-threshold (hysteresis) transition counting shared by synth, evaluate and the dataset report."""

import numpy as np
import pytest

from raycg.cv import count_two_state_transitions, count_two_state_transitions_per_trajectory
from raycg.errors import InputError


def test_hand_made_series():
    # H(4) -> L(0.5) -> recrossing inside the band (no event) -> H(3.5) -> L(0.9) -> H(3.1)
    r = [4.0, 2.0, 0.5, 1.5, 2.5, 1.2, 0.8, 3.5, 3.2, 0.9, 3.1]
    assert count_two_state_transitions(r, 1.0, 3.0) == (2, 2)
    # starting low: the first commitment is no event
    assert count_two_state_transitions([0.5, 3.5, 0.5, 3.5], 1.0, 3.0) == (1, 2)
    assert count_two_state_transitions([0.5, 2.0, 0.6], 1.0, 3.0) == (0, 0)  # never committed high
    assert count_two_state_transitions([], 1.0, 3.0) == (0, 0)
    # thresholds are strict; NaN frames keep the committed state
    assert count_two_state_transitions([4.0, 1.0, 3.0, 0.99], 1.0, 3.0) == (1, 0)
    assert count_two_state_transitions([4.0, np.nan, 0.5, np.nan, 4.0], 1.0, 3.0) == (1, 1)


def test_matches_a_plain_loop_on_random_series():
    def loop(r, lo, hi):
        state, n_lo, n_hi = 0, 0, 0
        for x in r:
            new = 1 if x < lo else (-1 if x > hi else state)
            n_lo += state == -1 and new == 1
            n_hi += state == 1 and new == -1
            state = new
        return n_lo, n_hi

    rng = np.random.default_rng(0)
    for _ in range(300):
        r = rng.uniform(0.0, 4.0, rng.integers(0, 40))
        assert count_two_state_transitions(r, 1.0, 3.0) == loop(r, 1.0, 3.0)


def test_per_trajectory_state_does_not_carry_across_boundaries():
    series = np.array([4.0, 0.5, 4.0,   0.5, 0.5,   4.0, 2.0, 0.5])
    lo, hi = count_two_state_transitions_per_trajectory(series, [0, 3, 5, 5, 8], 1.0, 3.0)
    # trajectory 2 starts low right after trajectory 1 ended high: no event; the empty one has none
    assert lo.tolist() == [1, 0, 0, 1] and hi.tolist() == [1, 0, 0, 0]
    assert lo.dtype == np.int64


@pytest.mark.parametrize("low, high", [(3.0, 1.0), (1.0, 1.0), (float("nan"), 3.0)])
def test_bad_thresholds_are_one_line_errors(low, high):
    with pytest.raises(InputError, match="threshold"):
        count_two_state_transitions([1.0, 2.0], low, high)


def test_bad_shapes_and_offsets_are_one_line_errors():
    with pytest.raises(InputError, match="1-D"):
        count_two_state_transitions(np.zeros((3, 2)), 1.0, 3.0)
    with pytest.raises(InputError, match="offsets"):
        count_two_state_transitions_per_trajectory(np.zeros(5), [0, 3], 1.0, 3.0)
    with pytest.raises(InputError, match="offsets"):
        count_two_state_transitions_per_trajectory(np.zeros(5), [0, 4, 2, 5], 1.0, 3.0)
