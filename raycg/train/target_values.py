"""``EnergyTargets``: per-frame energy-matching targets and the record of how they were made.

Its own module so that the target builders (:mod:`raycg.train.targets`, :mod:`raycg.train.correction`)
share it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class EnergyTargets:
    """Free energy of every frame (kcal/mol, float64 [F]) and how it was made."""

    free_energy: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
