"""Missing support and the KL regulariser, for the report.

A model that never visits bins holding reference mass makes KL(ref‖model) a function of the
regulariser ε put into its empty bins. This section shows, per weight, the reference mass in bins
the model never visited (``missed_reference_mass``) and the paired difference vs the baseline of
KL(ref‖model) at every ε the trials report (``raycg.evaluate.parts.KL_SENSITIVITY_EPSILONS`` plus
the default ``kl_epsilon``), so a reader sees how much of a KL difference is ε.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from raycg.evaluate.config import EvalConfig
from raycg.evaluate.parts import KL_SENSITIVITY_EPSILONS, kl_epsilon_name
from raycg.stats import sorted_groups
from raycg.stats.tables import metric_data

MISSED = "missed_reference_mass"
KL = "kl_ref_model"


def kl_columns() -> list[tuple[float, str]]:
    """(ε, column) of every KL(ref‖model) variant, smallest ε first (the default ε's column is ``kl_ref_model``)."""
    default = EvalConfig().kl_epsilon
    cols = [(e, kl_epsilon_name(e)) for e in KL_SENSITIVITY_EPSILONS] + [(default, KL)]
    return sorted(cols)


@dataclass
class PairedShift:
    """Mean paired difference (weight − baseline) of one column over complete seed pairs."""

    column: str
    group: Any
    n_pairs: int
    mean_diff: float


def paired_shifts(table: pd.DataFrame, column: str, group: str, baseline: Any, pair_by: str = "seed"
                  ) -> list[PairedShift]:
    """Mean paired difference of ``column`` for every group vs ``baseline``, over the complete seed pairs
    of :func:`raycg.stats.tables.metric_data` (the pairing the verdict uses)."""
    if column not in table.columns or pair_by not in table.columns:
        return []
    groups = sorted_groups(table[group].dropna().tolist())
    if baseline not in groups:
        return []
    md = metric_data(table, column, group, groups, baseline, pair_by)
    out = []
    for g in md.others:
        d = (md.pivot[g] - md.pivot[baseline]).to_numpy(float)
        d = d[np.isfinite(d)]
        out.append(PairedShift(column, g, int(d.size), float(d.mean()) if d.size else float("nan")))
    return out


def missed_mass_by_group(table: pd.DataFrame, group: str) -> list[tuple[Any, int, float, float, float]]:
    """(group, n, mean, min, max) of the missed reference mass over the trials of each group."""
    if MISSED not in table.columns:
        return []
    groups = sorted_groups(table[group].dropna().tolist())
    md = metric_data(table, MISSED, group, groups, groups[0] if groups else None, None)
    return [(g, int(v.size), float(v.mean()), float(v.min()), float(v.max())) for g, v in md.values.items() if v.size]


def kl_sensitivity(table: pd.DataFrame, group: str, baseline: Any) -> dict[Any, list[tuple[float, float]]]:
    """Per group: [(ε, mean paired Δ of KL(ref‖model) at ε)] for every ε column the trials have."""
    out: dict[Any, list[tuple[float, float]]] = {}
    for eps, col in kl_columns():
        for s in paired_shifts(table, col, group, baseline):
            out.setdefault(s.group, []).append((eps, s.mean_diff))
    return {g: v for g, v in out.items() if len(v) > 1}


def relative_spread(values: Sequence[float]) -> float:
    """(max − min) / |value at the middle ε| of a sensitivity row; NaN when undefined."""
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size < 2:
        return float("nan")
    ref = abs(float(np.median(v)))
    return float((v.max() - v.min()) / ref) if ref > 0 else float("inf")
