"""Helpers for the evaluate tests."""

import numpy as np


def replicas_of(ds):
    return [np.asarray(ds.coords[ds.trajectory_slice(t)]) for t in range(ds.n_trajectories)]
