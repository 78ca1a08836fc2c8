"""Per-metric statistics over trials grouped by a config column (default the energy weight).

:func:`summarize` is the building block for one metric (README: ``summarize(df, metric,
group=..., baseline=...)``); :func:`raycg.stats.analyze_study` is the whole study with the primary
metric, families of corrections and the verdict. Directions, labels and units come from
:mod:`raycg.evaluate.metric_table` only.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from raycg.errors import InputError
from raycg.stats.groups import resolve_baseline, sorted_groups
from raycg.stats.study import correct_family, metric_statistics, set_significant


def summarize(df: pd.DataFrame, metric: str, group: str = "energy_weight", baseline: Any = None, *,
              pair_by: str | None = "seed", alpha: float = 0.05) -> dict[str, pd.DataFrame]:
    """Statistics of ``df[metric]`` grouped by ``df[group]``; baseline defaults to the smallest group.

    Returns DataFrames ``descriptives`` (n, n_missing, mean, SD, Student-t 95% CI of the mean),
    ``paired`` (each group vs the baseline over seeds present in both: exact sign-flip p and its
    Bonferroni 1 − α/(groups − 1) interval, paired t, Wilcoxon signed-rank, d_z, g_z, rank-biserial,
    dropped pairs; empty without a ``pair_by`` column),
    ``comparisons`` (unpaired: Welch, Mann–Whitney, Hedges' g, Cliff's δ), ``omnibus`` (Friedman,
    Kruskal–Wallis) and ``trend`` (Spearman). ``*_p_holm``: Holm across the groups of this metric
    only; ``significant``: corrected sign-flip p (Welch's in ``comparisons``) <= ``alpha``.
    Rows with a non-finite metric (failed trials) count as missing.
    """
    for col in (metric, group):
        if col not in df.columns:
            raise InputError(f"no column {col!r} in the trial table (columns: {', '.join(map(str, df.columns))})")
    groups = sorted_groups(df[group].dropna().tolist())
    if not groups:
        raise InputError(f"no trials with a value for {group!r}")
    base = resolve_baseline(groups, baseline)
    pair = pair_by if pair_by in df.columns and df[pair_by].notna().any() else None
    ms = metric_statistics(df, metric, group, groups, base, pair, "exploratory", alpha, None,
                           alpha / max(len(groups) - 1, 1))
    correct_family([ms], "Holm across the groups of this metric")
    set_significant(ms.paired, "signflip", alpha)
    set_significant(ms.unpaired, "welch", alpha)
    return {"descriptives": ms.descriptives, "paired": ms.paired, "comparisons": ms.unpaired,
            "omnibus": ms.omnibus, "trend": ms.trend}
