"""``analyze(study_dir)``: trial table + statistics + figures + Markdown report under ``STUDY/results/``.

Writes (each atomically): ``results/figures/*.png``, ``results/trials.parquet``,
``results/summary.csv`` (one row per metric x group) and, last, ``results/report.md``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raycg.errors import InputError
from raycg.report import figures as fg
from raycg.report.table import load_fes, load_history, parquet_safe, trial_table, trials_dir
from raycg.stats import (
    HEADLINE_METRICS,
    TESTS,
    detectable_effect,
    format_group,
    group_symbol,
    metric_label,
    sorted_groups,
    summarize_all,
    summary_table,
    verdict,
)
from raycg.units import KB_KCAL_PER_MOL_K
from raycg.utils.io import atomic_path, atomic_write_text

METRICS_PER_FIGURE = 9
_TEMPERATURE_KEYS = ("temperature_K", "sim.temperature_K", "simulation.temperature_K", "temperature")


@dataclass
class Analysis:
    """Everything :func:`analyze` computed (also returned by :func:`run_analysis`)."""

    study_dir: Path
    table: pd.DataFrame
    metrics: list[str]
    group: str
    results: dict[str, pd.DataFrame] | None
    summary: pd.DataFrame
    verdict: str
    report: Path
    figures: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def analyze(study_dir: str | Path, metrics: Sequence[str] | None = None, **kwargs: Any) -> Path:
    """Analyse a study directory; returns the path of ``results/report.md``. See :func:`run_analysis`."""
    return run_analysis(study_dir, metrics, **kwargs).report


def run_analysis(study_dir: str | Path, metrics: Sequence[str] | None = None, *, group: str = "energy_weight",
                 baseline: Any = None, directions: Mapping[str, str | None] | None = None, alpha: float = 0.05,
                 primary: str = "welch", seed: int = 0, n_resamples: int = 9999,
                 figures: bool = True) -> Analysis:
    """Trial table, statistics per metric (only ``ok`` trials; failed ones count as missing), figures, report.

    ``metrics`` defaults to every metric found; ``directions`` maps metric -> "lower"/"higher"/None
    (default: guessed from the name). ``baseline`` defaults to the smallest value of ``group``.
    """
    study = Path(study_dir)
    tdir = trials_dir(study)
    table = trial_table(study)
    found = list(table.attrs.get("metrics", []))
    notes: list[str] = []
    if metrics is None:
        metrics = _default_metrics(table, found, notes)
    else:
        unknown = [m for m in metrics if m not in table.columns]
        if unknown:
            raise InputError(f"metric(s) {', '.join(unknown)} not in any trial's result.json "
                             f"(found: {', '.join(found) or 'none'})")
        metrics = list(metrics)
    if group not in table.columns:
        raise InputError(f"{study}: no config column {group!r} in the trials",
                         hint=f"pick --group from {', '.join(table.attrs.get('config_columns', []))}")
    if table[group].dtype == object:  # e.g. weights written as strings: compare them as numbers
        num = pd.to_numeric(table[group], errors="coerce")
        if num.notna().sum() == table[group].notna().sum():
            table[group] = num
    out = study / "results"
    fig_dir = out / "figures"

    data = table[table["status"].isin(["ok", "failed"]) & table[group].notna()].copy()
    varying = [c for c in table.attrs.get("config_columns", []) if c != group and "seed" not in c.rsplit(".", 1)[-1]
               and data[c].dropna().astype(str).nunique() > 1]
    if varying:
        notes.append(f"Config columns other than {group!r} vary between trials ({', '.join(varying)}); each "
                     f"{group} group pools them. Use --group or a study per setting if that is not intended.")
    data.loc[data["status"] != "ok", metrics] = np.nan  # a failed trial's partial metrics are not results
    results = None
    if metrics and (data["status"] == "ok").any():
        results = summarize_all(data, metrics, group, baseline, directions=directions, alpha=alpha,
                                primary=primary, seed=seed, n_resamples=n_resamples)
        summary = summary_table(results)
        text = verdict(results)
        notes.append(_sensitivity(results, alpha))
    else:
        summary = pd.DataFrame(columns=["metric", "group", "n", "mean"])
        text = "No successful trials with metrics: nothing to test."
        notes.append(text)
    symbol = group_symbol(group)

    made: dict[str, Path] = {}
    if figures:
        made = _make_figures(table, data, results, metrics, group, symbol, tdir, fig_dir, notes)

    with atomic_path(out / "trials.parquet") as tmp:
        parquet_safe(table).to_parquet(tmp, index=False)
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    analysis = Analysis(study, table, metrics, group, results, summary, text, out / "report.md", made, notes)
    atomic_write_text(out / "report.md", _markdown(analysis, alpha=alpha, primary=primary,
                                                   n_resamples=n_resamples, seed=seed))
    return analysis


def _sensitivity(results: dict[str, pd.DataFrame], alpha: float) -> str:
    """One sentence: the smallest standardised effect this many seeds detects with 80% power."""
    d = results["descriptives"]
    n = int(d.groupby("group")["n"].max().min())
    k = max(int(d["group"].nunique()) - 1, 1)
    g, gb = detectable_effect(n, 0.8, alpha), detectable_effect(n, 0.8, alpha / k)
    if not np.isfinite(g):
        return "Sensitivity: a weight has fewer than 2 successful seeds; no test is possible there."
    return (f"Sensitivity: with {n} seeds per weight a two-sided t-test at α = {alpha:g} detects effects "
            f"|Hedges' g| ≥ {g:.2g} with 80% power (≥ {gb:.2g} at the Bonferroni level α/{k}, a bound for Holm); "
            "smaller effects can be real and still come out not significant.")


def _default_metrics(table: pd.DataFrame, found: list[str], notes: list[str]) -> list[str]:
    """Metrics with a value in some successful trial and not constant across them; headline ones first."""
    ok = table["status"] == "ok"
    keep, constant = [], []
    for m in found:
        v = table.loc[ok, m].to_numpy(float)
        v = v[np.isfinite(v)]
        if v.size == 0:
            continue
        (constant if v.size > 1 and np.ptp(v) == 0 else keep).append(m)
    if constant:
        notes.append(f"Not tested (identical in every successful trial): {', '.join(constant)}.")
    head = [m for m in HEADLINE_METRICS if m in keep]
    return head + [m for m in keep if m not in head]


# --- figures ----------------------------------------------------------------------------------------------------

def _kt(table: pd.DataFrame, ref_fes: dict[str, np.ndarray], notes: list[str]) -> float:
    if "kT" in ref_fes and np.isfinite(float(np.ravel(ref_fes["kT"])[0])):
        kt = float(np.ravel(ref_fes["kT"])[0])
        notes.append(f"Pooled FES use k_BT = {kt:.4f} kcal/mol from fes.npz.")
        return kt
    kt = fg.infer_kt(ref_fes["fes_reference"], ref_fes["hist_reference"])
    if kt is not None:
        notes.append(f"Pooled FES use k_BT = {kt:.4f} kcal/mol, inferred from the reference FES and histogram "
                     f"(T ≈ {kt / KB_KCAL_PER_MOL_K:.1f} K).")
        return kt
    for key in _TEMPERATURE_KEYS:
        if key in table.columns:
            t = pd.to_numeric(table[key], errors="coerce").dropna()
            if len(t):
                notes.append(f"Pooled FES use T = {t.iloc[0]:g} K from config column {key!r}.")
                return KB_KCAL_PER_MOL_K * float(t.iloc[0])
    notes.append("Pooled FES use T = 300 K (no temperature found).")
    return KB_KCAL_PER_MOL_K * 300.0


def _make_figures(table: pd.DataFrame, data: pd.DataFrame, results: dict[str, pd.DataFrame] | None,
                  metrics: list[str], group: str, symbol: str, tdir: Path, fig_dir: Path,
                  notes: list[str]) -> dict[str, Path]:
    made: dict[str, Path] = {}
    ok = data[data["status"] == "ok"]
    groups = sorted_groups(ok[group].tolist())
    fes: dict[Any, list[dict[str, np.ndarray]]] = {}
    ref = None
    for _, row in ok.iterrows():
        f = load_fes(tdir / str(row["trial_id"]))
        if f is None:
            continue
        if ref is None:
            ref = f
        if f["edges_x"].shape != ref["edges_x"].shape or not (
                np.allclose(f["edges_x"], ref["edges_x"]) and np.allclose(f["edges_y"], ref["edges_y"])):
            notes.append(f"Trial {row['trial_id']}: FES grid differs from the first trial's; left out of pooled FES.")
            continue
        fes.setdefault(row[group], []).append(f)
    if ref is not None:
        kt = _kt(table, ref, notes)
        pooled = {f"{symbol}={format_group(g)} (pooled, {len(fes[g])} trials)":
                  fg.free_energy(sum(np.asarray(x["hist_model"], float) for x in fes[g]), kt)
                  for g in groups if g in fes}
        if pooled:
            ex, ey, fref = ref["edges_x"], ref["edges_y"], np.asarray(ref["fes_reference"], float)
            made["fes"] = fg.plot_fes(fref, pooled, ex, ey, fig_dir / "fes_pooled.png")
            short = {k.split(" (")[0]: v for k, v in pooled.items()}
            made["fes_difference"] = fg.plot_fes_difference(fref, short, ex, ey, fig_dir / "fes_difference.png")
        trans = {format_group(g): np.concatenate([np.ravel(x.get("transitions_per_replica", np.array([])))
                                                  for x in fes[g]]).astype(float) for g in groups if g in fes}
        if any(v.size for v in trans.values()):
            wells = {format_group(g): np.array([float(np.ravel(x["deepest_well_population_model"])[0])
                                                for x in fes[g] if "deepest_well_population_model" in x])
                     for g in groups if g in fes}
            wr = ref.get("deepest_well_population_reference")
            made["trapping"] = fg.plot_trapping(trans, wells, float(np.ravel(wr)[0]) if wr is not None else None,
                                                symbol, fig_dir / "trapping.png")
    else:
        notes.append("No fes.npz in any successful trial: no FES or trapping figures.")
    if results is not None and metrics:
        labels = {m: metric_label(m) for m in metrics}
        for i in range(0, len(metrics), METRICS_PER_FIGURE):
            part = i // METRICS_PER_FIGURE + 1
            suffix = "" if part == 1 else f"_{part}"
            made[f"metrics{suffix}"] = fg.plot_metrics(data, results, metrics[i:i + METRICS_PER_FIGURE], group,
                                                       labels, symbol, fig_dir / f"metrics_vs_weight{suffix}.png")
    hist = []
    order = sorted_groups(table[group].dropna().tolist())
    for _, row in table[table[group].notna()].iterrows():
        h = load_history(tdir / str(row["trial_id"]))
        if h is not None:
            hist.append((order.index(row[group]), format_group(row[group]), str(row["trial_id"]), h))
    if hist:
        hist.sort(key=lambda t: t[0])
        made["training"] = fg.plot_training([t[1:] for t in hist], symbol, fig_dir / "training_curves.png")
    return made


# --- Markdown ---------------------------------------------------------------------------------------------------

def _cell(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
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


def _metric_section(a: Analysis, m: str) -> str:
    r = a.results
    d = r["descriptives"][r["descriptives"]["metric"] == m]
    c = r["comparisons"][r["comparisons"]["metric"] == m].set_index("group")
    pw = r["power"][r["power"]["metric"] == m].set_index("group")
    rows = []
    for _, x in d.iterrows():
        g = x["group"]
        base = g not in c.index
        cc = c.loc[g] if not base else None
        need = pw.loc[g, "seeds_needed"] if g in pw.index else float("nan")
        rows.append([
            format_group(g) + (" (baseline)" if base else ""), f"{int(x['n'])}" + (f" (+{int(x['n_missing'])} missing)"
                                                                                     if x["n_missing"] else ""),
            x["mean"], x["std"], f"[{_cell(x['ci_low'])}, {_cell(x['ci_high'])}]",
            "" if base else cc["mean_diff"],
            *(["", "", ""] if base else [_p(float(cc[f"{t}_p_holm"])) for t in TESTS]),
            "" if base else cc["hedges_g"], "" if base else cc["cliffs_delta"],
            "" if base else ("∞" if math.isinf(need) else _cell(need)),
            "" if base else bool(cc["significant"]),
        ])
    header = [a.group, "n", "mean", "SD", "95% CI (bootstrap)", "Δ vs baseline", "Welch p (Holm)",
              "MWU p (Holm)", "perm. p (Holm)", "Hedges' g", "Cliff's δ", "seeds for 80% power", "significant"]
    om = r["omnibus"][r["omnibus"]["metric"] == m].iloc[0]
    tr = r["trend"][r["trend"]["metric"] == m].iloc[0]
    extra = (f"Kruskal–Wallis across all weights: H = {_cell(om['statistic'])}, p {_p_eq(float(om['p']))}. "
             f"Spearman trend vs {a.group}: ρ = {_cell(tr['rho'])}, p {_p_eq(float(tr['p']))} (uncorrected).")
    direction = c["direction"].iloc[0] if len(c) else None
    dtxt = {"lower": "lower is better", "higher": "higher is better"}.get(direction, "no preferred direction")
    return f"### {metric_label(m)} (`{m}`, {dtxt})\n\n{_md_table(header, rows)}\n\n{extra}\n"


def _provenance(a: Analysis) -> list[str]:
    study = a.study_dir
    lines = []
    info: dict[str, Any] = {}
    for rel in ("study.json", "prepared/prepared.json"):
        p = study / rel
        if p.is_file():
            try:
                info[rel] = json.loads(p.read_text())
            except (OSError, ValueError):
                lines.append(f"- `{rel}` is unreadable.")
    prov = None
    hashes, commits = set(), set()
    for tid in a.table["trial_id"]:
        try:
            res = json.loads((study / "trials" / str(tid) / "result.json").read_text())
        except (OSError, ValueError):
            continue
        pv = res.get("provenance") or {}
        prov = prov or pv
        if pv.get("data_hash"):
            hashes.add(str(pv["data_hash"]))
        if pv.get("git_commit"):
            commits.add(str(pv["git_commit"]))
    st = info.get("study.json", {})
    prep = info.get("prepared/prepared.json", {})
    if st.get("name"):
        lines.append(f"- Study name: `{st['name']}`")
    if prep.get("data_hash"):
        hashes.add(str(prep["data_hash"]))
    lines.append(f"- Data hash: {', '.join(f'`{h}`' for h in sorted(hashes)) or 'not recorded'}"
                 + (" — **trials used different data**" if len(hashes) > 1 else ""))
    lines.append(f"- Git commit of the trials: {', '.join(f'`{c}`' for c in sorted(commits)) or 'not recorded'}"
                 + (" — **trials ran different code**" if len(commits) > 1 else ""))
    pk = (prov or {}).get("packages") or (st.get("provenance") or {}).get("packages") or {}
    if pk:
        lines.append("- Package versions (trials): " + ", ".join(f"{k} {v}" for k, v in sorted(pk.items()) if v))
    from raycg.utils.provenance import git_commit, package_versions

    now = package_versions()
    lines.append(f"- This analysis: raycg {now.get('raycg')}, git `{git_commit()}`, scipy {now.get('scipy')}, "
                 f"pandas {now.get('pandas')}, numpy {now.get('numpy')}")
    return lines


def _markdown(a: Analysis, *, alpha: float, primary: str, n_resamples: int, seed: int) -> str:
    t = a.table
    counts = t["status"].value_counts().to_dict()
    sym = group_symbol(a.group)
    base = None
    if a.results is not None and len(a.results["comparisons"]):
        base = a.results["comparisons"]["baseline"].iloc[0]
    md = [f"# raycg study report: {a.study_dir.name}", "",
          f"Generated {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')} from `{a.study_dir}`.", "",
          f"- Trials: {len(t)} ({', '.join(f'{v} {k}' for k, v in counts.items())})",
          f"- Grouped by `{a.group}` ({sym}); baseline {sym} = {format_group(base) if base is not None else 'n/a'}",
          f"- Significance: Holm-corrected {dict(welch='Welch t-test', mwu='Mann–Whitney U', perm='permutation test')[primary]}"
          f" p ≤ {alpha:g} (Holm across weights, per metric)", ""]
    md += ["## Verdict", "", "```", a.verdict, "```", ""]
    if a.notes:
        md += ["Notes:", ""] + [f"- {n}" for n in a.notes] + [""]
    if a.results is not None:
        md += ["## Statistics per metric", ""]
        md += [_metric_section(a, m) for m in a.metrics]
    captions = {
        "fes": "Reference FES (TIC 1/TIC 2, kcal/mol) and the pooled model FES of each weight (histograms of all "
               "trials of a weight summed, F = −k_BT ln p, minimum 0; white = unvisited; colours clipped at the 99th percentile).",
        "fes_difference": "F_model − F_reference per weight (kcal/mol) over bins visited by both; red = model "
                          "higher (under-populated), blue = lower (over-populated).",
        "metrics": "Each metric vs weight: grey dots = seeds, red = mean with bootstrap 95% CI; marks above = "
                   "Holm-corrected test vs baseline.",
        "trapping": "Trapping: basin transitions per replica (all replicas of all seeds of a weight) and the "
                    "population of the deepest well per trial vs the reference.",
        "training": "Training curves per trial (colour = weight; solid = training, dashed = validation).",
    }
    if a.figures:
        md += ["## Figures", ""]
        for key, path in a.figures.items():
            caption = captions.get(re.sub(r"_\d+$", "", key), key)
            md += [f"![{key}](figures/{path.name})", "", f"*{caption}*", ""]
    md += ["## Trials", ""]
    cols = ["trial_id", a.group, "seed", "status", "error", "runtime_s"] + a.metrics[:6]
    cols = list(dict.fromkeys(c for c in cols if c in t.columns))
    md += [_md_table(cols, t[cols].itertuples(index=False)), ""]
    if len(a.metrics) > 6:
        md += ["(all metrics: `trials.parquet`; statistics: `summary.csv`)", ""]
    md += ["## Methods", "",
           f"- Per weight: n (successful trials), mean, SD (ddof 1), 95% bootstrap CI of the mean "
           f"(BCa, {n_resamples} resamples, seeded {seed}; percentile where BCa is undefined).",
           "- Each weight vs the baseline: Welch's unequal-variance t-test, Mann–Whitney U (two-sided, exact for "
           "small samples without ties), and a permutation test of the difference of means (exact enumeration "
           f"when the number of splits ≤ {n_resamples}, else seeded random permutations).",
           "- Holm–Bonferroni step-down correction across the weights compared with the baseline, separately per "
           "metric and per test (columns `*_p_holm`). Only corrected p-values decide significance; metrics are "
           "not corrected jointly, so read many metrics as many families.",
           "- Effect sizes: Hedges' g (difference of means / pooled SD, exact small-sample factor J) and Cliff's δ "
           "(P(weight > baseline) − P(weight < baseline)); both signed weight − baseline.",
           "- Omnibus: Kruskal–Wallis across all weights. Trend: Spearman ρ of metric vs weight value (uncorrected).",
           f"- Power: seeds per weight for 80% power to detect the observed |g| with a two-sided two-sample t-test "
           f"at α = {alpha:g} (noncentral t, equal n; `seeds_needed_bonferroni` uses α / number of comparisons, "
           "a safe bound for Holm). The observed g of a small study is itself noisy: treat it as a planning figure.",
           "- With 3 seeds per weight Mann–Whitney cannot reach p < 0.1 and an exact permutation test not below "
           "0.1 either; Welch's test is the primary test for that reason.",
           "- Failed trials are shown in the trial table and counted as missing (`n_missing`), never dropped "
           "silently; their partial metrics are not used.",
           "- KL direction: KL(ref‖model) = Σ p_ref ln(p_ref / p_model) punishes reference states the model "
           "misses; KL(model‖ref) punishes states the model visits but the reference does not.", "",
           "## Limitations", "",
           "- The FES here is a free energy of two TICA coordinates of the reference; matching it does not mean "
           "the CG potential of mean force over all bead coordinates is matched (distance-based TICs are also "
           "blind to chirality).",
           "- Seeds give the spread between independent trainings and simulations; the statistics do not include "
           "the sampling error of each trajectory beyond that.",
           "- Pooled FES sum the histograms of all seeds of a weight, which weights seeds by their number of "
           "frames (replicas that blew up contribute fewer).", "",
           "## Provenance", ""]
    md += _provenance(a)
    return "\n".join(md) + "\n"
