"""``analyze_study``: the statistics and the verdict of a study (energy weights or arms × seeds).

Design: the seed fixes the split, the initial weights and the start frames for every group (an
energy weight, or an arm: a named condition), so trials are paired by seed. The **decision test**
(``decision_test``) of each group against the baseline on the **primary metric** is, by default, the
exact sign-flip permutation test of the mean paired difference (:mod:`raycg.stats.signflip`; null:
the two trials of a pair are exchangeable, exact at every n without normality), corrected across
the groups by ``multiplicity``: Holm (default), or a fixed sequence in the pre-declared ``order``
(each comparison at the full α until the first that is not significant). It alone decides the
verdict. Each verdict line prints the interval inverted from that test at its level (Holm: the
Bonferroni level 1 − α/m, m groups compared; fixed sequence: 1 − α), so "no significant difference"
always sits beside an interval covering 0; where the test cannot reach that level with n pairs the
line says so and the interval is (−∞, ∞).
``decision_test="paired-t"`` restores the paired t-test (its lines say they rest on normality).
Equivalence: two one-sided tests of the same kind at ±margin, Holm across weights.

Only the primary metric has a ``significant`` column (True/False); secondary (Holm across
metrics × weights) and exploratory (Holm across weights) metrics keep effects, intervals and raw
and Holm p-values as descriptive columns, ``significant`` None. Paired t, Wilcoxon, Welch and
Mann–Whitney are sensitivity columns and never decide. A study without seed pairing falls back to
Welch's t (normal theory). A study that is not converged is "inconclusive" whatever the tests say.
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
from raycg.stats.comparisons import ADJUSTMENTS, PAIRED_TESTS, UNPAIRED_TESTS, holm
from raycg.stats.groups import format_group, group_symbol, resolve_baseline, sorted_groups
from raycg.stats.power import (
    detectable_effect,
    power_t,
    seeds_for_power,
    signflip_detectable_effect,
    signflip_power,
    signflip_seeds_for_power,
)
from raycg.stats.signflip import is_exact, min_pairs, smallest_p

#: Verdict statuses, indexed by the codes of :func:`primary_decisions`.
STATUSES = ("significant improvement", "significant worsening", "equivalent", "no significant difference",
            "inconclusive")
#: ``decision_test`` values and the name of each test in reports.
DECISION_TESTS = {"sign-flip": "exact sign-flip test", "paired-t": "paired t-test"}
PRIMARY_TEST = DECISION_TESTS["sign-flip"]
_TEST_KEY = {"sign-flip": "signflip", "paired-t": "t"}
TARGET_POWER = 0.8
#: column suffix of each ``multiplicity``'s adjusted p-values
ADJUSTED_SUFFIX = {"holm": "p_holm", "fixed-sequence": "p_seq"}


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
    """Power of the decision test at the Bonferroni level α/m (Holm's first step; a bound for Holm).

    ``power_at_target``/``seeds_needed``: of ``test`` (sign-flip: seeded simulation of normal
    differences, 0 below ``n_min``, the smallest n at which it can reach α/m). ``mde``: the decision
    test's minimal detectable d_z at 80% power for normal differences (∞ below ``n_min``). ``t_*``: the
    paired t's noncentral-t numbers, for comparison.
    """

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
    n_min: int = 2
    t_power_at_target: float = float("nan")
    t_seeds_needed: float = float("nan")


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
    decision_test: str = "sign-flip"
    multiplicity: str = "holm"
    labels: dict[Any, str] = field(default_factory=dict)

    @property
    def verdict_lines(self) -> list[str]:
        return [v.text for v in self.verdict]

    def label(self, g: Any) -> str:
        """How verdict lines name group ``g``: its label, else ``w_E=1``-style."""
        return self.labels.get(g) or f"{group_symbol(self.group)}={format_group(g)}"

    @property
    def adjusted(self) -> str:
        """Suffix of the primary metric's decision columns (``signflip_<suffix>``)."""
        return ADJUSTED_SUFFIX[self.multiplicity]

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
                      tost_p: np.ndarray | None = None, multiplicity: str = "holm") -> dict[str, np.ndarray]:
    """The verdict's decision rule, vectorised over studies (last axis: the groups of one study).

    ``p``: primary-test p-values (in the testing order for ``multiplicity`` "fixed-sequence");
    ``better``: the difference is in the metric's good direction; ``tost_p``: equivalence p-values (or
    None, always Holm). Returns ``p_holm`` (adjusted by ``multiplicity``: Holm or fixed sequence),
    ``tost_p_holm`` and ``code`` (index into :data:`STATUSES`).
    """
    p = np.asarray(p, dtype=float)
    p_holm = ADJUSTMENTS[multiplicity](p, axis=-1)
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
                     "primary test instead of a paired test (it assumes normal group means).")
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
                  exploratory: Sequence[str] = (), run_longer_factor: float | None = None,
                  decision_test: str = "sign-flip", order: Sequence[Any] | None = None,
                  multiplicity: str = "holm", labels: dict[Any, str] | None = None) -> StudyStatistics:
    """Statistics of a study table (one row per trial; a failed trial has NaN metrics).

    ``metrics``: every metric to analyse (``primary`` is added when absent); those also in
    ``exploratory`` are corrected only across weights and labelled exploratory, the others are
    secondary (corrected across secondary metrics × weights). ``baseline``: the group value the
    others are compared with (None: the smallest). ``equivalence_margin``: in units of the primary
    metric (TOST). ``target_effect_size``: the paired standardized effect d_z to plan seeds for.
    ``decision_test``: "sign-flip" (exact, default) or "paired-t" (assumes normal differences).
    ``converged`` False makes every verdict line "inconclusive: <convergence_reasons>, run N×
    longer" (N = ``run_longer_factor`` when known). ``order``: the groups in this order (others
    after them, sorted; default: sorted), which is the testing order of ``multiplicity``
    "fixed-sequence" ("holm": Holm across the groups). ``labels``: names of groups in verdict lines.
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha {alpha} must be in (0, 1)")
    if decision_test not in DECISION_TESTS:
        raise InputError(f"decision_test {decision_test!r} unknown; use one of {', '.join(DECISION_TESTS)}")
    if multiplicity not in ADJUSTMENTS:
        raise InputError(f"multiplicity {multiplicity!r} unknown; use one of {', '.join(ADJUSTMENTS)}")
    if equivalence_margin is not None and not equivalence_margin > 0:
        raise InputError(f"equivalence_margin {equivalence_margin} must be > 0 (units of {primary})")
    _check_metrics(df, metrics, primary)
    if group not in df.columns:
        raise InputError(f"no column {group!r} in the trial table")
    notes: list[str] = []
    pair = _resolve_design(df, pair_by, notes)
    groups = sorted_groups(df[group].dropna().tolist())
    if order is not None:
        groups = [g for g in order if g in groups] + [g for g in groups if g not in order]
    if len(groups) < 2:
        raise InputError(f"only {len(groups)} value(s) of {group!r}: nothing to compare")
    base = resolve_baseline(groups, baseline)
    secondary = [m for m in dict.fromkeys(metrics) if m != primary and m not in exploratory]
    explore = [m for m in dict.fromkeys(exploratory) if m != primary and m in metrics]
    k = len(groups) - 1
    k_primary = 1 if multiplicity == "fixed-sequence" else k   # each step of a fixed sequence is at α
    roles = [(primary, "primary", k_primary), *((m, "secondary", k * len(secondary)) for m in secondary),
             *((m, "exploratory", k) for m in explore)]
    stats_by = {m: metric_statistics(df, m, group, groups, base, pair, role, alpha, equivalence_margin,
                                     alpha / family_size, decision_test) for m, role, family_size in roles}
    _correct(stats_by, primary, secondary, explore, alpha, _TEST_KEY[decision_test] if pair else "welch",
             multiplicity, [g for g in groups if g != base])
    if stats_by[primary].duplicate_cells:
        notes.append(f"{stats_by[primary].duplicate_cells} ({pair}, {group}) cells hold several trials (other "
                     "config columns vary); their mean is used as the cell's value in paired tests.")
    power = _power(stats_by[primary], alpha, target_effect_size, pair is not None, decision_test, k_primary)
    st = StudyStatistics(group, base, groups, pair, "paired by " + pair if pair else "unpaired", primary,
                         secondary, explore, alpha, equivalence_margin, target_effect_size, bool(converged),
                         list(convergence_reasons), run_longer_factor, stats_by, power, [], notes, decision_test,
                         multiplicity, dict(labels or {}))
    st.verdict = _verdict(st)
    return st


def metric_statistics(df: pd.DataFrame, m: str, group: str, groups: list[Any], base: Any, pair: str | None,
                      role: str, alpha: float, margin: float | None, ci_alpha: float = 0.05,
                      decision_test: str = "sign-flip") -> MetricStatistics:
    """One metric's tables, uncorrected (see :func:`correct_family`); sign-flip intervals at 1 − ``ci_alpha``."""
    md = tb.metric_data(df, m, group, groups, base, pair)
    spec = find_metric(m)
    paired = tb.paired_table(md, ci_alpha=ci_alpha) if pair else pd.DataFrame(columns=tb.PAIRED_COLUMNS)
    eq = (tb.equivalence_table(md, margin, alpha, decision_test) if (role == "primary" and margin and pair)
          else None)
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
             alpha: float, decide: str, multiplicity: str = "holm", compared: Sequence[Any] = ()) -> None:
    """Holm families: primary across groups; secondary across metrics × groups; exploratory per metric.
    Only the primary's decision test (``decide``: a test key) sets ``significant``, from its Holm p or,
    for ``multiplicity`` "fixed-sequence", its fixed-sequence p (``<key>_p_seq``, in the rows' order)."""
    k = len(stats_by[primary].unpaired)
    w = f"{k} weight" + ("" if k == 1 else "s")
    primary_text = f"primary: Holm across the {w} vs the baseline"
    if multiplicity == "fixed-sequence":
        primary_text = (f"primary: fixed sequence over the {k} comparisons vs the baseline in the declared order "
                        f"({', '.join(map(format_group, compared))}), each at the full α until the first that is "
                        "not significant")
    families = [([primary], primary_text)]
    if secondary:
        families.append((secondary, f"secondary: Holm across {len(secondary)} metrics × {w}"))
    families += [([m], f"exploratory: Holm across the {w} of this metric only") for m in explore]
    for names, text in families:
        correct_family([stats_by[m] for m in names], text)
    ms = stats_by[primary]
    frame = ms.unpaired if decide == "welch" else ms.paired
    if multiplicity == "fixed-sequence":
        frame[f"{decide}_p_seq"] = ADJUSTMENTS[multiplicity](frame[f"{decide}_p"].to_numpy(float))
    set_significant(frame, decide, alpha, ADJUSTED_SUFFIX[multiplicity])
    eq = ms.equivalence
    if eq is not None:
        eq["tost_p_holm"] = holm(eq["tost_p"].to_numpy(float))
        eq["equivalent"] = eq["tost_p_holm"] <= alpha


