"""Per-metric statistics over trials grouped by a config column (default the energy weight).

:func:`summarize` returns DataFrames: ``descriptives`` (n, mean, SD, bootstrap 95% CI),
``comparisons`` (each group vs the baseline: Welch's t, Mann–Whitney U, permutation test, all
Holm-corrected across the groups — columns ``*_p_holm`` — with Hedges' g and Cliff's δ),
``omnibus`` (Kruskal–Wallis over all groups), ``trend`` (Spearman ρ of metric vs group value)
and ``power`` (seeds per group needed to detect the observed g at α = 0.05 with 80 % power).
A comparison is ``significant`` only when its Holm-corrected p of the primary test is <= α.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from raycg.errors import InputError
from raycg.stats.comparisons import TEST_NAMES, TESTS, holm, pairwise_tests
from raycg.stats.power import power_two_sample, seeds_for_power

#: Direction of a metric: "lower" (is better), "higher" (is better) or None (no preference).
_DIRECTION_PATTERNS: tuple[tuple[str, str | None], ...] = (
    (r"(^|_)(kl|js|jsd|w1|wasserstein|mse|rmse|mae)(_|$)", "lower"),
    (r"(error|_err$|abs_diff|log_ratio_abs|deviation|blown|blowup|loss|trapped|outside)", "lower"),
    (r"(coverage|transitions|frames_per_s|accuracy)", "higher"),
)

_LABELS: dict[str, str] = {
    "kl_ref_model": "KL(ref‖model)",
    "kl_model_ref": "KL(model‖ref)",
    "js": "JS divergence",
    "js_divergence": "JS divergence",
    "jsd": "JS divergence",
    "w1": "W1 (TIC space)",
    "wasserstein": "W1 (TIC space)",
    "wasserstein_1": "W1 (TIC space)",
    "wasserstein_tic": "W1 (TIC space)",
    "fes_mse": "FES MSE ((kcal/mol)²)",
    "fes_mse_aligned": "FES MSE, aligned ((kcal/mol)²)",
    "coverage": "coverage",
    "coverage_weighted": "coverage (weighted)",
    "folded_fraction_abs_error": "|folded fraction error|",
    "transitions_per_replica_mean": "transitions per replica",
    "folding_transitions_per_replica_mean": "folding transitions per replica",
    "folding_transition_rate_log_ratio_abs": "|ln folding-rate ratio|",
    "deepest_well_excess": "deepest-well excess population",
    "trapped_fraction_mean": "trapped fraction",
    "blown_up_fraction": "blown-up replica fraction",
}

#: Metrics shown first (and in the CLI verdict) when present, in this order.
HEADLINE_METRICS = ("kl_ref_model", "kl_model_ref", "js_divergence", "js", "w1", "fes_mse", "coverage",
                    "folded_fraction_abs_error", "transitions_per_replica_mean", "deepest_well_excess",
                    "trapped_fraction_mean", "blown_up_fraction")


def default_direction(metric: str) -> str | None:
    """Guess a metric's direction from its name (KL/JS/W1/MSE/errors: lower is better)."""
    name = metric.lower()
    for pattern, direction in _DIRECTION_PATTERNS:
        if re.search(pattern, name):
            return direction
    return None


def metric_label(metric: str) -> str:
    """Human label for a metric name (states the KL direction), falling back to the name."""
    return _LABELS.get(metric, metric)


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


def _is_numeric(groups: list[Any]) -> bool:
    return all(isinstance(g, (int, float, np.integer, np.floating)) and not isinstance(g, bool)
               for g in groups)


def _bootstrap_ci(x: np.ndarray, confidence: float, n_resamples: int, seed: int) -> tuple[float, float, str]:
    """Bootstrap CI of the mean (BCa, falling back to percentile when BCa is undefined)."""
    if x.size < 2:
        return float("nan"), float("nan"), "none (n<2)"
    if np.ptp(x) == 0:
        return float(x[0]), float(x[0]), "degenerate (all equal)"
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap((x,), np.mean, n_resamples=n_resamples, confidence_level=confidence,
                                  method=method, vectorized=True, rng=np.random.default_rng(seed))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi, method
    return float("nan"), float("nan"), "failed"


def _resolve_baseline(groups: list[Any], baseline: Any) -> Any:
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


