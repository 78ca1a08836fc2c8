"""Per-metric tables of a study grouped by a config column and paired by seed.

:func:`metric_data` collects one metric's values per group (finite values only; failed trials count
as missing) and, when a pairing column is given, a seed × group table. The other functions turn it
into DataFrames: descriptives, paired tests vs the baseline, unpaired tests, equivalence, omnibus
and trend. Multiple-comparison corrections are applied by the caller (:mod:`raycg.stats.study`),
which knows the families.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from raycg.stats.comparisons import unpaired_tests
from raycg.stats.intervals import T_INTERVAL, t_interval
from raycg.stats.paired import friedman, paired_tests, tost_paired
from raycg.stats.signflip import signflip_interval, signflip_p, signflip_tost, smallest_p

_PAIRED_KEYS = ("mean_diff", "sd_diff", "diff_ci_low", "diff_ci_high", "t", "df", "t_p", "wilcoxon_W",
                "wilcoxon_p", "d_z", "g_z", "rank_biserial")
#: Sign-flip columns: p, and the interval inverted from it at level ``signflip_ci_level`` (NaN bounds and
#: ``signflip_ci_finite`` False where the test cannot reach that level with these pairs: (−∞, ∞)).
_SIGNFLIP_KEYS = ("signflip_p", "signflip_ci_level", "signflip_ci_low", "signflip_ci_high", "signflip_ci_finite")
#: ``diff_ci_method``: the Student-t interval of the paired difference is descriptive (assumes normal differences).
DIFF_T_INTERVAL = "Student t (assumes normal differences)"
PAIRED_COLUMNS = ("metric", "group", "baseline", "n_pairs", "n_dropped", "dropped", *_PAIRED_KEYS,
                  "diff_ci_method", *_SIGNFLIP_KEYS)
_UNPAIRED_KEYS = ("mean_diff", "welch_t", "welch_df", "welch_p", "mwu_U", "mwu_p", "hedges_g", "cliffs_delta")


@dataclass
class MetricData:
    """One metric's values: ``values[g]`` finite values of group g, ``n_rows[g]`` its trials, and
    ``pivot`` (index: pairing value, columns: groups; NaN where a trial failed or is absent)."""

    metric: str
    groups: list[Any]
    baseline: Any
    values: dict[Any, np.ndarray]
    n_rows: dict[Any, int]
    pivot: pd.DataFrame | None
    duplicate_cells: int = 0

    @property
    def others(self) -> list[Any]:
        return [g for g in self.groups if g != self.baseline]


def metric_data(df: pd.DataFrame, metric: str, group: str, groups: list[Any], baseline: Any,
                pair_by: str | None) -> MetricData:
    """Values of ``df[metric]`` per group (``groups`` in order) and, with ``pair_by``, per pair.

    Several trials in one (pair, group) cell (other config columns pooled) are averaged; their
    number is ``duplicate_cells``.
    """
    sub = df[df[group].notna()]
    vals = pd.to_numeric(sub[metric], errors="coerce").astype(float)
    keys = sub[group].tolist()
    values, n_rows = {}, {}
    for g in groups:
        v = vals[[k == g for k in keys]].to_numpy()
        n_rows[g] = v.size
        values[g] = v[np.isfinite(v)]
    pivot, dup = None, 0
    if pair_by is not None:
        cells = pd.DataFrame({"pair": sub[pair_by].to_numpy(), "group": [groups.index(k) for k in keys],
                              "value": vals.where(np.isfinite(vals)).to_numpy()})
        cells = cells[cells["pair"].notna()]
        dup = int((cells.dropna().groupby(["pair", "group"]).size() > 1).sum())
        pivot = cells.pivot_table(index="pair", columns="group", values="value", aggfunc="mean", dropna=False)
        pivot = pivot.reindex(columns=range(len(groups))).set_axis(groups, axis=1)
        pivot = pivot.reindex(sorted(cells["pair"].unique(), key=_sort_key))
    return MetricData(metric, groups, baseline, values, n_rows, pivot, dup)


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, float(v)) if isinstance(v, (int, float, np.integer, np.floating)) else (1, str(v))


def descriptives(md: MetricData, confidence: float = 0.95) -> pd.DataFrame:
    """Per group: n, n_missing, mean, SD, SEM, median, min, max and the Student-t CI of the mean."""
    rows = []
    for g in md.groups:
        x = md.values[g]
        n = x.size
        lo, hi = t_interval(x, confidence) if n else (np.nan, np.nan)
        rows.append({"metric": md.metric, "group": g, "n": n, "n_missing": md.n_rows[g] - n,
                     "mean": x.mean() if n else np.nan, "std": x.std(ddof=1) if n > 1 else np.nan,
                     "sem": x.std(ddof=1) / math.sqrt(n) if n > 1 else np.nan,
                     "median": np.median(x) if n else np.nan, "min": x.min() if n else np.nan,
                     "max": x.max() if n else np.nan, "ci_low": float(lo), "ci_high": float(hi),
                     "ci_method": T_INTERVAL if n > 1 else "none (n<2)"})
    return pd.DataFrame(rows)


def _pair(md: MetricData, g: Any) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Baseline and group values of complete pairs, and the pairing values of dropped pairs."""
    a, b = md.pivot[md.baseline].to_numpy(float), md.pivot[g].to_numpy(float)
    both = np.isfinite(a) & np.isfinite(b)
    one = np.isfinite(a) ^ np.isfinite(b)
    return a[both], b[both], md.pivot.index[one].tolist()


