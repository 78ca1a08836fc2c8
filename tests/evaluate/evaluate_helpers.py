"""Helpers for the evaluate tests."""

import numpy as np

from raycg._testing.datasets import two_state_coords, two_state_states
from raycg.evaluate import ModelSamples


def replicas_of(ds):
    return [np.asarray(ds.coords[ds.trajectory_slice(t)]) for t in range(ds.n_trajectories)]


def two_state_replicas(n_rep, length, p_switch, seed, start=None):
    """Coordinates ``[R, T, 10, 3]`` and states ``[R, T]`` of the two-state test system (0 = folded);
    ``start`` flips whole rows so that every replica starts in that state."""
    rng = np.random.default_rng(seed)
    states = two_state_states(n_rep, length, p_switch, rng)
    if start is not None:
        states = (states + (states[:, :1] != start)) % 2
    return two_state_coords(states, 0.4, rng).reshape(n_rep, length, 10, 3), states


def two_state_model(n_rep, length, p_switch, seed, start=None, dt_frame_ps=1.0):
    x, _ = two_state_replicas(n_rep, length, p_switch, seed, start)
    return ModelSamples.from_arrays(list(x), dt_frame_ps=dt_frame_ps)
