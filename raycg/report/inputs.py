"""What the report reads besides the trial table: the spec's ``analysis:`` section, the noise floor
(``prepared/noise_floor.json``) and each trial's convergence verdict."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raycg.errors import InputError
from raycg.evaluate.convergence import Convergence
from raycg.evaluate.metric_table import DEFAULT_PRIMARY, find_metric, headline_metrics
from raycg.report.table import load_convergence
from raycg.stats.convergence import study_convergence_gate

NOISE_FLOOR = Path("prepared") / "noise_floor.json"
GATE_POWER = Path("prepared") / "gate_power.json"


@dataclass
class AnalysisSettings:
    """The spec's ``analysis:`` section (or its defaults); ``source`` says which."""

    primary_metric: str = DEFAULT_PRIMARY
    secondary_metrics: list[str] = field(default_factory=lambda: [m for m in headline_metrics()
                                                                  if m != DEFAULT_PRIMARY])
    alpha: float = 0.05
    equivalence_margin: float | None = None
    target_effect_size: float | None = 1.0
    source: str = "defaults"
    decision_test: str = "sign-flip"


def study_spec(study: Path) -> dict[str, Any]:
    """The study's spec as a mapping: ``STUDY/spec.yaml``, else ``study.json``'s copy, else {}."""
    path = study / "spec.yaml"
    if path.is_file():
        from raycg.config import load_yaml_text

        spec, _ = load_yaml_text(path)   # guarded: encoding, depth, aliases, duplicate keys
        return spec if isinstance(spec, dict) else {}
    try:
        return dict(json.loads((study / "study.json").read_text()).get("spec") or {})
    except (OSError, ValueError, AttributeError):
        return {}


def analysis_settings(study: Path) -> AnalysisSettings:
    """Settings from ``STUDY/spec.yaml`` → ``analysis:`` (study.json's spec when there is no spec.yaml)."""
    section = study_spec(study).get("analysis")
    if not isinstance(section, dict):
        return AnalysisSettings(source="defaults (the spec has no analysis: section)")
    where = f"{study / 'spec.yaml'}: analysis"
    primary = str(section.get("primary_metric") or DEFAULT_PRIMARY)
    spec = find_metric(primary)
    if spec is None or not spec.can_be_primary:
        raise InputError(f"primary_metric {primary!r} cannot be a primary metric", where=where,
                         hint="pick a metric with can_be_primary in raycg/evaluate/METRICS.md")
    secondary = section.get("secondary_metrics")
    secondary = [m for m in headline_metrics() if m != primary] if secondary is None else [str(m) for m in secondary]
    alpha = float(section.get("alpha", 0.05))
    if not 0 < alpha < 0.5:
        raise InputError(f"alpha {alpha} must be in (0, 0.5)", where=where)
    margin = section.get("equivalence_margin")
    target = section.get("target_effect_size", 1.0)
    from raycg.stats import DECISION_TESTS

    decision = str(section.get("decision_test") or "sign-flip")
    if decision not in DECISION_TESTS:
        raise InputError(f"decision_test {decision!r} unknown", where=where,
                         hint=f"use one of {', '.join(DECISION_TESTS)}")
    return AnalysisSettings(primary, [m for m in secondary if m != primary], alpha,
                            None if margin is None else float(margin), None if target is None else float(target),
                            "the spec's analysis: section", decision)


@dataclass
class Grouping:
    """What a study compares: ``group`` (a config column), its ``baseline`` (None: the smallest), the
    groups' ``order`` (None: sorted), how the comparisons share α (``multiplicity``), the groups'
    names in verdict lines (``labels``) and, for arms, what each arm sets (``arms``)."""

    group: str = "energy_weight"
    baseline: Any = None
    order: list[Any] | None = None
    multiplicity: str = "holm"
    labels: dict[Any, str] = field(default_factory=dict)
    arms: dict[str, dict[str, Any]] = field(default_factory=dict)


def study_grouping(study: Path, group: str | None = None, baseline: Any = None) -> Grouping:
    """The spec's ``grid.arms`` (each arm vs ``grid.baseline``, the others in ``grid.order``, with
    ``grid.multiplicity``) or, without arms, the energy weights; ``group``/``baseline`` override."""
    grid = study_spec(study).get("grid")
    arms = grid.get("arms") if isinstance(grid, dict) else None
    if not isinstance(arms, dict) or not arms or group not in (None, "arm"):
        return Grouping(group or "energy_weight", baseline)
    base = baseline if baseline is not None else grid.get("baseline")
    if base not in arms:
        raise InputError(f"{study}: baseline {base!r} is not one of the arms ({', '.join(arms)})")
    declared = base == grid.get("baseline")  # another baseline: the declared order and sequence do not apply
    others = (grid.get("order") if declared else None) or sorted(a for a in arms if a != base)
    multiplicity = str(grid.get("multiplicity") or "holm") if declared else "holm"
    return Grouping("arm", base, [base, *(a for a in others if a != base)], multiplicity,
                    {a: str(a) for a in arms}, {a: dict(v) for a, v in arms.items() if isinstance(v, dict)})


@dataclass
class Floor:
    """The study's noise floor: ``metrics[m]`` has mean, sd, q025, q975, n (raycg.evaluate.FloorStat)."""

    metrics: dict[str, Any]
    protocol: dict[str, Any]
    n_repeats: int
    converged_fraction: float
    notes: list[str]
    path: Path
    convergence: list[Convergence] = field(default_factory=list)   # per repeat (empty in older floor files)
    method: str = "in-sample"                 # "held-out": segments from trajectories the scoring reference lacks
    split: dict[str, Any] = field(default_factory=dict)             # raycg.evaluate.floor.ReferenceSplit record
    in_sample: dict[str, Any] | None = None   # a held-out floor's in-sample companion summary, for comparison