def correct_family(family: list[MetricStatistics], text: str, alpha: float | None = None) -> None:
    """Holm-correct every test across all (metric, weight) rows of ``family`` (one family), in place;
    set ``better`` (direction of the mean difference) and ``significant`` None (no decision here)."""
    _holm_family([ms.paired for ms in family], PAIRED_TESTS)
    _holm_family([ms.unpaired for ms in family], UNPAIRED_TESTS)
    for ms in family:
        ms.family = text
        for frame in (ms.paired, ms.unpaired):
            diff = frame["mean_diff"].to_numpy(float)
            frame["better"] = pd.array([None if not np.isfinite(d) or d == 0 or ms.direction is None else bool(b)
                                        for d, b in zip(diff, _better(ms, diff), strict=True)], dtype="boolean")
            frame["significant"] = pd.array([None] * len(frame), dtype=object)


def set_significant(frame: pd.DataFrame, key: str, alpha: float, suffix: str = "p_holm") -> None:
    """``significant`` = adjusted p (``<key>_<suffix>``, default Holm) of test ``key`` ≤ ``alpha``, in place."""
    frame["significant"] = pd.array(frame[f"{key}_{suffix}"].to_numpy(float) <= alpha, dtype=object)


def _power(ms: MetricStatistics, alpha: float, target: float | None, paired: bool, test: str,
           family: int | None = None) -> PowerStatement:
    """Power at α/``family`` (default: every comparison, Holm's first step; 1 for a fixed sequence)."""
    design = "paired" if paired else "two-sample"
    frame = ms.paired if paired else ms.unpaired
    m = max(len(frame), 1)
    ns = frame["n_pairs"] if paired else np.minimum(frame["n"], frame["n_baseline"])
    n = int(np.min(ns)) if len(frame) else 0
    a = alpha / (m if family is None else max(family, 1))
    sd = (frame["sd_diff"] if paired else ms.descriptives["std"]).to_numpy(float)
    scale = math.sqrt(np.nanmean(sd**2)) if np.isfinite(sd).any() else float("nan")
    pw = float(power_t(target, n, a, design)) if target and n >= 2 else float("nan")
    need = seeds_for_power(target, TARGET_POWER, a, design=design) if target else float("nan")
    if not paired:
        mde = detectable_effect(n, TARGET_POWER, a, design)
        return PowerStatement("Welch's t-test (two-sample power)", alpha, m, a, n, TARGET_POWER, mde, mde * scale,
                              target, pw, need, 2, pw, need)
    n_min = min_pairs(a) if test == "sign-flip" else 2
    mde = (signflip_detectable_effect(n, TARGET_POWER, a) if test == "sign-flip"
           else detectable_effect(n, TARGET_POWER, a, design))
    if test == "sign-flip":
        sf = signflip_power(float(target), n, a) if target and n >= 2 else float("nan")
        sf_need = signflip_seeds_for_power(target, TARGET_POWER, a) if target else float("nan")
    else:
        sf, sf_need = pw, need
    return PowerStatement(DECISION_TESTS[test], alpha, m, a, n, TARGET_POWER, mde, mde * scale, target, sf, sf_need,
                          n_min, pw, need)


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


