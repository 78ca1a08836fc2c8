"""The Markdown report of :func:`raycg.report.run_analysis` (``results/report.md``)."""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from raycg.evaluate.gate_power import CHECKS
from raycg.report.inputs import Floor, note_label, study_spec
from raycg.report.sequential import sequential_section
from raycg.report.support import MISSED, kl_columns, kl_sensitivity, missed_mass_by_group, relative_spread
from raycg.report.target import energy_target_lines
from raycg.stats import (
    DECISION_TESTS,
    T_INTERVAL,
    format_group,
    group_symbol,
    min_pairs,
    perfect_study_pass_probability,
    sorted_groups,
)

if TYPE_CHECKING:
    from raycg.report.analyze import Analysis
    from raycg.stats import MetricStatistics


def _cell(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if math.isinf(v):
            return "∞" if v > 0 else "−∞"
        return f"{v:.{digits}g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _p(v: float) -> str:
    return "" if not np.isfinite(v) else ("<0.001" if v < 0.001 else f"{v:.3f}")


def _p_eq(v: float) -> str:
    return "= n/a" if not np.isfinite(v) else ("< 0.001" if v < 0.001 else f"= {v:.3f}")


def _p_pair(raw: float, holm: float) -> str:
    return "" if not np.isfinite(raw) else f"{_p(raw)} ({_p(holm)})"


def _n(k: int, noun: str) -> str:
    return f"{k} {noun}" + ("" if k == 1 else "s")


def _pm(mean: float, sd: float) -> str:
    if not np.isfinite(mean):
        return ""
    return f"{_cell(mean)} ± {_cell(sd)}" if np.isfinite(sd) else _cell(mean)


def _noun(st: Any, plural: bool = False) -> str:
    """What the groups are, in words: "arm" or "weight"."""
    word = "arm" if st is not None and st.group == "arm" else "weight"
    return word + ("s" if plural else "")


def _adj_label(st: Any, ms: MetricStatistics) -> tuple[str, str]:
    """(column suffix, words) of the adjusted p shown for ``ms``: the primary metric's follows the
    study's multiplicity; every other family is Holm."""
    if ms.role == "primary" and st.multiplicity == "fixed-sequence":
        return "p_seq", "fixed sequence"
    return "p_holm", "Holm"


def _dir(ms: MetricStatistics) -> str:
    return {"lower": "lower is better", "higher": "higher is better"}.get(ms.direction or "", "no preferred direction")


# --- per-metric tables --------------------------------------------------------------------------------------------

def _values(a: Analysis, ms: MetricStatistics) -> str:
    st = a.statistics
    fl = a.floor.metrics.get(ms.metric) if a.floor else None
    rows = []
    for _, x in ms.descriptives.iterrows():
        g = x["group"]
        row = [format_group(g) + (" (baseline)" if g == st.baseline else ""),
               f"{int(x['n'])}" + (f" (+{int(x['n_missing'])} failed)" if x["n_missing"] else ""),
               _pm(x["mean"], x["std"]), f"[{_cell(x['ci_low'])}, {_cell(x['ci_high'])}]"]
        if fl is not None:
            row += [_pm(fl.mean, fl.sd), x["mean"] - fl.mean]
        rows.append(row)
    head = [a.group, "n", "mean ± SD", f"95% CI ({T_INTERVAL})"]
    if fl is not None:
        head += [f"noise floor (mean ± SD, {fl.n} repeats)", "excess over floor"]
    return _md_table(head, rows)


def _signflip_ci(r: pd.Series) -> str:
    if not bool(r["signflip_ci_finite"]):
        return f"(−∞, ∞) with {int(r['n_pairs'])} pairs"
    return f"[{_cell(r['signflip_ci_low'])}, {_cell(r['signflip_ci_high'])}]"


def _decision_cell(ms: MetricStatistics, r: pd.Series) -> Any:
    """"yes"/"no" for the primary metric's decision; "—" for metrics that never decide."""
    if ms.role != "primary" or r["significant"] is None or r["significant"] is pd.NA:
        return "—"
    return bool(r["significant"])


def _paired(a: Analysis, ms: MetricStatistics) -> str:
    level = f"{100 * float(ms.paired['signflip_ci_level'].iloc[0]):.4g}%" if len(ms.paired) else ""
    suffix, adj = _adj_label(a.statistics, ms)
    if f"signflip_{suffix}" not in ms.paired:   # the decision was a paired t: its column is the adjusted one
        suffix, adj = "p_holm", "Holm"
    rows = [[format_group(r["group"]),
             f"{int(r['n_pairs'])}" + (f" ({int(r['n_dropped'])} dropped: seed {r['dropped']})"
                                       if r["n_dropped"] else ""),
             r["mean_diff"], _signflip_ci(r), _p_pair(r["signflip_p"], r[f"signflip_{suffix}"]),
             f"[{_cell(r['diff_ci_low'])}, {_cell(r['diff_ci_high'])}]", _p_pair(r["t_p"], r["t_p_holm"]),
             _p_pair(r["wilcoxon_p"], r["wilcoxon_p_holm"]), r["d_z"], r["g_z"], r["rank_biserial"],
             r["better"] if r["better"] is not pd.NA else None, _decision_cell(ms, r)]
            for _, r in ms.paired.iterrows()]
    head = [f"{a.group} vs {format_group(a.statistics.baseline)}", "pairs", "Δ mean", f"{level} sign-flip CI",
            f"sign-flip p ({adj})", "95% t CI (normal d)", "paired t p (Holm)", "Wilcoxon p (Holm)", "d_z", "g_z",
            "rank-biserial", "better", "significant"]
    return _md_table(head, rows)


def _unpaired(a: Analysis, ms: MetricStatistics) -> str:
    rows = [[format_group(r["group"]), f"{int(r['n'])} vs {int(r['n_baseline'])}", r["mean_diff"],
             _p_pair(r["welch_p"], r["welch_p_holm"]), _p_pair(r["mwu_p"], r["mwu_p_holm"]), r["hedges_g"],
             r["cliffs_delta"]] for _, r in ms.unpaired.iterrows()]
    head = [f"{a.group} vs {format_group(a.statistics.baseline)}", "n", "Δ mean", "Welch p (Holm)",
            "Mann–Whitney p (Holm)", "Hedges' g", "Cliff's δ"]
    return _md_table(head, rows)


def _equivalence(ms: MetricStatistics, noun: str = "weight") -> str:
    eq = ms.equivalence
    rows = [[format_group(r["group"]), int(r["n_pairs"]), f"[{_cell(r['eq_ci_low'])}, {_cell(r['eq_ci_high'])}]",
             f"±{_cell(r['margin'])}", _p(r["tost_p"]), _p(r["tost_p_holm"]), bool(r["equivalent"])]
            for _, r in eq.iterrows()]
    level = f"{100 * eq['eq_ci_level'].iloc[0]:.0f}%" if len(eq) else "90%"
    method = str(eq["eq_ci_method"].iloc[0]) if len(eq) and "eq_ci_method" in eq else "t"
    return _md_table([noun, "pairs", f"{level} {method} CI of Δ", "margin", "TOST p", "TOST p (Holm)",
                      "equivalent"], rows)


def _omnibus(ms: MetricStatistics, symbol: str, noun: str = "weight") -> str:
    parts = []
    for _, r in ms.omnibus.iterrows():
        stat = "χ²" if r["test"] == "Friedman" else "H"
        if not np.isfinite(r["statistic"]):
            parts.append(f"{r['test']} across all {noun}s: not applicable (needs ≥ 3 {noun}s"
                         + (f" and ≥ 2 complete seeds; with two {noun}s the paired tests above are the comparison)"
                            if r["test"] == "Friedman" else ")"))
            continue
        parts.append(f"{r['test']} across all {noun}s: {stat} = {_cell(r['statistic'])}, p {_p_eq(r['p'])} "
                     f"(n = {int(r['n'])} {r['unit']})")
    tr = ms.trend.iloc[0]
    if int(tr["n"]) > 0:  # numeric groups only (no trend across named arms)
        parts.append(f"Spearman ρ of the metric vs {symbol}: {_cell(tr['rho'])}, p {_p_eq(tr['p'])} "
                     "(descriptive, uncorrected)")
    return "; ".join(parts) + "."


def _metric_section(a: Analysis, ms: MetricStatistics, level: str = "###") -> list[str]:
    st = a.statistics
    out = [f"{level} {ms.label} (`{ms.metric}`{', ' + ms.unit if ms.unit else ''}; {_dir(ms)}) — {ms.role}", ""]
    if ms.role != "secondary":  # the secondary family is stated once, above its metrics
        out += [f"Correction family: {ms.family}.", ""]
    out += [_values(a, ms), ""]
    noun = _noun(st)
    if st.pair_by:
        what = ("the exact sign-flip test decides; the t and Wilcoxon columns are shown beside it"
                if ms.role == "primary" else "descriptive: this metric never decides the verdict")
        adj = "fixed-sequence adjusted" if _adj_label(st, ms)[1] == "fixed sequence" else "Holm-corrected"
        out += [f"Paired by {st.pair_by} (each {noun} vs the baseline trial of the same seed; p-values raw and "
                f"{adj}; {what}):", "", _paired(a, ms), ""]
    out += ["Unpaired (independent samples; sensitivity check, not the decision):", "", _unpaired(a, ms), ""]
    if ms.equivalence is not None:
        out += [f"Equivalence (sign-flip TOST at ±{_cell(st.equivalence_margin)} {ms.unit}, Holm across {noun}s):",
                "", _equivalence(ms, noun), ""]
    out += [_omnibus(ms, group_symbol(st.group), noun), ""]
    return out


# --- sections -----------------------------------------------------------------------------------------------------

def _verdict(a: Analysis) -> list[str]:
    st = a.statistics
    out = ["## Verdict", ""]
    if st is None:
        return out + ["```", *a.verdict_lines, "```", ""]
    ms = st.metrics[st.primary]
    test = DECISION_TESTS[st.decision_test] if st.pair_by else "Welch's t-test (no seed pairing available)"
    if st.pair_by and st.decision_test == "sign-flip":
        test += (" of the mean paired difference (exact under the null that the weight does not change the "
                 "metric's distribution within a seed, at any number of seeds)")
    eq_test = "sign-flip TOST" if st.decision_test == "sign-flip" else "paired TOST"
    noun, k = _noun(st), len(ms.unpaired)
    base = (f"the baseline arm {st.label(st.baseline)}" if st.group == "arm" else
            f"the baseline {group_symbol(st.group)} = {format_group(st.baseline)}")
    if st.multiplicity == "fixed-sequence":
        family = ("as a fixed sequence in the pre-declared order "
                  f"{' → '.join(st.label(g) for g in ms.unpaired['group'])}"
                  f" (each step at the full α = {st.alpha:g}, reached only when every earlier step was "
                  f"significant: family-wise α = {st.alpha:g})")
    else:
        family = f"Holm across the {_n(k, noun)} at family-wise α = {st.alpha:g}"
    out += [f"Primary metric: **{ms.label}** (`{st.primary}`, {ms.unit or 'no unit'}, {_dir(ms)}). Decision: "
            f"{test} of each {noun} vs {base}, {family}"
            + (f"; equivalence by {eq_test} at ±{_cell(st.equivalence_margin)} {ms.unit}, Holm across the {noun}s"
               if st.equivalence_margin else "; no equivalence margin stated") + ". Only these lines can say "
            "\"significant\" or \"equivalent\"; secondary metrics are descriptive.", "", "```", *a.verdict_lines,
            "```", ""]
    return out + _meaning(a) + [""]


def _meaning(a: Analysis) -> list[str]:
    st = a.statistics
    statuses = {v.status for v in st.verdict}
    out = ["What this verdict means, and what it does not:", ""]
    if not st.converged:
        out.append("- **Inconclusive** lines mean the simulations are too short (or otherwise not converged) for "
                   "their metrics to describe each model's equilibrium; the numbers shown are not results, "
                   "whatever their p-values. Run longer and re-analyse.")
    if statuses & {"significant improvement", "significant worsening"}:
        out.append(f"- **Significant** means: over these seeds, the paired differences of the primary metric are "
                   f"unlikely if the {_noun(st)} changed nothing (family-wise error ≤ {st.alpha:g} across the "
                   f"{_noun(st, True)}; "
                   "measured rates in the Methods). It says nothing about the size being important (see Δ, its "
                   "interval and the noise floor), and nothing about metrics other than the primary one.")
    if "equivalent" in statuses:
        out.append(f"- **Equivalent** means the whole {100 * (1 - 2 * st.alpha):.0f}% CI of the paired difference "
                   f"lies inside ±{_cell(st.equivalence_margin)}: any effect is smaller than the margin the spec "
                   "called negligible.")
    if "no significant difference" in statuses:
        pw = st.power
        level = f"α/{pw.m}" if pw.alpha_per_test < st.alpha else "α"
        if st.pair_by and st.decision_test == "sign-flip" and pw.n < pw.n_min:
            power = (f"with {pw.n} pairs the exact test cannot reach {level} at all (≥ {pw.n_min} pairs needed), "
                     "whatever the effect")
        else:
            power = (f"with {pw.n} pairs the decision test at {level} detects |d_z| ≥ {_cell(pw.mde, 2)} with "
                     "about 80% power; smaller effects can be real")
        out.append(f"- **No significant difference** is not evidence of no effect: {power}. Only an equivalence "
                   "test against a stated margin can support \"no meaningful effect\".")
    out += _at_floor(a)
    what = "each arm's effect against the baseline arm" if st.group == "arm" else "the energy weight's effect"
    out.append(f"- The verdict is about {what} under this protocol (data, priors, model, "
               "training length, simulation length and starts); secondary and exploratory metrics never change it.")
    if a.floor is None:
        out.append("- No noise floor was computed, so it is unknown how much of each value a perfect model would "
                   "also score under this protocol.")
    return out


def _at_floor(a: Analysis) -> list[str]:
    """Weights whose mean primary metric lies inside the noise floor's 2.5–97.5% range."""
    st = a.statistics
    fl = a.floor.metrics.get(st.primary) if a.floor else None
    if fl is None or not (np.isfinite(fl.q025) and np.isfinite(fl.q975)):
        return []
    d = st.metrics[st.primary].descriptives
    inside = [format_group(g) for g, m in zip(d["group"], d["mean"], strict=True) if fl.q025 <= m <= fl.q975]
    if not inside:
        return [f"- Every {_noun(st)}'s mean primary metric is above the noise floor's 97.5% point "
                f"({_cell(fl.q975)}): the differences are not just the finite-sample floor."]
    return [f"- At {group_symbol(st.group)} = {', '.join(inside)} the mean primary metric lies inside the noise "
            f"floor's 2.5–97.5% range [{_cell(fl.q025)}, {_cell(fl.q975)}]: indistinguishable from a perfect model "
            "under this protocol, so differences there say little about the models."]


def _design(a: Analysis) -> list[str]:
    st, t = a.statistics, a.table
    counts = t["status"].value_counts().to_dict()
    out = ["## Design", "", f"- Trials: {len(t)} ({', '.join(f'{v} {k}' for k, v in counts.items())})."]
    if st is None:
        return out + [""]
    sym, noun = group_symbol(st.group), _noun(st)
    done = t[t["status"].isin(["ok", "failed"])]
    seeds = sorted(set(done["seed"].dropna().tolist()), key=str) if "seed" in t.columns else []
    out.append(f"- Grouped by `{st.group}` ({sym}): {', '.join(format_group(g) for g in st.groups)}; baseline "
               f"{sym} = {format_group(st.baseline)}. Seeds: {', '.join(map(format_group, seeds)) or 'none recorded'}.")
    out += _arms(a)
    if st.pair_by:
        out.append(f"- **Paired by {st.pair_by}**: a seed fixes the train/validation split, the initial network "
                   f"weights and the simulation start frames for every {noun}, so each {noun}'s trial is compared "
                   "with the baseline trial of the same seed. A pair whose partner failed is dropped and counted.")
        pr = st.metrics[st.primary].paired
        out.append("- Complete pairs vs the baseline (primary metric): " + "; ".join(
            f"{st.label(r['group'])}: {int(r['n_pairs'])}" + (f" ({int(r['n_dropped'])} dropped: seed "
                                                                          f"{r['dropped']})" if r["n_dropped"] else "")
            for _, r in pr.iterrows()) + ".")
    else:
        out.append("- **Unpaired**: no seed column, so weights are compared as independent samples (Welch).")
    out.append(f"- Primary metric: `{st.primary}`. Secondary: {', '.join(f'`{m}`' for m in st.secondary) or 'none'}. "
               f"Exploratory: {', '.join(f'`{m}`' for m in st.exploratory) or 'none'}.")
    margin = _cell(st.equivalence_margin) + " " + st.metrics[st.primary].unit if st.equivalence_margin else "none"
    out.append(f"- α = {st.alpha:g}; equivalence margin: {margin}"
               f"; target effect size d_z = {_cell(st.target_effect_size) or 'none'}. ({a.settings.source})")
    out += _multiplicity(a)
    g = a.grouping
    arms = {k: g.arms[k] for k in st.groups if k in g.arms} if g is not None and g.arms else None
    out += energy_target_lines(a.study_dir, study_spec(a.study_dir), st.groups, arms, st.baseline if arms else None)
    return out + [""]


def _arms(a: Analysis) -> list[str]:
    """What each arm sets (design section), in the analysis' order."""
    g, st = a.grouping, a.statistics
    if g is None or not g.arms:
        return []
    rows = []
    for name in st.groups:
        arm = g.arms.get(name, {})
        sets = "; ".join(f"`{k}: {v}`" for k, v in arm.items() if k != "energy_weight") or "the spec's values"
        rows.append([f"{name}" + (" (baseline)" if name == st.baseline else ""), _cell(arm.get("energy_weight")), sets])
    return ["- **Arms** (`grid.arms`; every arm runs every seed, everything not listed is the spec's):", "",
            _md_table(["arm", "w_E", "sets"], rows), ""]


def _multiplicity(a: Analysis) -> list[str]:
    """How the primary comparisons share α, and why that is valid (design section)."""
    st = a.statistics
    k = len(st.metrics[st.primary].unpaired)
    if k < 2:
        return []
    noun = _noun(st, True)
    n = st.power.n
    holm_pairs = min_pairs(st.alpha / k) if st.pair_by and st.decision_test == "sign-flip" else None
    need = (f" The exact sign-flip test's smallest p with n pairs is 2/2^n, so Holm's first step (α/{k} = "
            f"{st.alpha / k:.3g}) needs ≥ {holm_pairs} pairs; this study has {n}.") if holm_pairs else ""
    if st.multiplicity != "fixed-sequence":
        return [f"- **Multiplicity**: Holm across the {k} {noun} compared with the baseline (family-wise "
                f"α = {st.alpha:g}).{need}"]
    order = " → ".join(f"`{format_group(g)}`" for g in st.metrics[st.primary].unpaired["group"])
    return [f"- **Multiplicity**: fixed sequence, declared in the spec before any trial ran (`grid.order`): "
            f"{order}. Each comparison is tested at the full α = {st.alpha:g}, and only if every earlier one was "
            "significant; the first that is not stops the sequence, and the later ones cannot be significant "
            "(their lines say so). This keeps the family-wise error rate at α for any dependence between the "
            "tests: every step after the first true null hypothesis in the order is reached only through it, so "
            "any false rejection needs that one rejected, which its test at α does with probability ≤ α."
            f"{need} The order "
            "is the price: a later comparison is not tested at all when an earlier one is not significant. "
            "Equivalence (TOST) and every secondary metric stay Holm-corrected."]


def _convergence(a: Analysis) -> list[str]:
    out = ["## Convergence", ""]
    st = a.statistics
    if st is not None:
        out.append("Study converged: **yes**." if st.converged else
                   "Study converged: **no** — " + "; ".join(st.convergence_reasons) + ". The verdict is "
                   "therefore inconclusive.")
        out.append("")
    c = a.convergence
    if c.empty:
        return out + ["No successful trials.", ""]
    rows = [[r["trial_id"], format_group(r[a.group]), format_group(r["seed"]),
             "not assessed" if r["converged"] is None or r["converged"] is pd.NA else bool(r["converged"]),
             r["run_longer_factor"], r["time_over_timescale"], r["model_timescale_ps"], r["crossings_per_replica"],
             r["replica_time_lost_fraction"], "; ".join(r["reasons"]) or "; ".join(map(note_label, r["notes"]))]
            for _, r in c.iterrows()]
    out += [_md_table(["trial", a.group, "seed", "converged", "run × longer", "time / slowest τ",
                       "model's own τ (ps)", "crossings per replica", "replica time lost", "reasons (or notes)"], rows),
            "", "\"time / slowest τ\" divides each replica's time after burn-in by the slower of the reference's "
            "slowest implied timescale and the model's own (its frames on the reference TICA, deeptime, at the "
            "reference's lag).", ""]
    return out + _family_note(c) + _convergence_notes(c)


def _family_note(c: pd.DataFrame) -> list[str]:
    """How the permutation tests were held to a study-wide α, and which trials that makes a difference for."""
    adjusted = [(r["trial_id"], name, t) for _, r in c.iterrows() for name, t in (r["tests"] or {}).items()
                if t.p_adjusted is not None]
    if not adjusted:
        return []
    n = max(t.family_size for _, _, t in adjusted)
    out = [f"The drift and start-basin checks are permutation tests; the gate Holm-adjusts each one's p-values over "
           f"the {n} trials that assessed it (family-wise α as configured), as the verdict adjusts its comparisons, "
           "so that a study of converged trials fails the gate with probability at most α per check. The time and "
           "crossing checks apply to each trial as they are."]
    saved = [f"{tid} ({name.replace('_', ' ')}: p = {t.p:.2g} alone, {t.p_adjusted:.2g} Holm-adjusted)"
             for tid, name, t in adjusted if t.p < t.alpha <= t.p_adjusted]
    if saved:
        out.append("Trials that fail a test at the per-trial α but pass the study's gate: " + "; ".join(saved) + ".")
    return [" ".join(out), ""]


def _convergence_notes(c: pd.DataFrame) -> list[str]:
    """Each kind of diagnostic note once, with the trials it applies to and one trial's full text."""
    kinds: dict[str, list[tuple[str, str]]] = {}
    for _, r in c.iterrows():
        for n in r["notes"]:
            kinds.setdefault(note_label(n), []).append((str(r["trial_id"]), n))
    if not kinds:
        return []
    out = ["Notes of the diagnostics (a check passed by its stated exception, or could not be assessed):", ""]
    for label, hits in kinds.items():
        ids = ", ".join(t for t, _ in hits)
        out.append(f"- *{label}* ({ids}); e.g. {hits[0][0]}: {hits[0][1]}")
    return out + [""]


_TRAIN_COLS = ("final_val_force_loss", "train_prior_only_val_force_loss")


def _training(a: Analysis) -> list[str]:
    """Did training learn anything? Validation force loss of each weight's models vs the priors alone."""
    t = a.table[a.table["status"].eq("ok")] if "status" in a.table.columns else a.table
    if t.empty or not all(c in t.columns for c in _TRAIN_COLS) or a.group not in t.columns:
        return []
    out = ["## Training: trained models vs the priors alone", "",
           "Validation force loss (mean squared force error per component, (kcal/mol/Å)², on the trial's "
           "validation trajectories, last epoch; the model kept is the best epoch's) of the trained model and "
           "of the prior-only model (the same priors, no network) on the same frames. It includes the noise of "
           "the mapped forces, which no model can remove.", ""]
    rows = []
    order = a.statistics.groups if a.statistics is not None else sorted_groups(t[a.group].dropna().tolist())
    for g, d in sorted(t.groupby(a.group, sort=True), key=lambda gd: order.index(gd[0]) if gd[0] in order else 1e9):
        fl, po = d[_TRAIN_COLS[0]].to_numpy(float), d[_TRAIN_COLS[1]].to_numpy(float)
        rel = 100.0 * (fl - po) / po
        ev = d["final_val_energy_loss"].to_numpy(float) if "final_val_energy_loss" in d else np.full(len(d), np.nan)
        ep = (f"{int(d['train_best_epoch'].min())}–{int(d['train_best_epoch'].max())} of "
              f"{int(d['train_epochs'].max())}") if {"train_best_epoch", "train_epochs"} <= set(d.columns) else ""
        rows.append([format_group(g), len(d),
                     _pm(float(np.mean(fl)), float(np.std(fl, ddof=1)) if len(d) > 1 else float("nan")),
                     _cell(float(np.mean(po))), f"{_cell(float(np.mean(rel)), 2)}% [{_cell(float(rel.min()), 2)}, "
                     f"{_cell(float(rel.max()), 2)}]", int(np.sum(fl < po)), ep, _cell(float(np.mean(ev)))])
    return out + [_md_table([a.group, "n", "val force loss (mean ± SD)", "prior-only", "change vs prior-only "
                             "(mean [min, max])", "trials below prior-only", "best epoch (0-based)",
                             "val energy loss (mean)"], rows), ""]


def _gate_odds(fl: Floor, n_trials: int) -> str:
    """How often a study of ``n_trials`` perfect models would pass the study's convergence gate."""
    if n_trials < 2:
        return ""
    tail = " (a failed gate makes the verdict inconclusive, never significant)"
    if fl.convergence:
        g = perfect_study_pass_probability(fl.convergence, n_trials)
        return (f"; a study of {n_trials} perfect-model trials would pass the study's gate (permutation tests "
                f"Holm-adjusted over the {n_trials} trials) with probability ≈ {g.probability:.2f} ({g.passing} of "
                f"{g.repeats} repeats pass at the gate's strictest threshold, α/{n_trials}; one-sided "
                f"{100 * g.confidence:.0f}% lower bound {g.lower:.2f})" + tail)
    p = fl.converged_fraction
    if not 0.0 < p < 1.0:
        return ""
    return (f"; a study of {n_trials} perfect-model trials would pass the all-trials gate with probability "
            f"≈ {p:.3g}^{n_trials} = {p ** n_trials:.2f} (this floor has no per-repeat diagnostics, so the "
            "estimate holds each trial's tests to the per-trial α)" + tail)


def _floor_source(fl: Floor) -> str:
    """Where the floor's segments came from, in words."""
    sp = fl.split or {}
    if fl.method == "held-out" and sp:
        return (f"drawn from {sp.get('n_holdout', '?')} reference trajectories held out of the scoring reference "
                f"(split by trajectory, seed {sp.get('seed', '?')}; trials and floor are scored against the other "
                f"{sp.get('n_scoring', '?')}: `prepared/reference_split.json`)")
    return "cut from the very trajectories they are scored against (in-sample: optimistic)"


def _floor(a: Analysis) -> list[str]:
    out = ["## Noise floor", ""]
    if a.floor is None:
        return out + ["No noise floor computed (`prepared/noise_floor.json` is absent): the report cannot say how "
                      "much of each value a perfect model would also score under this protocol (finite-sample "
                      "divergences are not 0 even for a perfect sample).", ""]
    fl = a.floor
    proto = ", ".join(f"{k} = {v}" for k, v in fl.protocol.items()) or "not recorded"
    conv = (f" {100 * fl.converged_fraction:.0f}% of the repeats pass the convergence diagnostics alone (each "
            "test at the per-trial α)"
            + _gate_odds(fl, len(a.convergence)) + "."
            if np.isfinite(fl.converged_fraction) else "")
    out += ["What a perfect model scores under the trials' protocol: reference trajectory segments of the trials' "
            f"simulated length, started like the trials, {_floor_source(fl)}, scored like a trial, {fl.n_repeats} "
            f"repeats (protocol: {proto}).{conv} Each metric table shows the floor and the excess over it "
            "(value − floor mean).", ""] + [f"- {n}" for n in fl.notes] + ([""] if fl.notes else [])
    ins = (fl.in_sample or {}).get("metrics") or {}
    rows = []
    for m, st in fl.metrics.items():
        if m not in a.metrics and m != MISSED:
            continue
        row = [m, _pm(st.mean, st.sd), f"[{_cell(st.q025)}, {_cell(st.q975)}]", st.n]
        if ins:
            i = ins.get(m) or {}
            row.append(_pm(float(i.get("mean", np.nan)), float(i.get("sd", np.nan))))
        rows.append(row)
    head = ["metric", f"{fl.method} floor mean ± SD", "2.5–97.5%", "repeats"]
    if ins:
        head.append(f"in-sample floor ({(fl.in_sample or {}).get('n_repeats', '?')} repeats)")
    return out + [_md_table(head, rows), ""] + _gate_power(a)


def _gate_power(a: Analysis) -> list[str]:
    """How often the trial-level gate catches perfect-model runs shorter than it demands."""
    gp = a.gate_power
    if gp is None or not gp.rows:
        return []
    rows = [[f"{r.multiple:g}", _cell(r.replica_time_ps), r.n_repeats, _cell(r.caught_fraction, 2),
             _cell(r.caught_by_data_fraction, 2)] + [_cell(r.caught_by.get(c, float("nan")), 2) for c in CHECKS]
            for r in gp.rows]
    return ["### Gate power", "",
            f"How often each trial's convergence gate catches runs that are too short: perfect-model samples "
            f"({gp.method} reference segments, the trials' replicas and starts) of 0.2, 1 and 3 × the slowest implied "
            f"timescale τ = {_cell(gp.slowest_timescale_ps)} ps, {gp.n_repeats} repeats each "
            f"(`prepared/gate_power.json`). The time check demands ≥ {_cell(gp.min_time_over_timescale)} τ and catches "
            "all of these by construction; the data-driven checks (crossings, drift, start basins) are what would "
            "catch a model whose τ was misjudged.", "",
            _md_table(["run length / τ", "replica ps", "repeats", "caught (any check)", "caught by data checks",
                       *(c.replace("_", " ") for c in CHECKS)], rows), ""]


def _support(a: Analysis) -> list[str]:
    """Missed reference mass per weight and the KL(ref‖model) paired differences at every ε."""
    st = a.statistics
    ok = a.table[a.table["status"].eq("ok")] if "status" in a.table.columns else a.table
    missed = missed_mass_by_group(ok, a.group)
    sens = kl_sensitivity(ok, a.group, st.baseline)
    if not missed and not sens:
        return []
    out = ["## Support and the KL regulariser", ""]
    spec = st.metrics[st.primary]
    if st.primary.startswith("kl_"):
        out += [f"The primary metric {spec.label} puts ε in every bin the model never visits; where a model misses "
                "reference mass, its value is mostly ε (table below). Prefer `js_divergence` or `w1` as primary.", ""]
    else:
        out += [f"The primary metric {spec.label} needs no regulariser: its value is the same whatever ε KL uses.", ""]
    if missed:
        fl = a.floor.metrics.get(MISSED) if a.floor else None
        rows = [[format_group(g), n, f"{_cell(m)} [{_cell(lo)}, {_cell(hi)}]"] + ([_pm(fl.mean, fl.sd)] if fl else [])
                for g, n, m, lo, hi in missed]
        head = [a.group, "trials", "missed reference mass, mean [min, max]"] + (["perfect model (floor)"] if fl else [])
        out += ["Reference probability in TIC 1–2 bins that the model never visited (per trial; figure `support`):",
                "", _md_table(head, rows), ""]
    if sens:
        eps = [e for e, _ in kl_columns()]
        rows = []
        for g, vals in sens.items():
            by = dict(vals)
            rows.append([format_group(g)] + [by.get(e, float("nan")) for e in eps]
                        + [f"{100 * relative_spread([v for _, v in vals]):.0f}%"])
        out += ["Mean paired difference of KL(ref‖model) (weight − baseline, nats) with the empty-bin regulariser ε "
                "set as in each column (default ε = 1e-6 is `kl_ref_model`); the last column is the spread over ε "
                "relative to the median:", "",
                _md_table([f"{a.group} vs {format_group(st.baseline)}"] + [f"ε = {e:g}" for e in eps]
                          + ["spread over ε"], rows), ""]
    return out


def _power(a: Analysis) -> list[str]:
    st = a.statistics
    pw = st.power
    unit = st.metrics[st.primary].unit
    unit_txt = (f", about {_cell(pw.mde_units, 2)} {unit} at the observed SD of the paired differences (itself "
                "estimated from few pairs: a rough conversion)" if np.isfinite(pw.mde_units) else "")
    split = pw.alpha_per_test < st.alpha
    level = (f"the Bonferroni level α/{pw.m} = {pw.alpha_per_test:.3g} (Holm's first step; Holm is at least as "
             "powerful)" if split else
             f"α = {pw.alpha_per_test:.3g} (each step of the fixed sequence; a later step also needs the earlier "
             "ones significant)" if st.multiplicity == "fixed-sequence" else f"α = {pw.alpha_per_test:.3g}")
    sym = f"α/{pw.m}" if split else "α"
    out = ["## Power", "",
           f"For the test that decides the verdict ({pw.test}) at {level}, with {pw.n} complete "
           f"{'pairs' if st.pair_by else 'seeds per ' + _noun(st)} (the smallest over the {_noun(st, True)}):", ""]
    if st.pair_by and st.decision_test == "sign-flip":
        out.append(f"- Smallest number of pairs at which the exact sign-flip test can reach {sym} at all: "
                   f"**{pw.n_min}** (its smallest two-sided p is 2/2^n)"
                   + (f"; this study has {pw.n}, so it cannot say \"significant\" whatever the data" if pw.n < pw.n_min
                      else "") + ".")
    out.append(f"- Minimal detectable effect (80% power, normal differences): |d_z| = {_cell(pw.mde, 3)}{unit_txt}.")
    if pw.target_effect_size:
        t_cmp = (f" (the paired t would have {_cell(pw.t_power_at_target, 2)} and need "
                 f"{_cell(pw.t_seeds_needed)} seeds, resting on normal differences)"
                 if st.decision_test == "sign-flip" and np.isfinite(pw.t_power_at_target) else "")
        out += [f"- For the spec's target effect d_z = {_cell(pw.target_effect_size)}: power now "
                f"{_cell(pw.power_at_target, 2)}; {_cell(pw.seeds_needed)} seeds (complete pairs) give 80% power"
                f"{t_cmp}.",
                "- These numbers use the stated target, not the observed effect (an observed effect of a small "
                "study is noisy and inflated when significant)."]
    return out + [""]


def _metrics(a: Analysis) -> list[str]:
    st = a.statistics
    out = [f"## Primary metric: {st.metrics[st.primary].label}", ""] + _metric_section(a, st.metrics[st.primary], "###")
    for role, names in (("Secondary metrics", st.secondary), ("Exploratory metrics", st.exploratory)):
        if names:
            out += [f"## {role}", "", f"{st.metrics[names[0]].family[0].upper()}{st.metrics[names[0]].family[1:]} "
                    "(descriptive p-values). They never change the verdict and no line of theirs says "
                    "\"significant\".", ""]
            for m in names:
                out += _metric_section(a, st.metrics[m], "###")
    return out


_CAPTIONS = {
    "paired": "Primary metric, paired by seed: each dot is one seed's value minus the same seed's baseline trial; "
              "red = mean difference with the interval of the decision test (sign-flip, Bonferroni level; none "
              "when the test cannot reject at this n); green band = equivalence margin (if stated).",
    "metrics": "Each metric vs weight: grey lines join one seed's trials (the pairing); red = mean with 95% "
               "Student-t CI; green dashed line and band = noise floor (mean ± SD), if computed; marks (primary "
               "metric only) = the decision test vs baseline, adjusted as the verdict is (Holm or fixed sequence).",
    "fes": "Reference FES (TIC 1/TIC 2, kcal/mol) and the pooled model FES of each weight (histograms of all trials "
           "of a weight summed, F = −k_BT ln p, minimum 0; white = unvisited; colours clipped at the 99th percentile).",
    "fes_difference": "F_model − F_reference per weight (kcal/mol) over bins visited by both; red = model higher "
                      "(under-populated), blue = lower (over-populated).",
    "trapping": "Trapping: basin transitions per replica (all replicas of all seeds of a weight) and the population "
                "of the deepest well per trial vs the reference.",
    "support": "Reference mass in TIC 1–2 bins each trial's model never visited (grey: one line per seed); green "
               "= a perfect model's floor (mean ± SD). There KL(ref‖model) is set by its regulariser ε.",
    "training": "Training curves per trial (colour = weight; solid = training, dashed = validation).",
}


def _figures(a: Analysis) -> list[str]:
    if not a.figures:
        return []
    out = ["## Figures", ""]
    for key, path in a.figures.items():
        caption = _CAPTIONS.get(re.sub(r"_\d+$", "", key), key)
        out += [f"![{key}](figures/{path.name})", "", f"*{caption}*", ""]
    return out


def _trials(a: Analysis) -> list[str]:
    t = a.table.copy()
    cols = ["trial_id", a.group, "seed", "status", "error", "runtime_s"] + a.metrics[:4]
    cols = list(dict.fromkeys(c for c in cols if c in t.columns))
    m = a.settings.primary_metric
    if {f"{m}_ci_low", f"{m}_ci_high"} <= set(t.columns):  # within-trial block-bootstrap CI (evaluate)
        name = f"{m} 95% CI (within trial)"
        t[name] = [f"[{_cell(lo)}, {_cell(hi)}]" if np.isfinite(lo) else "" for lo, hi in
                   zip(t[f"{m}_ci_low"], t[f"{m}_ci_high"], strict=True)]
        cols.insert(cols.index(m) + 1 if m in cols else len(cols), name)
    return ["## Trials", "", _md_table(cols, t[cols].itertuples(index=False)), "",
            "(all metrics: `trials.parquet`; statistics: `summary.csv`; convergence: `convergence.csv`)", ""]


def _methods(a: Analysis) -> list[str]:
    st = a.statistics
    alpha = st.alpha if st else a.settings.alpha
    return [
        "## Methods", "",
        "- Unit of analysis: one trial (train + simulate + score) per (weight, seed). Failed trials are listed and "
        "counted as missing, never dropped silently; their partial metrics are not used.",
        f"- Per weight: n, mean, SD (ddof 1) and a 95% **{T_INTERVAL} interval** of the mean "
        "(mean ± t₀.₉₇₅,ₙ₋₁·SD/√n). "
        "It has its nominal coverage for normal data at any n (simulated: 95% at n = 3, 5, 10); the percentile "
        "bootstrap it replaces covers 73–91% at n = 3–10. For skewed metrics (lognormal, σ = 1) the t-interval "
        "also under-covers (about 82–84%): read group CIs of such metrics as approximate.",
        "- Design: paired by seed (the seed fixes split, initial weights and start frames for every weight). "
        f"**Primary test: {DECISION_TESTS[st.decision_test] if st else DECISION_TESTS['sign-flip']}** of each "
        "weight vs the baseline on the primary metric (over seeds with both trials successful; pairs with a failed "
        "partner are dropped and counted), two-sided. The sign-flip test compares |mean d| with its value under "
        "every one of the 2^n sign patterns of the n paired differences (exact for n ≤ 16, else 20,000 seeded "
        "patterns): exact whenever the weight does not change the metric's distribution within a seed, with no "
        "normality assumption; with n pairs its smallest p is 2/2^n, so it needs ≥ 6 pairs to reach 0.05 and ≥ 8 "
        "for Holm over 4 weights. The interval printed with a decision is the sign-flip test inverted at the "
        "Bonferroni level 1 − α/m (1 − α for a step of a fixed sequence; every Δ it does not reject), so a line "
        "that is not significant always has an "
        "interval containing 0; it is (−∞, ∞) when n is too small for the test to reject anything.",
        (f"- Multiplicity: primary metric — a fixed sequence over the {_noun(st, True)} vs the baseline in the "
         f"declared order, each at the full α (family-wise α = {alpha:g}; see the design section); "
         if st is not None and st.multiplicity == "fixed-sequence" else
         f"- Multiplicity: primary metric — Holm across the {_noun(st, True)} vs the baseline (family-wise "
         f"α = {alpha:g}); ") +
        "only this family decides the verdict, and only its lines say \"significant\" or \"equivalent\". "
        "Secondary metrics — Holm across (secondary metrics × weights) as one family, exploratory ones across the "
        "weights of each metric only; their p-values are descriptive.",
        "- Measured error rates of this rule (`benchmarks/stats_calibration.py`, 2,000 simulated null studies per "
        "cell, n = 3/5/10 seeds, 2 and 5 weights; docs/benchmarks.md): studies with any \"significant\" line "
        "0 at n ≤ 5 (the test cannot reject there) and 0.041–0.055 at n = 10 when the paired differences are "
        "symmetric (normal, lognormal trial values, t3); the sign-flip interval covered the true difference in "
        "94.5–95.9% (m = 1) and ≥ 98.8% (m = 4) of finite cases; TOST size at the margin ≤ 0.032. With equal means "
        "but strongly skewed differences (an occasional trapped seed) no test of the mean is exact at small n: "
        "the rate was 0.069 (m = 1) and 0.082 (m = 4) at n = 10, as for the paired t.",
        "- Shown beside the primary test, never deciding: the paired t-test with its 95% Student-t interval (normal "
        "differences), Wilcoxon signed-rank (paired; scipy's exact distribution for n ≤ 50 without ties or zeros), "
        "Welch's unequal-variance t and Mann–Whitney U (unpaired, ignoring the seed pairing).",
        "- Effect sizes, signed weight − baseline: d_z = mean difference / SD of the differences (the paired "
        "t-test's standardized effect), g_z = d_z × J(n − 1) (Hedges' small-sample correction), matched-pairs "
        "rank-biserial r = (T₊ − T₋)/(T₊ + T₋) over Wilcoxon ranks; unpaired: Hedges' g, Cliff's δ.",
        "- Omnibus: Friedman χ² over seeds complete in every weight (paired), Kruskal–Wallis over all trials "
        "(unpaired). Trend: Spearman ρ of metric vs weight (descriptive, uncorrected).",
        "- Equivalence: TOST — two one-sided sign-flip tests of H₀: mean difference ≤ −margin and ≥ +margin, p = "
        "the larger; equivalent when its Holm-corrected p ≤ α (Holm across weights), i.e. the "
        f"(1 − 2α) = {100 * (1 - 2 * alpha):.0f}% sign-flip interval of the difference lies inside ±margin. "
        "The margin is the spec's `analysis.equivalence_margin`, in units of the primary metric"
        + (f" ({_cell(st.equivalence_margin)})." if st and st.equivalence_margin
           else " (not stated: no equivalence test)."),
        "- Power: of the sign-flip test at the Bonferroni level α/m (m = weights compared; Holm's first step, so a "
        "safe bound for Holm), by seeded simulation of normal paired differences at the spec's "
        "`target_effect_size` (0 below the smallest n that can reach α/m), with the pairs needed for 80%, and the "
        "minimal |d_z| detected with 80% power at the study's n (the same simulation, bisected; the noncentral t "
        "above 12 pairs, where the two agree). Never computed for the observed effect.",
        "- Convergence gate: each trial's convergence diagnostics (evaluate: simulated time vs the slower of the "
        "reference's and the model's own slowest implied timescale on the reference TICA, folding/unfolding "
        "crossings per replica, first vs second half of the runs, replicas from different start basins). "
        "The study is converged only when every successful trial is converged; otherwise, "
        "or when a trial has no diagnostics, every verdict line is \"inconclusive\" with the reasons and the largest "
        "run-length factor any trial needs.",
        "- Noise floor: `prepared/noise_floor.json` — a perfect model under the same protocol (reference segments of "
        "the trials' length, started like the trials, same frame counts, many repeats), drawn from reference "
        "trajectories held out of the scoring reference (split by trajectory; `prepared/reference_split.json`); "
        "reported as floor mean ± SD and the excess (value − floor mean). Paired differences, and so every test, "
        "are the same on values and on excesses."
        + ("" if a.floor else " Not computed for this study."),
        "- KL direction: KL(ref‖model) = Σ p_ref ln(p_ref / p_model) punishes reference states the model misses; "
        "KL(model‖ref) punishes states the model visits but the reference does not.", "",
    ]


_LIMITATIONS = [
    "## Limitations", "",
    "- The FES is a free energy of two TICA coordinates of the reference; matching it does not mean the CG potential "
    "of mean force over all bead coordinates is matched (distance-based TICs are also blind to chirality).",
    "- Seeds give the spread between independent trainings and simulations; within-trial sampling error enters only "
    "through that spread (per-trial block-bootstrap CIs are in `trials.parquet` as `<metric>_ci_low/high`).",
    "- The sign-flip test is exact when the weight leaves the metric's distribution within a seed unchanged; when "
    "a weight changes only the shape (equal means, skewed differences) no small-n test of the mean is exact "
    "(measured rates in the Methods).",
    "- The held-out floor's segments come from fewer trajectories than the trials have replicas, so segments "
    "share trajectories and the floor is pessimistic; the in-sample floor beside it is optimistic. A perfect "
    "model's expected score lies between them.",
    "- Pooled FES sum the histograms of all seeds of a weight, which weights seeds by their number of frames "
    "(replicas that blew up contribute fewer).", "",
]


def _provenance(a: Analysis) -> list[str]:
    study = a.study_dir
    lines = ["## Provenance", ""]
    info: dict[str, Any] = {}
    for rel in ("study.json", "prepared/prepared.json"):
        try:
            info[rel] = json.loads((study / rel).read_text())
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            lines.append(f"- `{rel}` is unreadable.")
    hashes, commits, packages = set(), set(), {}
    for tid in a.table["trial_id"]:
        try:
            pv = json.loads((study / "trials" / str(tid) / "result.json").read_text()).get("provenance") or {}
        except (OSError, ValueError, AttributeError):
            continue
        hashes.update([str(pv["data_hash"])] if pv.get("data_hash") else [])
        commits.update([str(pv["git_commit"])] if pv.get("git_commit") else [])
        packages = packages or dict(pv.get("packages") or {})
    st, prep = info.get("study.json", {}), info.get("prepared/prepared.json", {})
    if st.get("name"):
        lines.append(f"- Study name: `{st['name']}`")
    hashes.update([str(prep["data_hash"])] if prep.get("data_hash") else [])
    lines.append(f"- Data hash: {', '.join(f'`{h}`' for h in sorted(hashes)) or 'not recorded'}"
                 + (" — **trials used different data**" if len(hashes) > 1 else ""))
    lines.append(f"- Git commit of the trials: {', '.join(f'`{c}`' for c in sorted(commits)) or 'not recorded'}"
                 + (" — **trials ran different code**" if len(commits) > 1 else ""))
    packages = packages or (st.get("provenance") or {}).get("packages") or {}
    if packages:
        lines.append("- Package versions (trials): " + ", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if v))
    from raycg.utils.provenance import git_commit, package_versions

    now = package_versions()
    lines.append(f"- This analysis: raycg {now.get('raycg')}, git `{git_commit()}`, scipy {now.get('scipy')}, "
                 f"pandas {now.get('pandas')}, numpy {now.get('numpy')}")
    return lines


def render(a: Analysis) -> str:
    """The whole report."""
    md = [f"# raycg study report: {a.study_dir.name}", "",
          f"Generated {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} from `{a.study_dir}`.", ""]
    md += sequential_section(a) + _verdict(a) + _design(a) + _convergence(a) + _training(a) + _floor(a)
    if a.statistics is not None:
        md += _metrics(a) + _support(a) + _power(a)
    if a.notes:
        md += ["## Notes", ""] + [f"- {n}" for n in a.notes] + [""]
    md += _figures(a) + _trials(a) + _methods(a) + _LIMITATIONS + _provenance(a)
    return "\n".join(md) + "\n"