def load_noise_floor(study: Path) -> Floor | None:
    """``STUDY/prepared/noise_floor.json`` read by ``raycg.evaluate.NoiseFloor.load``; None if absent."""
    from raycg.evaluate import NoiseFloor

    path = study / NOISE_FLOOR
    if not path.is_file():
        return None
    nf = NoiseFloor.load(path)
    return Floor(dict(nf.metrics), nf.protocol.to_dict(), int(nf.n_repeats), float(nf.converged_fraction),
                 list(nf.notes), path, list(nf.convergence), nf.method, dict(nf.split or {}), nf.in_sample)


def load_gate_power(study: Path) -> Any | None:
    """``STUDY/prepared/gate_power.json`` (:class:`raycg.evaluate.gate_power.GatePower`); None if absent."""
    from raycg.evaluate.gate_power import GatePower

    path = study / GATE_POWER
    return GatePower.load(path) if path.is_file() else None


# --- convergence ------------------------------------------------------------------------------------------------

#: Short names of the convergence checks, recognised in the reasons evaluate writes (METRICS.md).
_CHECKS = (("slowest implied timescale", "replicas too short for the slowest implied timescale"),
           ("transitions per replica", "too few folding/unfolding transitions per replica"),
           ("halves", "first and second halves of the runs disagree (drift)"),
           ("started folded", "replicas remember their start basin"),
           ("frame spacing unknown", "frame spacing unknown"))


def note_label(note: str) -> str:
    """A short name for a convergence note (its text up to the first colon)."""
    return re.split(r"[:(]", note, maxsplit=1)[0].strip()[:80] or note[:80]


def _short(reason: str) -> str:
    for key, name in _CHECKS:
        if key in reason:
            return name
    return note_label(reason)


def convergence_table(study: Path, trials: pd.DataFrame, group: str) -> pd.DataFrame:
    """One row per successful trial under the study's convergence gate (:func:`raycg.stats.study_convergence_gate`:
    permutation tests Holm-adjusted over the trials): converged (True/False/None = not assessed), the trial's
    own verdict at the per-trial α (``converged_alone``), reasons (a list), notes, diagnostics."""
    records = [load_convergence(study / "trials" / str(t)) for t in trials["trial_id"]]
    gated = study_convergence_gate([None if c is None else Convergence.from_dict(c) for c in records])
    rows = []
    for (_, t), c, g in zip(trials.iterrows(), records, gated):
        diag = (c or {}).get("diagnostics", {})
        rows.append({"trial_id": t["trial_id"], group: t.get(group), "seed": t.get("seed"),
                     "converged": None if g is None else g.converged,
                     "converged_alone": None if c is None else bool(c["converged"]),
                     "reasons": g.reasons if g is not None else ["no convergence diagnostics recorded"],
                     "notes": list(c.get("notes", [])) if c else [],
                     "run_longer_factor": g.run_longer_factor if g is not None else np.nan,
                     "time_over_timescale": float(diag.get("time_over_timescale", np.nan)),
                     "model_timescale_ps": float(diag.get("model_slowest_timescale_ps", np.nan)),
                     "crossings_per_replica": float(diag.get("crossings_per_replica", np.nan)),
                     "replica_time_lost_fraction": float(t.get("replica_time_lost_fraction", np.nan)),
                     "tests": {} if g is None else dict(g.tests)})
    return pd.DataFrame(rows, columns=["trial_id", group, "seed", "converged", "converged_alone", "reasons", "notes",
                                       "run_longer_factor", "time_over_timescale", "model_timescale_ps",
                                       "crossings_per_replica",
                                       "replica_time_lost_fraction", "tests"])


def convergence_csv(conv: pd.DataFrame) -> pd.DataFrame:
    """:func:`convergence_table` flat: lists joined by "; ", each permutation test's p-value alone and
    Holm-adjusted over the study's trials as columns ``p_<test>`` and ``p_<test>_holm``."""
    flat = conv.drop(columns=["tests"]).assign(reasons=["; ".join(r) for r in conv["reasons"]],
                                               notes=["; ".join(n) for n in conv["notes"]])
    names = sorted({n for tests in conv["tests"] for n in tests})
    for n in names:
        flat[f"p_{n}"] = [t[n].p if n in t else np.nan for t in conv["tests"]]
        flat[f"p_{n}_holm"] = [t[n].p_adjusted if n in t and t[n].p_adjusted is not None else np.nan
                               for t in conv["tests"]]
    return flat


def study_convergence(conv: pd.DataFrame) -> tuple[bool, list[str], float | None]:
    """(converged, reasons, run-longer factor) of the study: converged only when every successful
    trial was assessed and converged; the factor is the largest any trial needs (None if unknown)."""
    if conv.empty:
        return False, ["no successful trial"], None
    missing = int(conv["converged"].isna().sum())
    bad = conv[conv["converged"].eq(False)]
    reasons = []
    if len(bad):
        counts: dict[str, int] = {}
        for listed in bad["reasons"]:
            for r in listed or ["no reasons recorded"]:
                counts[_short(r)] = counts.get(_short(r), 0) + 1
        what = ", ".join(f"{k} ({v})" if len(bad) > 1 else k for k, v in counts.items())
        reasons.append(f"{len(bad)} of {len(conv)} trials not converged: {what}")
    if missing:
        reasons.append(f"convergence not assessed for {missing} of {len(conv)} trials (no diagnostics recorded)")
    f = conv["run_longer_factor"].to_numpy(float)
    factor = float(np.nanmax(f)) if np.isfinite(f).any() and np.nanmax(f) > 1 else None
    return not reasons, reasons, factor