def _decision_key(st: StudyStatistics) -> str:
    return _TEST_KEY[st.decision_test] if st.pair_by else "welch"


def _verdict(st: StudyStatistics) -> list[VerdictLine]:
    ms = st.metrics[st.primary]
    frame = ms.paired if st.pair_by else ms.unpaired
    eq = ms.equivalence
    dec = primary_decisions(frame[f"{_decision_key(st)}_p"].to_numpy(float), _better(ms, frame["mean_diff"]),
                            st.alpha, None if eq is None else eq["tost_p"].to_numpy(float), st.multiplicity)
    lines = []
    for i, (_, r) in enumerate(frame.iterrows()):
        code = int(dec["code"][i])
        status, reason = STATUSES[code], ""
        if not st.converged:
            status = "inconclusive"
            why = "; ".join(st.convergence_reasons) or "the study is not converged"
            reason = f"{why}, {_longer(st)}"
        else:
            stop = _sequence_stop(st, frame, i)
            if code == 4:
                reason = stop or _untestable(r, st.pair_by)
            elif code == 3:
                reason = stop
        lines.append(VerdictLine(st.primary, r["group"], st.baseline, status,
                                 _line_text(st, ms, r, None if eq is None else eq.iloc[i], status, reason)))
    return lines


def _sequence_stop(st: StudyStatistics, frame: pd.DataFrame, i: int) -> str:
    """'' unless row ``i`` of a fixed sequence was not reached: then where the sequence stopped."""
    if st.multiplicity != "fixed-sequence":
        return ""
    p = frame[f"{_decision_key(st)}_p"].to_numpy(float)
    for j in range(i):
        if not (np.isfinite(p[j]) and p[j] <= st.alpha):
            return (f"not reached: the fixed sequence stopped at step {j + 1} "
                    f"({st.label(frame['group'].iloc[j])}), so this comparison cannot be significant")
    return ""


