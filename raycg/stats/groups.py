"""Group values (energy weights): ordering, display and the baseline lookup."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from raycg.errors import InputError


def format_group(value: Any) -> str:
    """Short text for a group value: 1.0 -> '1', 0.1 -> '0.1'."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        return f"{value:g}"
    return str(value)


def group_symbol(group: str) -> str:
    """'w_E' for the energy weight, else the column name."""
    return "w_E" if group in ("energy_weight", "train.energy_weight", "loss.energy_weight") else group


def sorted_groups(values: Iterable[Any]) -> list[Any]:
    """Distinct values in ascending order (by text when they do not compare)."""
    vals = list(dict.fromkeys(values))
    try:
        return sorted(vals)
    except TypeError:
        return sorted(vals, key=str)


def resolve_baseline(groups: list[Any], baseline: Any) -> Any:
    """The member of ``groups`` equal to ``baseline`` (numerically or as text); None: the first."""
    if baseline is None:
        return groups[0]
    for g in groups:
        if g == baseline or format_group(g) == format_group(baseline):
            return g
        try:
            if math.isclose(float(g), float(baseline), rel_tol=1e-9, abs_tol=1e-12):
                return g
        except (TypeError, ValueError):
            pass
    raise InputError(f"baseline {baseline!r} is not one of the group values "
                     f"{[format_group(g) for g in groups]}", hint="pick one of them (or omit it for the smallest)")