def paired_table(md: MetricData, confidence: float = 0.95, ci_alpha: float = 0.05) -> pd.DataFrame:
    """Each group vs the baseline over complete pairs: sign-flip p and its 1 − ``ci_alpha`` interval,
    paired t (with the Student-t ``confidence`` interval), Wilcoxon, d_z, g_z, rank-biserial.

    A pair is complete when both trials have a finite value; pairs with one partner missing are
    dropped and listed (``n_dropped``, ``dropped``).
    """
    rows = []
    for g in md.others:
        a, b, dropped = _pair(md, g)
        row: dict[str, Any] = {"metric": md.metric, "group": g, "baseline": md.baseline, "n_pairs": a.size,
                               "n_dropped": len(dropped), "dropped": ", ".join(map(str, dropped))}
        if a.size >= 2:
            row.update({k: float(v) for k, v in paired_tests(a, b, confidence).items() if k in _PAIRED_KEYS})
        else:
            row.update(dict.fromkeys(_PAIRED_KEYS, np.nan))
            row["mean_diff"] = float(np.mean(b - a)) if a.size else np.nan
        row["diff_ci_method"] = DIFF_T_INTERVAL
        row.update(_signflip_row(b - a, ci_alpha))
        rows.append(row)
    return pd.DataFrame(rows, columns=list(PAIRED_COLUMNS))


def _signflip_row(d: np.ndarray, ci_alpha: float) -> dict[str, Any]:
    lo, hi = signflip_interval(d, ci_alpha)
    return {"signflip_p": float(signflip_p(d)), "signflip_ci_level": 1.0 - ci_alpha, "signflip_ci_low": float(lo),
            "signflip_ci_high": float(hi), "signflip_ci_finite": bool(smallest_p(d.size) <= ci_alpha)}


def unpaired_table(md: MetricData) -> pd.DataFrame:
    """Each group vs the baseline as independent samples: Welch, Mann–Whitney, Hedges' g, Cliff's δ."""
    xb = md.values[md.baseline]
    rows = []
    for g in md.others:
        x = md.values[g]
        row: dict[str, Any] = {"metric": md.metric, "group": g, "baseline": md.baseline, "n": x.size,
                               "n_baseline": xb.size}
        if x.size >= 2 and xb.size >= 2:
            row.update({k: float(v) for k, v in unpaired_tests(xb, x).items()})
        else:
            row.update(dict.fromkeys(_UNPAIRED_KEYS, np.nan))
            row["mean_diff"] = float(x.mean() - xb.mean()) if x.size and xb.size else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=["metric", "group", "baseline", "n", "n_baseline", *_UNPAIRED_KEYS])


def equivalence_table(md: MetricData, margin: float, alpha: float, test: str = "sign-flip") -> pd.DataFrame:
    """Paired TOST of each group vs the baseline at ±``margin`` with the (1 − 2α) interval of the same
    test: two one-sided sign-flip tests (``test`` "sign-flip") or paired t-tests ("paired-t")."""
    rows = []
    for g in md.others:
        a, b, _ = _pair(md, g)
        d, nan = b - a, dict.fromkeys(("p_lower", "p_upper", "p"), np.nan)
        if test == "sign-flip":
            r = signflip_tost(d, margin) if a.size >= 2 else nan
            lo, hi = signflip_interval(d, 2.0 * alpha)
        else:
            r = tost_paired(a, b, margin) if a.size >= 2 else nan
            lo, hi = t_interval(d, 1.0 - 2.0 * alpha) if a.size >= 2 else (np.nan, np.nan)
        rows.append({"metric": md.metric, "group": g, "baseline": md.baseline, "n_pairs": a.size, "margin": margin,
                     "eq_ci_level": 1.0 - 2.0 * alpha, "eq_ci_method": test, "eq_ci_low": float(lo),
                     "eq_ci_high": float(hi),
                     "tost_p_lower": float(r["p_lower"]), "tost_p_upper": float(r["p_upper"]),
                     "tost_p": float(r["p"])})
    return pd.DataFrame(rows)


def omnibus(md: MetricData) -> pd.DataFrame:
    """Friedman over seeds complete in every group (paired) and Kruskal–Wallis over all values."""
    rows = []
    if md.pivot is not None:
        blocks = md.pivot.to_numpy(float)
        blocks = blocks[np.isfinite(blocks).all(axis=1)]
        chi2, p = friedman(blocks)
        rows.append({"metric": md.metric, "test": "Friedman", "statistic": chi2, "p": p,
                     "n_groups": len(md.groups), "n": int(blocks.shape[0]), "unit": "complete seeds"})
    present = [md.values[g] for g in md.groups if md.values[g].size > 0]
    h = p = np.nan
    if len(present) >= 2 and np.ptp(np.concatenate(present)) > 0:
        kw = stats.kruskal(*present)
        h, p = float(kw.statistic), float(kw.pvalue)
    rows.append({"metric": md.metric, "test": "Kruskal–Wallis", "statistic": h, "p": p,
                 "n_groups": len(present), "n": int(sum(x.size for x in present)), "unit": "trials"})
    return pd.DataFrame(rows)


def trend(md: MetricData) -> pd.DataFrame:
    """Spearman ρ of metric vs group value (numeric groups only; descriptive, uncorrected)."""
    rho = p = np.nan
    n = 0
    if all(isinstance(g, (int, float, np.integer, np.floating)) and not isinstance(g, bool) for g in md.groups):
        gx = np.concatenate([np.full(md.values[g].size, float(g)) for g in md.groups])
        vy = np.concatenate([md.values[g] for g in md.groups])
        n = vy.size
        if n >= 3 and np.ptp(gx) > 0 and np.ptp(vy) > 0:
            sp = stats.spearmanr(gx, vy)
            rho, p = float(sp.statistic), float(sp.pvalue)
    return pd.DataFrame([{"metric": md.metric, "test": "Spearman", "rho": rho, "p": p, "n": n}])