def _untestable(r: pd.Series, pair_by: str | None) -> str:
    n = int(r["n_pairs"]) if pair_by else int(min(r["n"], r["n_baseline"]))
    if n < 2:
        return f"fewer than 2 complete {'seed pairs' if pair_by else 'trials per weight'} ({n})"
    return "no spread in the differences (every seed gave the same difference): no test possible"


def _pct(level: float) -> str:
    return f"{100 * level:.4g}%"


def _diff_text(st: StudyStatistics, r: pd.Series, unit: str) -> str:
    """Δ with the interval that matches the decision test, and the test's name with its Holm p."""
    diff = f"Δ = {_fmt(float(r['mean_diff']))}{unit}"
    adj, suffix = _adjustment(st, r)
    if not st.pair_by:
        return (f"{diff}, Hedges' g = {_fmt(float(r['hedges_g']), 2)}, "
                f"Welch t p ({adj}) {_fmt_p(float(r[f'welch_{suffix}']))}")
    n = int(r["n_pairs"])
    dz = f"d_z = {_fmt(float(r['d_z']), 2)}"
    if st.decision_test == "paired-t":
        ci = (f" [95% t CI {_fmt(float(r['diff_ci_low']))}, {_fmt(float(r['diff_ci_high']))}]"
              if math.isfinite(float(r["diff_ci_low"])) else "")
        return (f"{diff}{ci}, {dz}, paired t p ({adj}) {_fmt_p(float(r[f't_{suffix}']))}, resting on normality of "
                f"the {n} differences")
    level = _pct(float(r["signflip_ci_level"]))
    if bool(r["signflip_ci_finite"]):
        ci = f" [{level} sign-flip CI {_fmt(float(r['signflip_ci_low']))}, {_fmt(float(r['signflip_ci_high']))}]"
    else:
        ci = f" [{level} sign-flip CI: no finite interval with {n} pairs]"
    name = "exact sign-flip p" if is_exact(n) else "Monte Carlo sign-flip p"
    return f"{diff}{ci}, {dz}, {name} ({adj}) {_fmt_p(float(r[f'signflip_{suffix}']))}"