def summarize(df: pd.DataFrame, metric: str, group: str = "energy_weight", baseline: Any = None, *,
              direction: str | None | bool = True, alpha: float = 0.05, primary: str = "welch",
              power: float = 0.8, confidence: float = 0.95, n_resamples: int = 9999,
              seed: int = 0) -> dict[str, pd.DataFrame]:
    """Statistics of ``df[metric]`` grouped by ``df[group]``; baseline defaults to the smallest group.

    ``direction``: "lower"/"higher" (is better), None, or True to guess from the metric name.
    Rows with a non-finite metric (failed trials) are left out and counted as ``n_missing``.
    ``primary`` ("welch", "mwu" or "perm") decides ``significant`` (Holm-corrected p <= ``alpha``).
    Bootstrap and permutation resampling are seeded with ``seed``.
    """
    for col in (metric, group):
        if col not in df.columns:
            raise InputError(f"no column {col!r} in the trial table (columns: {', '.join(map(str, df.columns))})")
    if primary not in TESTS:
        raise InputError(f"primary test {primary!r} unknown; use one of {list(TESTS)}")
    if direction is True:
        direction = default_direction(metric)
    if direction not in (None, "lower", "higher"):
        raise InputError(f"direction {direction!r} for {metric!r} unknown; use 'lower', 'higher' or None")
    sub = df[[group, metric]].copy()
    sub = sub[sub[group].notna()]
    values = pd.to_numeric(sub[metric], errors="coerce").to_numpy(dtype=float)
    groups = sorted_groups(sub[group].tolist())
    if not groups:
        raise InputError(f"no trials with a value for {group!r}")
    base = _resolve_baseline(groups, baseline)
    glist = sub[group].tolist()
    data: dict[Any, np.ndarray] = {}
    n_rows: dict[Any, int] = {}
    for g in groups:
        v = values[np.array([x == g for x in glist])]
        n_rows[g] = v.size
        data[g] = v[np.isfinite(v)]

    desc = []
    for i, g in enumerate(groups):
        x = data[g]
        lo, hi, how = _bootstrap_ci(x, confidence, n_resamples, seed + i)
        n = x.size
        desc.append({
            "metric": metric, "group": g, "n": n, "n_missing": n_rows[g] - n,
            "mean": x.mean() if n else np.nan, "std": x.std(ddof=1) if n > 1 else np.nan,
            "sem": x.std(ddof=1) / math.sqrt(n) if n > 1 else np.nan,
            "median": np.median(x) if n else np.nan, "min": x.min() if n else np.nan,
            "max": x.max() if n else np.nan, "ci_low": lo, "ci_high": hi, "ci_method": how,
        })
    descriptives = pd.DataFrame(desc)

    xb = data[base]
    others = [g for g in groups if g != base]
    rows = []
    for g in others:
        x = data[g]
        row: dict[str, Any] = {"metric": metric, "group": g, "baseline": base, "n": x.size, "n_baseline": xb.size,
                               "mean": x.mean() if x.size else np.nan,
                               "mean_baseline": xb.mean() if xb.size else np.nan}
        if x.size >= 2 and xb.size >= 2:
            row.update({k: float(v) for k, v in pairwise_tests(xb, x, seed=seed, n_resamples=n_resamples).items()})
        else:
            row.update({k: np.nan for k in ("mean_diff", "welch_t", "welch_df", "welch_p", "mwu_U", "mwu_p",
                                            "perm_p", "hedges_g", "cliffs_delta")})
            row["mean_diff"] = row["mean"] - row["mean_baseline"]
        rows.append(row)
    cols = ["metric", "group", "baseline", "n", "n_baseline", "mean", "mean_baseline", "mean_diff", "rel_diff",
            "welch_t", "welch_df", "welch_p", "welch_p_holm", "mwu_U", "mwu_p", "mwu_p_holm", "perm_p",
            "perm_p_holm", "hedges_g", "cliffs_delta", "direction", "better", "primary_test", "alpha",
            "significant"]
    comparisons = pd.DataFrame(rows).reindex(columns=cols)
    if rows:
        for t in TESTS:
            comparisons[f"{t}_p_holm"] = holm(comparisons[f"{t}_p"].to_numpy(dtype=float))
        mb = comparisons["mean_baseline"].to_numpy(dtype=float)
        one_sign = xb.size > 0 and (bool(np.all(xb > 0)) or bool(np.all(xb < 0)))  # else % is meaningless
        with np.errstate(divide="ignore", invalid="ignore"):
            comparisons["rel_diff"] = np.where((mb != 0) & one_sign, comparisons["mean_diff"] / np.abs(mb), np.nan)
        d = comparisons["mean_diff"].to_numpy(dtype=float)
        better = np.sign(-d) if direction == "lower" else np.sign(d) if direction == "higher" else np.full_like(d, np.nan)
        comparisons["better"] = pd.array([None if not np.isfinite(b) or b == 0 else bool(b > 0) for b in better],
                                         dtype="boolean")
        comparisons["significant"] = comparisons[f"{primary}_p_holm"].to_numpy(dtype=float) <= alpha
    comparisons["direction"] = direction
    comparisons["primary_test"] = primary
    comparisons["alpha"] = alpha

    present = [data[g] for g in groups if data[g].size > 0]
    kw_stat = kw_p = np.nan
    if len(present) >= 2 and np.ptp(np.concatenate(present)) > 0:
        kw = stats.kruskal(*present)
        kw_stat, kw_p = float(kw.statistic), float(kw.pvalue)
    omnibus = pd.DataFrame([{"metric": metric, "test": "Kruskal–Wallis", "statistic": kw_stat, "p": kw_p,
                             "n_groups": len(present), "n_total": int(sum(x.size for x in present))}])

    rho = rho_p = np.nan
    n_trend = 0
    if _is_numeric(groups):
        gx = np.concatenate([np.full(data[g].size, float(g)) for g in groups])
        vy = np.concatenate([data[g] for g in groups])
        n_trend = vy.size
        if n_trend >= 3 and np.ptp(gx) > 0 and np.ptp(vy) > 0:
            sp = stats.spearmanr(gx, vy)
            rho, rho_p = float(sp.statistic), float(sp.pvalue)
    trend = pd.DataFrame([{"metric": metric, "test": "Spearman", "group": group, "rho": rho, "p": rho_p,
                           "n": n_trend}])

    k = max(len(others), 1)
    prow = []
    for _, r in comparisons.iterrows():
        g_eff = float(r["hedges_g"])
        n_now = int(min(r["n"], r["n_baseline"]))
        prow.append({
            "metric": metric, "group": r["group"], "hedges_g": g_eff, "n_per_group": n_now,
            "power_at_n": float(power_two_sample(g_eff, n_now, alpha)) if n_now >= 2 and np.isfinite(g_eff) else np.nan,
            "target_power": power, "alpha": alpha,
            "seeds_needed": seeds_for_power(g_eff, power, alpha),
            "seeds_needed_bonferroni": seeds_for_power(g_eff, power, alpha / k),
        })
    power_df = pd.DataFrame(prow, columns=["metric", "group", "hedges_g", "n_per_group", "power_at_n",
                                           "target_power", "alpha", "seeds_needed", "seeds_needed_bonferroni"])
    return {"descriptives": descriptives, "comparisons": comparisons, "omnibus": omnibus, "trend": trend,
            "power": power_df}


