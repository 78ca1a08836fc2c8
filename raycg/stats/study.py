"""``analyze_study``: the statistics and the verdict of a study (energy weights × seeds).

Design: the seed fixes the split, the initial weights and the start frames for every weight, so
trials are paired by seed. The **primary test** is the paired t-test of each weight against the
baseline on the **primary metric**, Holm-corrected across the weights; it alone decides the verdict.
Secondary metrics are Holm-corrected across (secondary metrics × weights); exploratory metrics
only across weights and are labelled so. Wilcoxon signed-rank (paired) and Welch / Mann–Whitney
(unpaired) are shown beside it as sensitivity checks and never change the verdict. With an
equivalence margin, a paired TOST (Holm across weights) can conclude "equivalent". A study that is
not converged is "inconclusive" whatever the tests say.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from raycg.errors import InputError
from raycg.evaluate.metric_table import find_metric, metric_label
from raycg.stats import tables as tb
from raycg.stats.comparisons import PAIRED_TESTS, UNPAIRED_TESTS, holm
from raycg.stats.groups import format_group, group_symbol, resolve_baseline, sorted_groups
from raycg.stats.power import detectable_effect, power_t, seeds_for_power

#: Verdict statuses, indexed by the codes of :func:`primary_decisions`.
STATUSES = ("significant improvement", "significant worsening", "equivalent", "no significant difference",
            "inconclusive")
PRIMARY_TEST = "paired t-test"
TARGET_POWER = 0.8


@dataclass
class MetricStatistics:
    """One metric's tables. ``role``: primary | secondary | exploratory; ``family`` says what its
    ``*_p_holm`` columns were corrected across."""

    metric: str
    label: str
    unit: str
    direction: str | None
    role: str
    family: str
    descriptives: pd.DataFrame
    paired: pd.DataFrame
    unpaired: pd.DataFrame
    omnibus: pd.DataFrame
    trend: pd.DataFrame
    equivalence: pd.DataFrame | None = None
    duplicate_cells: int = 0


@dataclass
class PowerStatement:
    """Power of the primary test at the Bonferroni level α/m (Holm's first step; a bound for Holm)."""

    test: str
    alpha: float
    m: int
    alpha_per_test: float
    n: int
    power: float
    mde: float
    mde_units: float
    target_effect_size: float | None
    power_at_target: float
    seeds_needed: float


@dataclass
class VerdictLine:
    metric: str
    group: Any
    baseline: Any
    status: str
    text: str


@dataclass
class StudyStatistics:
    """Everything :func:`analyze_study` computed; ``verdict`` has one line per (primary metric, weight)."""

    group: str
    baseline: Any
    groups: list[Any]
    pair_by: str | None
    design: str
    primary: str
    secondary: list[str]
    exploratory: list[str]
    alpha: float
    equivalence_margin: float | None
    target_effect_size: float | None
    converged: bool
    convergence_reasons: list[str]
    run_longer_factor: float | None
    metrics: dict[str, MetricStatistics]
    power: PowerStatement
    verdict: list[VerdictLine]
    notes: list[str] = field(default_factory=list)

    @property
    def verdict_lines(self) -> list[str]:
        return [v.text for v in self.verdict]

    def table(self) -> pd.DataFrame:
        """One flat row per (metric, group): descriptives, paired and unpaired tests, equivalence."""
        parts = []
        for ms in self.metrics.values():
            t = ms.descriptives.assign(role=ms.role, family=ms.family)
            t = t.merge(ms.paired.drop(columns=["baseline"]), on=["metric", "group"], how="left")
            u = ms.unpaired.drop(columns=["baseline", "n"]).rename(columns={
                "mean_diff": "unpaired_mean_diff", "better": "unpaired_better", "significant": "unpaired_significant"})
            t = t.merge(u, on=["metric", "group"], how="left")
            if ms.equivalence is not None:
                e = ms.equivalence.drop(columns=["baseline", "n_pairs"])
                t = t.merge(e, on=["metric", "group"], how="left")
            parts.append(t)
        return pd.concat(parts, ignore_index=True)


def primary_decisions(p: np.ndarray, better: np.ndarray, alpha: float,
                      tost_p: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The verdict's decision rule, vectorised over studies (last axis: the weights of one study).

    ``p``: primary-test p-values; ``better``: the difference is in the metric's good direction;
    ``tost_p``: equivalence p-values (or None). Holm across the last axis for both families.
    Returns ``p_holm``, ``tost_p_holm`` and ``code`` (index into :data:`STATUSES`).
    """
    p = np.asarray(p, dtype=float)
    p_holm = holm(p, axis=-1)
    eq_holm = holm(np.asarray(tost_p, dtype=float), axis=-1) if tost_p is not None else np.full(p.shape, np.nan)
    sig = p_holm <= alpha
    better = np.asarray(better, dtype=bool)
    code = np.full(p.shape, 4)
    code[np.isfinite(p_holm)] = 3
    code[eq_holm <= alpha] = 2
    code[sig & better] = 0
    code[sig & ~better] = 1
    return {"p_holm": p_holm, "tost_p_holm": eq_holm, "code": code}


def _resolve_design(df: pd.DataFrame, pair_by: str | None, notes: list[str]) -> str | None:
    if pair_by is None:
        return None
    if pair_by not in df.columns or df[pair_by].isna().all():
        notes.append(f"No {pair_by!r} column with values: the design cannot be paired; Welch's t is the "
                     "primary test instead of the paired t-test.")
        return None
    return pair_by


def _check_metrics(df: pd.DataFrame, metrics: Sequence[str], primary: str) -> None:
    missing = [m for m in [primary, *metrics] if m not in df.columns]
    if missing:
        raise InputError(f"metric(s) {', '.join(dict.fromkeys(missing))} not in the trial table",
                         hint="check the spec's analysis: section against the trials' result.json metrics")
    spec = find_metric(primary)
    if spec is None or not spec.can_be_primary or spec.direction is None:
        raise InputError(f"{primary!r} cannot be the primary metric",
                         hint="pick a metric with can_be_primary in raycg.evaluate.metric_table")


def analyze_study(df: pd.DataFrame, *, metrics: Sequence[str], primary: str, group: str = "energy_weight",
                  baseline: Any = 0.0, pair_by: str | None = "seed", alpha: float = 0.05,
                  equivalence_margin: float | None = None, target_effect_size: float | None = None,
                  converged: bool = True, convergence_reasons: Sequence[str] = (),
                  exploratory: Sequence[str] = (), run_longer_factor: float | None = None) -> StudyStatistics:
    """Statistics of a study table (one row per trial; a failed trial has NaN metrics).

    ``metrics``: every metric to analyse (``primary`` is added when absent); those also in
    ``exploratory`` are corrected only across weights and labelled exploratory, the others are
    secondary (corrected across secondary metrics × weights). ``baseline``: the group value the
    others are compared with (None: the smallest). ``equivalence_margin``: in units of the primary
    metric (TOST). ``target_effect_size``: the paired standardized effect d_z to plan seeds for.
    ``converged`` False makes every verdict line "inconclusive: <convergence_reasons>, run N×
    longer" (N = ``run_longer_factor`` when known).
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha {alpha} must be in (0, 1)")
    if equivalence_margin is not None and not equivalence_margin > 0:
        raise InputError(f"equivalence_margin {equivalence_margin} must be > 0 (units of {primary})")
    _check_metrics(df, metrics, primary)
    if group not in df.columns:
        raise InputError(f"no column {group!r} in the trial table")
    notes: list[str] = []
    pair = _resolve_design(df, pair_by, notes)
    groups = sorted_groups(df[group].dropna().tolist())
    if len(groups) < 2:
        raise InputError(f"only {len(groups)} value(s) of {group!r}: nothing to compare")
    base = resolve_baseline(groups, baseline)
    secondary = [m for m in dict.fromkeys(metrics) if m != primary and m not in exploratory]
    explore = [m for m in dict.fromkeys(exploratory) if m != primary and m in metrics]
    stats_by = {m: metric_statistics(df, m, group, groups, base, pair, role, alpha, equivalence_margin)
                for m, role in [(primary, "primary"), *((m, "secondary") for m in secondary),
                                *((m, "exploratory") for m in explore)]}
    _correct(stats_by, primary, secondary, explore, alpha)
    if stats_by[primary].duplicate_cells:
        notes.append(f"{stats_by[primary].duplicate_cells} ({pair}, {group}) cells hold several trials (other "
                     "config columns vary); their mean is used as the cell's value in paired tests.")
    st = StudyStatistics(group, base, groups, pair, "paired by " + pair if pair else "unpaired", primary,
                         secondary, explore, alpha, equivalence_margin, target_effect_size, bool(converged),
                         list(convergence_reasons), run_longer_factor, stats_by,
                         _power(stats_by[primary], alpha, target_effect_size, pair is not None), [], notes)
    st.verdict = _verdict(st)
    return st


def metric_statistics(df: pd.DataFrame, m: str, group: str, groups: list[Any], base: Any, pair: str | None,
                      role: str, alpha: float, margin: float | None) -> MetricStatistics:
    """One metric's tables, uncorrected (see :func:`correct_family`)."""
    md = tb.metric_data(df, m, group, groups, base, pair)
    spec = find_metric(m)
    paired = tb.paired_table(md) if pair else pd.DataFrame(columns=tb.PAIRED_COLUMNS)
    eq = tb.equivalence_table(md, margin, alpha) if (role == "primary" and margin and pair) else None
    return MetricStatistics(m, metric_label(m), spec.unit if spec else "", spec.direction if spec else None, role,
                            "", tb.descriptives(md), paired, tb.unpaired_table(md), tb.omnibus(md), tb.trend(md), eq,
                            md.duplicate_cells)


def _better(ms: MetricStatistics, diff: np.ndarray) -> np.ndarray:
    d = np.asarray(diff, dtype=float)
    if ms.direction == "lower":
        return d < 0
    if ms.direction == "higher":
        return d > 0
    return np.zeros(d.shape, dtype=bool)


def _holm_family(frames: list[pd.DataFrame], keys: Sequence[str]) -> None:
    """Holm across all rows of ``frames`` together (one family), per test key, in place."""
    sizes = [len(f) for f in frames]
    for k in keys:
        if not all(f"{k}_p" in f.columns for f in frames):
            continue
        flat = np.concatenate([f[f"{k}_p"].to_numpy(float) for f in frames]) if frames else np.array([])
        adj = holm(flat) if flat.size else flat
        for f, part in zip(frames, np.split(adj, np.cumsum(sizes)[:-1]), strict=True):
            f[f"{k}_p_holm"] = part


def _correct(stats_by: dict[str, MetricStatistics], primary: str, secondary: list[str], explore: list[str],
             alpha: float) -> None:
    """Holm families: primary across weights; secondary across metrics × weights; exploratory per metric."""
    k = len(stats_by[primary].unpaired)
    w = f"{k} weight" + ("" if k == 1 else "s")
    families = [([primary], f"primary: Holm across the {w} vs the baseline")]
    if secondary:
        families.append((secondary, f"secondary: Holm across {len(secondary)} metrics × {w}"))
    families += [([m], f"exploratory: Holm across the {w} of this metric only") for m in explore]
    for names, text in families:
        correct_family([stats_by[m] for m in names], text, alpha)
    eq = stats_by[primary].equivalence
    if eq is not None:
        eq["tost_p_holm"] = holm(eq["tost_p"].to_numpy(float))
        eq["equivalent"] = eq["tost_p_holm"] <= alpha


def correct_family(family: list[MetricStatistics], text: str, alpha: float) -> None:
    """Holm-correct every test across all (metric, weight) rows of ``family`` (one family), in place;
    set ``better`` and ``significant`` (corrected p of the paired t-test, or Welch's when unpaired)."""
    _holm_family([ms.paired for ms in family], PAIRED_TESTS)
    _holm_family([ms.unpaired for ms in family], UNPAIRED_TESTS)
    for ms in family:
        ms.family = text
        for frame, test in ((ms.paired, "t"), (ms.unpaired, "welch")):
            diff = frame["mean_diff"].to_numpy(float)
            frame["better"] = pd.array([None if not np.isfinite(d) or d == 0 or ms.direction is None else bool(b)
                                        for d, b in zip(diff, _better(ms, diff), strict=True)], dtype="boolean")
            frame["significant"] = frame[f"{test}_p_holm"].to_numpy(float) <= alpha


def _power(ms: MetricStatistics, alpha: float, target: float | None, paired: bool) -> PowerStatement:
    design = "paired" if paired else "two-sample"
    frame = ms.paired if paired else ms.unpaired
    m = max(len(frame), 1)
    ns = frame["n_pairs"] if paired else np.minimum(frame["n"], frame["n_baseline"])
    n = int(np.min(ns)) if len(frame) else 0
    a = alpha / m
    mde = detectable_effect(n, TARGET_POWER, a, design)
    if paired:
        sd = frame["sd_diff"].to_numpy(float)
        scale = math.sqrt(np.nanmean(sd**2)) if np.isfinite(sd).any() else float("nan")
    else:
        s = ms.descriptives["std"].to_numpy(float)
        scale = math.sqrt(np.nanmean(s**2)) if np.isfinite(s).any() else float("nan")
    pw = float(power_t(target, n, a, design)) if target and n >= 2 else float("nan")
    need = seeds_for_power(target, TARGET_POWER, a, design=design) if target else float("nan")
    return PowerStatement("paired t-test" if paired else "Welch's t-test (two-sample power)", alpha, m, a, n,
                          TARGET_POWER, mde, mde * scale, target, pw, need)


# --- verdict ---------------------------------------------------------------------------------------------------

def _fmt(x: float, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "n/a" if x is None or math.isnan(x) else ("∞" if x > 0 else "−∞")
    return f"{x:.{digits}g}".replace("-", "−")


def _fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "= n/a"
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def _longer(st: StudyStatistics) -> str:
    f = st.run_longer_factor
    if f is not None and math.isfinite(f) and f > 1:
        return f"run {math.ceil(f)}× longer"
    return "run longer"


def _verdict(st: StudyStatistics) -> list[VerdictLine]:
    ms = st.metrics[st.primary]
    frame = ms.paired if st.pair_by else ms.unpaired
    test = "t" if st.pair_by else "welch"
    eq = ms.equivalence
    dec = primary_decisions(frame[f"{test}_p"].to_numpy(float), _better(ms, frame["mean_diff"]), st.alpha,
                            None if eq is None else eq["tost_p"].to_numpy(float))
    lines = []
    for i, (_, r) in enumerate(frame.iterrows()):
        code = int(dec["code"][i])
        status, reason = STATUSES[code], ""
        if not st.converged:
            status = "inconclusive"
            why = "; ".join(st.convergence_reasons) or "the study is not converged"
            reason = f"{why}, {_longer(st)}"
        elif code == 4:
            reason = _untestable(r, st.pair_by)
        lines.append(VerdictLine(st.primary, r["group"], st.baseline, status,
                                 _line_text(st, ms, r, None if eq is None else eq.iloc[i], status, reason)))
    return lines


def _untestable(r: pd.Series, pair_by: str | None) -> str:
    n = int(r["n_pairs"]) if pair_by else int(min(r["n"], r["n_baseline"]))
    if n < 2:
        return f"fewer than 2 complete {'seed pairs' if pair_by else 'trials per weight'} ({n})"
    return "no spread in the differences (every seed gave the same difference): no test possible"


def _line_text(st: StudyStatistics, ms: MetricStatistics, r: pd.Series, eq: pd.Series | None, status: str,
               reason: str) -> str:
    sym = group_symbol(st.group)
    unit = f" {ms.unit}" if ms.unit else ""
    head = f"{sym}={format_group(r['group'])} vs {format_group(st.baseline)}: {ms.label}"
    paired = st.pair_by is not None
    n_txt = (f"n = {int(r['n_pairs'])} pairs" + (f", {int(r['n_dropped'])} dropped" if r["n_dropped"] else "")
             if paired else f"n = {int(r['n'])} vs {int(r['n_baseline'])}, unpaired")
    test, p = ("paired t", float(r["t_p_holm"])) if paired else ("Welch t", float(r["welch_p_holm"]))
    diff = f"Δ = {_fmt(float(r['mean_diff']))}{unit}"
    if paired and math.isfinite(float(r["diff_ci_low"])):
        diff += f" [95% CI {_fmt(float(r['diff_ci_low']))}, {_fmt(float(r['diff_ci_high']))}]"
    stat = f"{diff}, {test} Holm p {_fmt_p(p)}, {n_txt}"
    margin = st.equivalence_margin
    if status == "inconclusive":
        return f"{head}: inconclusive: {reason} ({stat}; not interpretable as a result)"
    if status.startswith("significant"):
        extra = ""
        if eq is not None and bool(eq["equivalent"]):
            extra = f"; but within the equivalence margin ±{_fmt(margin)}{unit}: practically negligible"
        eff = f"d_z = {_fmt(float(r['d_z']), 2)}" if paired else f"Hedges' g = {_fmt(float(r['hedges_g']), 2)}"
        return f"{head}: {status} ({stat}, {eff}{extra})"
    if status == "equivalent":
        return (f"{head}: equivalent within ±{_fmt(margin)}{unit} ({stat}; {100 * eq['eq_ci_level']:.0f}% CI "
                f"[{_fmt(float(eq['eq_ci_low']))}, {_fmt(float(eq['eq_ci_high']))}] inside the margin, "
                f"TOST Holm p {_fmt_p(float(eq['tost_p_holm']))})")
    if eq is not None:
        tail = (f"not shown equivalent within ±{_fmt(margin)}{unit} (TOST Holm p {_fmt_p(float(eq['tost_p_holm']))})"
                "; the data fit both no effect and an effect")
    else:
        pw = st.power
        tail = (f"no equivalence margin stated, so this is not evidence of no effect; with {pw.n} "
                f"{'pairs' if paired else 'seeds'} only effects |{'d_z' if paired else 'g'}| ≥ {_fmt(pw.mde, 2)} "
                f"(≈ {_fmt(pw.mde_units, 2)}{unit}) are detected with 80% power")
    return f"{head}: no significant difference ({stat}); {tail}"