def _adjustment(st: StudyStatistics, r: pd.Series) -> tuple[str, str]:
    """How the line's p is adjusted, in words, and the suffix of its column."""
    if st.multiplicity != "fixed-sequence":
        return "Holm", "p_holm"
    frame = st.metrics[st.primary].paired if st.pair_by else st.metrics[st.primary].unpaired
    step = frame["group"].tolist().index(r["group"]) + 1
    return f"fixed sequence, step {step} of {len(frame)}", "p_seq"


def _unreachable(st: StudyStatistics, n: int) -> str:
    """'' when the exact test can reach α/m with ``n`` pairs, else why not and how many pairs would."""
    pw = st.power
    if st.decision_test != "sign-flip" or not st.pair_by or n < 2 or smallest_p(n) <= pw.alpha_per_test:
        return ""
    split = pw.alpha_per_test < st.alpha
    level = f"{_fmt(st.alpha)}/{pw.m} = {_fmt(pw.alpha_per_test)}" if split else _fmt(st.alpha)
    return (f"the exact test cannot reach p ≤ {level} with {n} pairs (smallest p 2/2^{n} = {_fmt(smallest_p(n))}); "
            f"≥ {min_pairs(pw.alpha_per_test)} pairs needed")


def _line_text(st: StudyStatistics, ms: MetricStatistics, r: pd.Series, eq: pd.Series | None, status: str,
               reason: str) -> str:
    unit = f" {ms.unit}" if ms.unit else ""
    base = st.labels.get(st.baseline) or format_group(st.baseline)
    head = f"{st.label(r['group'])} vs {base}: {ms.label}"
    paired = st.pair_by is not None
    n_txt = (f"n = {int(r['n_pairs'])} pairs" + (f", {int(r['n_dropped'])} dropped" if r["n_dropped"] else "")
             if paired else f"n = {int(r['n'])} vs {int(r['n_baseline'])}, unpaired")
    stat = f"{_diff_text(st, r, unit)}, {n_txt}"
    margin = st.equivalence_margin
    if status == "inconclusive":
        return f"{head}: inconclusive: {reason} ({stat}; not interpretable as a result)"
    if status.startswith("significant"):
        extra = ""
        if eq is not None and bool(eq["equivalent"]):
            extra = f"; but within the equivalence margin ±{_fmt(margin)}{unit}: practically negligible"
        return f"{head}: {status} ({stat}{extra})"
    eq_ci = (f"{_pct(float(eq['eq_ci_level']))} {'sign-flip' if eq['eq_ci_method'] == 'sign-flip' else 't'} CI"
             if eq is not None else "")
    if status == "equivalent":
        return (f"{head}: equivalent within ±{_fmt(margin)}{unit} ({stat}; {eq_ci} "
                f"[{_fmt(float(eq['eq_ci_low']))}, {_fmt(float(eq['eq_ci_high']))}] inside the margin, "
                f"TOST Holm p {_fmt_p(float(eq['tost_p_holm']))})")
    cannot = _unreachable(st, int(r["n_pairs"]) if paired else 0)
    if eq is not None:
        tail = (f"not shown equivalent within ±{_fmt(margin)}{unit} (TOST Holm p {_fmt_p(float(eq['tost_p_holm']))})"
                "; the data fit both no effect and an effect")
    elif cannot:
        tail = "no equivalence margin stated, so this is not evidence of no effect"
    else:
        pw = st.power
        approx = " (normal differences)" if paired else ""
        tail = (f"no equivalence margin stated, so this is not evidence of no effect; with {pw.n} "
                f"{'pairs' if paired else 'seeds'} only effects |{'d_z' if paired else 'g'}| ≥ {_fmt(pw.mde, 2)} "
                f"(≈ {_fmt(pw.mde_units, 2)}{unit}) are detected with 80% power{approx}")
    return (f"{head}: no significant difference ({stat}); " + (f"{reason}; " if reason else "")
            + (f"{cannot}; " if cannot else "") + tail)
