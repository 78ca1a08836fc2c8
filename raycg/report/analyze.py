"""``run_analysis(study_dir)``: trial table, statistics, figures and the Markdown report of a study.

Reads ``STUDY/spec.yaml`` (``analysis:``: primary metric, secondary metrics, α, equivalence margin,
target effect size; ``grid:``: arms, their baseline, order and multiplicity), ``trials/*/result.json``
(``metrics``, ``convergence``) and ``prepared/noise_floor.json``. A study with ``grid.arms`` is
grouped by arm (each arm vs the baseline arm, paired by seed), any other by energy weight. Writes
(each atomically) ``results/figures/*.png``, ``results/trials.parquet``, ``results/summary.csv``
(one row per metric × weight), ``results/convergence.csv`` and, last, ``results/report.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raycg.errors import InputError
from raycg.report import figures as fg
from raycg.report.inputs import (
    AnalysisSettings,
    Floor,
    Grouping,
    analysis_settings,
    convergence_csv,
    convergence_table,
    load_gate_power,
    load_noise_floor,
    study_convergence,
    study_grouping,
)
from raycg.report.table import load_fes, load_history, parquet_safe, trial_table, trials_dir
from raycg.stats import StudyStatistics, analyze_study, format_group, group_symbol, sorted_groups
from raycg.units import KB_KCAL_PER_MOL_K
from raycg.utils.io import atomic_path, atomic_write_text

METRICS_PER_FIGURE = 9
_TEMPERATURE_KEYS = ("temperature_K", "sim.temperature_K", "simulation.temperature_K", "temperature")


@dataclass
class Analysis:
    """Everything :func:`run_analysis` computed. ``verdict_lines`` is what the CLI prints."""

    study_dir: Path
    table: pd.DataFrame
    settings: AnalysisSettings
    group: str
    metrics: list[str]
    statistics: StudyStatistics | None
    convergence: pd.DataFrame
    floor: Floor | None
    summary: pd.DataFrame
    verdict_lines: list[str]
    report_path: Path
    figures: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    gate_power: Any | None = None          # raycg.evaluate.gate_power.GatePower of prepared/, if computed
    grouping: Grouping | None = None       # what was compared with what (arms or energy weights)

    @property
    def report(self) -> Path:
        return self.report_path

    @property
    def verdict(self) -> str:
        return "\n".join(self.verdict_lines)


def analyze(study_dir: str | Path, metrics: Sequence[str] | None = None, **kwargs: Any) -> Path:
    """Analyse a study directory; returns the path of ``results/report.md``. See :func:`run_analysis`."""
    return run_analysis(study_dir, metrics, **kwargs).report_path


def run_analysis(study_dir: str | Path, metrics: Sequence[str] | None = None, *, group: str | None = None,
                 baseline: Any = None, primary_metric: str | None = None, alpha: float | None = None,
                 figures: bool = True) -> Analysis:
    """Statistics, figures and report of a study (only ``ok`` trials; failed ones count as missing).

    The spec's ``analysis:`` section names the primary and secondary metrics, α, the equivalence
    margin and the target effect size; ``primary_metric``/``alpha`` override it. ``metrics`` adds
    exploratory metrics (corrected across weights only, labelled so). ``group`` (default: ``arm``
    for a study with ``grid.arms``, else ``energy_weight``) and ``baseline`` (default: the baseline
    arm, else the smallest value of ``group``) say what is compared with what.
    """
    study = Path(study_dir)
    tdir = trials_dir(study)
    table = trial_table(study)
    settings = _settings(study, primary_metric, alpha)
    grouping = study_grouping(study, group, baseline)
    group, baseline = grouping.group, grouping.baseline
    notes: list[str] = [f"Analysis settings: {settings.source}."]
    _numeric_group(table, group, study)
    data = table[table["status"].isin(["ok", "failed"]) & table[group].notna()].copy()
    metric_cols = list(table.attrs.get("metrics", []))
    data.loc[data["status"] != "ok", metric_cols] = np.nan  # a failed trial's partial metrics are not results
    _note_unfinished(table, notes)
    _note_varying(table, data, group, notes)
    ok = data[data["status"] == "ok"]
    floor = load_noise_floor(study)
    gate = load_gate_power(study)
    conv = convergence_table(study, ok, group)
    chosen = _metrics(settings, ok, metrics, notes)
    stats = None
    lines = ["No successful trials with metrics: nothing to test."]
    if chosen and len(ok):
        converged, reasons, factor = study_convergence(conv)
        stats = analyze_study(data, metrics=chosen, primary=settings.primary_metric, group=group, baseline=baseline,
                              alpha=settings.alpha, equivalence_margin=settings.equivalence_margin,
                              target_effect_size=settings.target_effect_size, converged=converged,
                              convergence_reasons=reasons, exploratory=chosen[1 + len(_secondary(settings, ok)):],
                              run_longer_factor=factor, decision_test=settings.decision_test,
                              order=grouping.order, multiplicity=grouping.multiplicity, labels=grouping.labels)
        lines = stats.verdict_lines
        notes += stats.notes
    else:
        notes.append(lines[0])
    out = study / "results"
    made = _make_figures(table, data, stats, chosen, group, tdir, out / "figures", floor, notes) if figures else {}
    summary = _summary(stats, floor)
    with atomic_path(out / "trials.parquet") as tmp:
        parquet_safe(table).to_parquet(tmp, index=False)
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False))
    atomic_write_text(out / "convergence.csv", convergence_csv(conv).to_csv(index=False))
    a = Analysis(study, table, settings, group, chosen, stats, conv, floor, summary, lines, out / "report.md",
                 made, notes, gate, grouping)
    from raycg.report.markdown import render

    atomic_write_text(a.report_path, render(a))
    return a


def _settings(study: Path, primary: str | None, alpha: float | None) -> AnalysisSettings:
    s = analysis_settings(study)
    if primary is not None and primary != s.primary_metric:
        s.primary_metric = primary
        s.secondary_metrics = [m for m in s.secondary_metrics if m != primary]
        s.source += f"; primary metric {primary} given on the command line"
    if alpha is not None:
        if not 0 < alpha < 0.5:
            raise InputError(f"alpha {alpha} must be in (0, 0.5)")
        s.alpha = alpha
        s.source += f"; α = {alpha:g} given on the command line"
    return s


def _numeric_group(table: pd.DataFrame, group: str, study: Path) -> None:
    if group not in table.columns:
        raise InputError(f"{study}: no config column {group!r} in the trials",
                         hint=f"pick --group from {', '.join(table.attrs.get('config_columns', []))}")
    if table[group].dtype == object:  # e.g. weights written as strings: compare them as numbers
        num = pd.to_numeric(table[group], errors="coerce")
        if num.notna().sum() == table[group].notna().sum():
            table[group] = num


def _note_unfinished(table: pd.DataFrame, notes: list[str]) -> None:
    left = table[~table["status"].isin(["ok", "failed"])]
    if len(left):
        notes.append(f"{len(left)} trial(s) not finished ({', '.join(sorted(set(left['status'])))}): not analysed.")


def _note_varying(table: pd.DataFrame, data: pd.DataFrame, group: str, notes: list[str]) -> None:
    """A note naming config columns that vary *within* a group (one set by the group, e.g. an arm's
    energy weight, is not pooling)."""
    varying = [c for c in table.attrs.get("config_columns", []) if c != group and "seed" not in c.rsplit(".", 1)[-1]
               and (data.groupby(group)[c].agg(lambda v: v.dropna().astype(str).nunique()) > 1).any()]
    if varying:
        notes.append(f"Config columns other than {group!r} vary between trials ({', '.join(varying)}); each "
                     f"{group} group pools them. Use --group or a study per setting if that is not intended.")


def _present(ok: pd.DataFrame, m: str) -> bool:
    return m in ok.columns and bool(np.isfinite(pd.to_numeric(ok[m], errors="coerce")).any())


def _secondary(s: AnalysisSettings, ok: pd.DataFrame) -> list[str]:
    return [m for m in s.secondary_metrics if _present(ok, m)]


def _metrics(s: AnalysisSettings, ok: pd.DataFrame, extra: Sequence[str] | None, notes: list[str]) -> list[str]:
    """[primary, *secondary present, *exploratory] (empty when no trial succeeded)."""
    if ok.empty:
        return []
    if not _present(ok, s.primary_metric):
        raise InputError(f"primary metric {s.primary_metric!r} is in no successful trial's result.json",
                         hint="set analysis.primary_metric in the spec to a metric the trials report")
    sec = _secondary(s, ok)
    absent = [m for m in s.secondary_metrics if m not in sec]
    if absent:
        notes.append(f"Secondary metric(s) not reported by any successful trial: {', '.join(absent)}.")
    unknown = [m for m in extra or [] if m not in ok.columns]
    if unknown:
        raise InputError(f"metric(s) {', '.join(unknown)} not in any trial's result.json")
    explore = [m for m in extra or [] if m != s.primary_metric and m not in sec and _present(ok, m)]
    return [s.primary_metric, *sec, *dict.fromkeys(explore)]


def _summary(stats: StudyStatistics | None, floor: Floor | None) -> pd.DataFrame:
    if stats is None:
        return pd.DataFrame(columns=["metric", "group", "n", "mean"])
    t = stats.table()
    if floor is not None:
        fm = {m: floor.metrics[m] for m in t["metric"].unique() if m in floor.metrics}
        t["floor_mean"] = [fm[m].mean if m in fm else np.nan for m in t["metric"]]
        t["floor_sd"] = [fm[m].sd if m in fm else np.nan for m in t["metric"]]
        t["excess_over_floor"] = t["mean"] - t["floor_mean"]
    return t


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


def _pooled_fes(table: pd.DataFrame, ok: pd.DataFrame, group: str, symbol: str, tdir: Path, fig_dir: Path,
                notes: list[str], order: Sequence[Any] = ()) -> dict[str, Path]:
    made: dict[str, Path] = {}
    present = sorted_groups(ok[group].tolist())
    groups = [g for g in order if g in present] + [g for g in present if g not in order]
    fes: dict[Any, list[dict[str, np.ndarray]]] = {}
    ref = None
    for _, row in ok.iterrows():
        f = load_fes(tdir / str(row["trial_id"]))
        if f is None:
            continue
        ref = ref if ref is not None else f
        if f["edges_x"].shape != ref["edges_x"].shape or not (
                np.allclose(f["edges_x"], ref["edges_x"]) and np.allclose(f["edges_y"], ref["edges_y"])):
            notes.append(f"Trial {row['trial_id']}: FES grid differs from the first trial's; left out of pooled FES.")
            continue
        fes.setdefault(row[group], []).append(f)
    if ref is None:
        notes.append("No fes.npz in any successful trial: no FES or trapping figures.")
        return made
    kt = _kt(table, ref, notes)
    pooled = {f"{symbol}={format_group(g)} (pooled, {len(fes[g])} trials)":
              fg.free_energy(sum(np.asarray(x["hist_model"], float) for x in fes[g]), kt) for g in groups if g in fes}
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
    return made


def _make_figures(table: pd.DataFrame, data: pd.DataFrame, stats: StudyStatistics | None, metrics: list[str],
                  group: str, tdir: Path, fig_dir: Path, floor: Floor | None, notes: list[str]) -> dict[str, Path]:
    symbol = group_symbol(group)
    made: dict[str, Path] = {}
    if stats is not None and stats.pair_by and len(stats.metrics[stats.primary].paired):
        made["paired"] = fg.plot_paired_differences(data, stats, fig_dir / "paired_differences.png")
    if stats is not None and metrics:
        for i in range(0, len(metrics), METRICS_PER_FIGURE):
            suffix = "" if i == 0 else f"_{i // METRICS_PER_FIGURE + 1}"
            made[f"metrics{suffix}"] = fg.plot_metrics(data, stats, metrics[i:i + METRICS_PER_FIGURE], symbol,
                                                       fig_dir / f"metrics_vs_weight{suffix}.png",
                                                       floor.metrics if floor else None)
    ok = data[data["status"] == "ok"]
    if stats is not None and "missed_reference_mass" in ok.columns and ok["missed_reference_mass"].notna().any():
        made["support"] = fg.plot_support(ok, group, stats.groups, symbol, fig_dir / "support.png",
                                          floor.metrics.get("missed_reference_mass") if floor else None)
    order = list(stats.groups) if stats is not None else sorted_groups(table[group].dropna().tolist())
    made.update(_pooled_fes(table, ok, group, symbol, tdir, fig_dir, notes, order))
    hist = []
    order += [g for g in sorted_groups(table[group].dropna().tolist()) if g not in order]
    for _, row in table[table[group].notna()].iterrows():
        h = load_history(tdir / str(row["trial_id"]))
        if h is not None:
            hist.append((order.index(row[group]), format_group(row[group]), str(row["trial_id"]), h))
    if hist:
        hist.sort(key=lambda t: t[0])
        made["training"] = fg.plot_training([t[1:] for t in hist], symbol, fig_dir / "training_curves.png")
    return made
