"""Two-state transitions of a scalar collective variable, counted with two thresholds (hysteresis).

One implementation shared by the synthetic reference (``raycg.synth``), the dataset report and the
scoring (``raycg.evaluate``). A frame whose value is below ``low`` commits the trajectory to the *low
core*, above ``high`` to the *high core*; frames in between (and NaN frames) keep the last committed
state (milestoning). A transition is a change of committed state from one core to the other; the
first commitment of a trajectory is not a transition. With the Cα RMSD to native as the series, the
low core is the folded state: entries into the low core are folding events, entries into the high
core unfolding events. Thresholds are strict: a value equal to ``low`` or ``high`` commits nothing.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from raycg.errors import InputError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["count_two_state_transitions", "count_two_state_transitions_per_trajectory"]


def _check_thresholds(low: float, high: float) -> None:
    if not (math.isfinite(low) and math.isfinite(high)):
        raise InputError(f"transition thresholds must be finite numbers, got low={low}, high={high}")
    if not low < high:
        raise InputError(f"transition threshold low ({low}) must be below high ({high})")


def _committed(series: np.ndarray, low: float, high: float) -> np.ndarray:
    """+1 in the low core, -1 in the high core, 0 elsewhere (NaN included)."""
    with np.errstate(invalid="ignore"):
        return np.where(series < low, 1, np.where(series > high, -1, 0)).astype(np.int8)


def count_two_state_transitions_per_trajectory(series: ArrayLike, offsets: ArrayLike, low: float, high: float
                                               ) -> tuple[np.ndarray, np.ndarray]:
    """Per trajectory ``t`` (frames ``series[offsets[t]:offsets[t+1]]``): entries into the low core
    and entries into the high core, as two int64 arrays of length ``len(offsets) - 1``.

    Vectorised over all trajectories; the committed state never carries across a trajectory boundary.
    """
    x = np.asarray(series, dtype=np.float64)
    off = np.asarray(offsets, dtype=np.int64)
    if x.ndim != 1:
        raise InputError(f"transition counting needs a 1-D series, got shape {x.shape}")
    if off.ndim != 1 or len(off) < 1 or off[0] != 0 or off[-1] != len(x) or np.any(np.diff(off) < 0):
        raise InputError(f"trajectory offsets must rise from 0 to the series length {len(x)}")
    _check_thresholds(float(low), float(high))
    n_traj = len(off) - 1
    state = _committed(x, float(low), float(high))
    idx = np.flatnonzero(state)
    s = state[idx]
    traj = np.searchsorted(off, idx, side="right") - 1
    change = (s[1:] != s[:-1]) & (traj[1:] == traj[:-1])
    to_low = change & (s[1:] == 1)
    to_high = change & (s[1:] == -1)
    n_low = np.bincount(traj[1:][to_low], minlength=n_traj)[:n_traj].astype(np.int64)
    n_high = np.bincount(traj[1:][to_high], minlength=n_traj)[:n_traj].astype(np.int64)
    return n_low, n_high


def count_two_state_transitions(series: ArrayLike, low: float, high: float) -> tuple[int, int]:
    """``(n_low_entries, n_high_entries)`` in one time series: committed state changes between the
    low core (``< low``) and the high core (``> high``). For a Cα-RMSD series these are the
    (folding, unfolding) events."""
    x = np.asarray(series, dtype=np.float64)
    lo, hi = count_two_state_transitions_per_trajectory(x, [0, len(x) if x.ndim else 0], low, high)
    return int(lo[0]), int(hi[0])