def summarize_all(df: pd.DataFrame, metrics: Iterable[str], group: str = "energy_weight", baseline: Any = None, *,
                  directions: Mapping[str, str | None] | None = None, **kwargs: Any) -> dict[str, pd.DataFrame]:
    """:func:`summarize` for each metric, concatenated (a ``metric`` column tells them apart).

    Holm's correction is applied per metric across groups, not across metrics.
    """
    directions = dict(directions or {})
    parts: dict[str, list[pd.DataFrame]] = {}
    for m in metrics:
        res = summarize(df, m, group, baseline, direction=directions.get(m, True), **kwargs)
        for key, frame in res.items():
            parts.setdefault(key, []).append(frame)
    if not parts:
        raise InputError("no metrics to summarise")
    return {key: pd.concat([f for f in frames if not f.empty] or frames[:1], ignore_index=True)
            for key, frames in parts.items()}


def summary_table(results: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """One flat row per (metric, group): descriptives + comparison vs baseline + power + omnibus/trend."""
    desc = results["descriptives"]
    comp = results["comparisons"].drop(columns=["n", "mean"])
    pw = results["power"].drop(columns=["hedges_g", "alpha"])
    out = desc.merge(comp, on=["metric", "group"], how="left").merge(pw, on=["metric", "group"], how="left")
    om = results["omnibus"][["metric", "statistic", "p"]].rename(columns={"statistic": "kruskal_H", "p": "kruskal_p"})
    tr = results["trend"][["metric", "rho", "p"]].rename(columns={"rho": "spearman_rho", "p": "spearman_p"})
    return out.merge(om, on="metric", how="left").merge(tr, on="metric", how="left")


def _fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a" if x is None or math.isnan(x) else ("∞" if x > 0 else "-∞")
    return f"{x:.{digits}g}"


_SHORT = {"welch": "Welch", "mwu": "MWU", "perm": "perm."}


def _fmt_p(p: float, eq: bool = True) -> str:
    """'=0.031' / '<0.001' (with ``eq``) or '0.031' / '<0.001'."""
    if p is None or not math.isfinite(p):
        return "=n/a" if eq else "n/a"
    if p < 0.001:
        return "<0.001"
    return f"={p:.3f}" if eq else f"{p:.3f}"


def _fmt_seeds(n: float) -> str:
    if not math.isfinite(n):
        return "n/a" if math.isnan(n) else "more than 100000"
    return str(int(n))


def verdict(results: Mapping[str, pd.DataFrame], metric: str | None = None, *, label: str | None = None,
            symbol: str | None = None) -> str:
    """Plain-language verdict for one metric of :func:`summarize` / :func:`summarize_all` output.

    One line per group vs the baseline (difference, direction, Holm-corrected p of the primary test,
    significant or not, effect sizes, seeds needed for 80 % power), then Kruskal–Wallis and Spearman.
    """
    comp = results["comparisons"]
    metrics = list(dict.fromkeys(comp["metric"].tolist() + results["descriptives"]["metric"].tolist()))
    if metric is None:
        if len(metrics) != 1:
            return "\n".join(verdict(results, m, symbol=symbol) for m in metrics)
        metric = metrics[0]
    c = comp[comp["metric"] == metric]
    d = results["descriptives"][results["descriptives"]["metric"] == metric]
    pw = results["power"][results["power"]["metric"] == metric].set_index("group")
    om = results["omnibus"][results["omnibus"]["metric"] == metric]
    tr = results["trend"][results["trend"]["metric"] == metric]
    sym = symbol or group_symbol(str(tr["group"].iloc[0]) if len(tr) else "group")
    label = label or metric_label(metric)
    if c.empty:
        base_n = int(d["n"].iloc[0]) if len(d) else 0
        only = f"{sym}={format_group(d['group'].iloc[0])}" if len(d) else sym
        return f"{label}: only one group ({only}) with n={base_n}; nothing to compare."
    direction = c["direction"].iloc[0]
    primary = c["primary_test"].iloc[0]
    alpha = float(c["alpha"].iloc[0])
    dir_text = {"lower": "lower is better", "higher": "higher is better"}.get(direction, "no preferred direction")
    base = c["baseline"].iloc[0]
    lines = [f"{label} ({dir_text}); baseline {sym}={format_group(base)}; significance = Holm-corrected "
             f"{TEST_NAMES[primary]} p <= {alpha:g}:"]
    for _, r in c.iterrows():
        diff = float(r["mean_diff"])
        head = f"  {sym}={format_group(r['group'])} vs {format_group(base)}: {label} "
        if not math.isfinite(diff):
            lines.append(head + f"not comparable (n={int(r['n'])} vs {int(r['n_baseline'])}).")
            continue
        if diff == 0:
            what = "unchanged"
        else:
            what = f"{'lower' if diff < 0 else 'higher'} by {_fmt(abs(diff))}"
            if math.isfinite(r["rel_diff"]):
                pct = abs(r["rel_diff"]) * 100
                what += f" ({pct:.0f}%)" if pct >= 10 else f" ({pct:.2g}%)"
            if pd.notna(r["better"]):
                what += ", better" if r["better"] else ", worse"
        p_holm = float(r[f"{primary}_p_holm"])
        if not math.isfinite(p_holm):
            if min(int(r["n"]), int(r["n_baseline"])) < 2:
                sig = "not testable (n<2)"
            else:
                sig = "not testable (no variance: every seed gave the same value)"
        else:
            sig = "significant" if r["significant"] else "not significant"
        others = ", ".join(f"{_SHORT[k]} {_fmt_p(float(r[f'{k}_p_holm']), eq=False)}" for k in TESTS if k != primary)
        pw_txt = ""
        if not math.isfinite(float(r["hedges_g"])):
            pw_txt = ""
        elif r["group"] in pw.index and float(r["hedges_g"]) == 0:
            pw_txt = "; no difference observed, so no power statement"
        elif r["group"] in pw.index:
            need = float(pw.loc[r["group"], "seeds_needed"])
            pw_txt = f"; 80% power for this g at α={alpha:g} needs {_fmt_seeds(need)} seeds per weight"
        lines.append(head + f"{what}, Holm p{_fmt_p(p_holm)}, {sig} "
                     f"(n={int(r['n'])} vs {int(r['n_baseline'])}; Holm p {others}; "
                     f"Hedges' g={_fmt(float(r['hedges_g']), 2)}, Cliff's δ={_fmt(float(r['cliffs_delta']), 2)}"
                     f"{pw_txt}).")
    if len(om) and math.isfinite(float(om["p"].iloc[0])):
        lines.append(f"  across all weights: Kruskal–Wallis H={_fmt(float(om['statistic'].iloc[0]))}, "
                     f"p{_fmt_p(float(om['p'].iloc[0]))}.")
    if len(tr) and math.isfinite(float(tr["rho"].iloc[0])):
        lines.append(f"  trend: Spearman ρ={_fmt(float(tr['rho'].iloc[0]), 2)} of {label} vs {sym} "
                     f"(p{_fmt_p(float(tr['p'].iloc[0]))}, uncorrected).")
    return "\n".join(lines)
