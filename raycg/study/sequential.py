"""The planner of a sequential study (``analysis.design: sequential``), without Ray.

:func:`plan_next_look` takes the spec and the trial table (one row per finished trial: ``status``
ok|failed, ``energy_weight``, ``seed``, the primary metric) and replays the looks of
``analysis.looks``: at each look whose trials have all finished it tests every weight still running
against the baseline (the smallest weight) with :func:`raycg.stats.sequential.decide_look`, and says
what the next wave must run. Decided weights get no more seeds; the baseline runs while any weight
does. A look whose trials fail the convergence gate stops nothing for efficacy, equivalence or
futility (at the last look its weights end "inconclusive").

Decisions are binding: each analysed look is appended to ``sequential.json`` in the study folder
(through :class:`raycg.study.storage.Store`, atomically), and a later call (a resumed study) takes
those looks from the record instead of testing them again, refusing a spec whose design changed.
The record (``format``, ``version``, ``design``: :func:`design_of`; ``looks``: each analysed look's
tests and decision state; ``decisions``: each weight's :class:`WeightDecision` as JSON, keyed by
``repr(weight)``; ``finished``; ``next``: the look the next wave completes, its seed count and the
weights it runs, or None) is all the report reads (raycg.report.sequential).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raycg.errors import ConfigError, InputError
from raycg.stats import sequential as sq

#: the record of the analysed looks, in the study folder
RECORD = "sequential.json"
FORMAT = "raycg-sequential-decisions"
VERSION = 1
#: a weight's ``state``: still running, or why it stopped (raycg.stats.sequential.REASONS)
STATES = ("continue", *sq.REASONS)
_STATUSES = (
    "significant improvement",
    "significant worsening",
    "equivalent",
    "no significant difference",
    "inconclusive",
)
_STATE_KEYS = (
    "stopped",
    "rejected",
    "eq_rejected",
    "look",
    "reason",
    "status",
    "r",
    "level",
    "eq_level",
    "cp",
)

#: (trials of one look) -> (converged, reasons): the convergence gate applied to a look
Convergence = Callable[[pd.DataFrame], tuple[bool, list[str]]]


@dataclass(frozen=True)
class WeightDecision:
    """Where one weight stands. ``look`` (1-based) and ``seeds``: the look it stopped at, or
    the last analysed one while it runs (0 before the first). ``p``/``level``: the decision test's
    p and the nominal level it was compared with; ``adjusted_p``: stagewise-ordered p-value;
    ``ci_*``: the repeated confidence interval at that look (NaN bounds: unbounded);
    ``equivalent``: TOST passed."""

    weight: float
    state: str
    status: str
    look: int
    seeds: int
    n_pairs: int = 0
    mean_diff: float = math.nan
    p: float = math.nan
    level: float = math.nan
    tost_p: float = math.nan
    eq_level: float = math.nan
    conditional_power: float = math.nan
    adjusted_p: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    ci_level: float = math.nan
    equivalent: bool = False
    reason: str = ""

    @property
    def decided(self) -> bool:
        return self.state != "continue"


@dataclass(frozen=True)
class SequentialPlan:
    """What the driver does next. ``look`` (1-based) and ``seeds``: the look the next wave completes
    (the last analysed one once ``finished``); ``seeds_to_run``: per weight (the baseline included),
    the seeds of that look with no finished trial yet (the driver skips those already queued);
    ``decisions``: every compared weight; ``looks``: the analysed looks as recorded."""

    look: int
    seeds: int
    decisions: dict[float, WeightDecision]
    seeds_to_run: dict[float, list[int]]
    finished: bool
    baseline: float
    design: dict[str, Any]
    looks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def trials_fixed(self) -> int:
        """Trials of the fixed design of the same largest size (every weight, every seed)."""
        return (
            (len(self.decisions) + 1)
            * int(self.design["looks"][-1])
            * int(self.design.get("per_cell", 1))
        )

    @property
    def trials_planned(self) -> int:
        """Trials run or to run so far: each weight up to its look, the baseline up to the
        largest."""
        seeds = [self._seeds(d) for d in self.decisions.values()]
        return (sum(seeds) + max(seeds, default=0)) * int(self.design.get("per_cell", 1))

    def _seeds(self, d: WeightDecision) -> int:
        return d.seeds if d.decided else max(d.seeds, self.seeds)


def _num(x: Any) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _float(x: Any) -> float:
    return math.nan if x is None else float(x)


def _key(w: float) -> str:
    return repr(float(w))


def design_of(spec: Any) -> dict[str, Any]:
    """The design a sequential record is bound to (a resumed study must have the same)."""
    a, g = spec.analysis, spec.grid
    per_cell = 1
    for values in g.sweep.values():
        per_cell *= len(values)
    return {
        "looks": list(a.looks or []),
        "seeds": [int(s) for s in g.seed_list()],
        "weights": sorted(float(w) for w in g.energy_weights),
        "alpha": float(a.alpha),
        "spending": a.spending,
        "decision_test": a.decision_test,
        "futility": a.futility,
        "futility_power": float(a.futility_power),
        "equivalence_margin": a.equivalence_margin,
        "target_effect_size": a.target_effect_size,
        "primary_metric": a.primary_metric,
        "per_cell": per_cell,
    }


_FIELD = {
    "looks": "analysis.looks",
    "seeds": "grid.seeds",
    "weights": "grid.energy_weights",
    "alpha": "analysis.alpha",
    "spending": "analysis.spending",
    "decision_test": "analysis.decision_test",
    "futility": "analysis.futility",
    "futility_power": "analysis.futility_power",
    "equivalence_margin": "analysis.equivalence_margin",
    "target_effect_size": "analysis.target_effect_size",
    "primary_metric": "analysis.primary_metric",
    "per_cell": "grid.sweep",
}


def load_record(store: Any, design: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The study's ``sequential.json`` (None if absent); with ``design``, ConfigError naming
    the first spec field that differs from the recorded design."""
    rec = store.try_read_json(RECORD)
    if rec is None:
        if store.exists(RECORD):
            raise InputError(
                f"{store.uri(RECORD)}: not a readable sequential record",
                hint="restore it from a backup; decisions already taken cannot be re-derived",
            )
        return None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT or rec.get("version") != VERSION:
        raise InputError(f"{store.uri(RECORD)}: not a raycg sequential record of version {VERSION}")
    if design is not None:
        for k, v in design.items():
            if rec["design"].get(k) != v:
                raise ConfigError(
                    f"{_FIELD.get(k, k)} changed since the sequential study started (recorded "
                    f"{rec['design'].get(k)!r}, now {v!r})",
                    hint="a sequential design cannot change midway; restore the spec's value",
                )
    return rec


def _convergence_from_column(trials: pd.DataFrame) -> tuple[bool, list[str]]:
    if "converged" not in trials.columns:
        raise InputError(
            "the trial table has no 'converged' column",
            hint="pass convergence= (e.g. gate_convergence(study_dir)) or add the column",
        )
    ok = trials[trials["status"] == "ok"]
    vals = [
        None if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v)
        for v in ok["converged"]
    ]
    bad, missing = sum(v is False for v in vals), sum(v is None for v in vals)
    reasons = ([f"{bad} of {len(vals)} trials not converged"] if bad else []) + (
        [f"convergence not assessed for {missing} of {len(vals)} trials"] if missing else []
    )
    return not reasons and bool(vals), reasons or ([] if vals else ["no successful trial"])


def gate_convergence(study_dir: str | Path) -> Convergence:
    """The report's convergence gate (raycg.report.inputs) over a look's trials of a local study."""
    from raycg.report.inputs import convergence_table, study_convergence

    def gate(trials: pd.DataFrame) -> tuple[bool, list[str]]:
        ok, reasons, _ = study_convergence(
            convergence_table(Path(study_dir), trials[trials["status"] == "ok"], "energy_weight")
        )
        return ok, reasons

    return gate


@dataclass
class _Table:
    """Finished trials by (weight, seed): how many, and the cell's primary-metric value."""

    finished: dict[tuple[float, int], int]
    value: dict[tuple[float, int], float]
    rows: pd.DataFrame


def _table(table: pd.DataFrame, metric: str, weights: list[float]) -> _Table:
    if table.empty:  # nothing finished yet (a table with no rows may have no columns)
        table = pd.DataFrame(columns=["status", "energy_weight", "seed", metric])
    for col in ("status", "energy_weight", "seed"):
        if col not in table.columns:
            raise InputError(f"the trial table has no {col!r} column")
    t = table[table["status"].isin(["ok", "failed"])].copy()
    w = pd.to_numeric(t["energy_weight"], errors="coerce").to_numpy(float)
    t["_w"] = [
        next((x for x in weights if math.isclose(v, x, rel_tol=1e-9, abs_tol=1e-12)), math.nan)
        for v in w
    ]
    t["_s"] = pd.to_numeric(t["seed"], errors="coerce")
    t = t[t["_w"].notna() & t["_s"].notna()]
    vals = (
        pd.to_numeric(t[metric], errors="coerce")
        if metric in t.columns
        else pd.Series(np.nan, t.index)
    )
    t["_v"] = np.where(t["status"] == "ok", vals.astype(float), np.nan)
    finished: dict[tuple[float, int], int] = {}
    value: dict[tuple[float, int], float] = {}
    for (wk, sk), grp in t.groupby(["_w", "_s"]):
        key = (float(wk), int(sk))
        finished[key] = len(grp)
        v = grp["_v"].to_numpy(float)
        v = v[np.isfinite(v)]
        value[key] = float(v.mean()) if v.size else math.nan
    return _Table(finished, value, t)


def _diffs(tab: _Table, w: float, base: float, seeds: list[int]) -> np.ndarray:
    d = [tab.value.get((w, s), math.nan) - tab.value.get((base, s), math.nan) for s in seeds]
    return np.array([x for x in d if math.isfinite(x)], dtype=float)


def plan_next_look(
    spec: Any,
    table: pd.DataFrame,
    *,
    store: Any = None,
    convergence: Convergence | None = None,
    persist: bool = True,
) -> SequentialPlan:
    """Decide every weight at each look whose trials have finished, and say what to run next.

    ``spec``: a validated StudySpec with ``analysis.design: sequential``; ``table``: one row per
    trial (unfinished ones may be absent; statuses other than ok/failed are ignored); ``store``: the
    study's Store, whose ``sequential.json`` holds the looks already decided (read, then rewritten
    atomically after each new look; None: nothing is read or written); ``convergence``: the gate
    for a look's trials (default: every ok trial's ``converged`` column is true); ``persist`` False
    reads the record but writes nothing (the report).
    """
    a = spec.analysis
    if a.design != "sequential":
        raise ConfigError(
            "analysis.design is fixed: there are no looks to plan",
            hint="declare analysis.design: sequential (with looks) before the study starts",
        )
    design = design_of(spec)
    gate = convergence or _convergence_from_column
    weights = design["weights"]
    base, others = weights[0], weights[1:]
    m, looks, seeds = len(others), design["looks"], design["seeds"]
    tab = _table(table, a.primary_metric, weights)
    rec = load_record(store, design) if store is not None else None
    rec = rec or {
        "format": FORMAT,
        "version": VERSION,
        "design": design,
        "looks": [],
        "decisions": {},
    }
    state = sq.new_state((m,))
    if rec["looks"]:
        state = {k: np.array(v, dtype=state[k].dtype) for k, v in rec["looks"][-1]["state"].items()}
    decisions = {
        float(k): WeightDecision(**{**v, **{f: _float(v[f]) for f in _FLOATS}})
        for k, v in rec["decisions"].items()
    }
    decisions = {
        w: decisions.get(w, WeightDecision(w, "continue", "continue", 0, 0)) for w in others
    }
    per_cell = design["per_cell"]
    k = len(rec["looks"])
    while k < len(looks) and not state["stopped"].all():
        need = seeds[: looks[k]]
        running = [w for i, w in enumerate(others) if not state["stopped"][i]]
        missing = {
            w: [s for s in need if tab.finished.get((w, s), 0) < per_cell] for w in [base, *running]
        }
        missing = {w: v for w, v in missing.items() if v}
        if missing:
            return _plan(k, looks, missing, decisions, base, design, rec, False)
        look = _analyse(k, need, tab, base, others, state, rec, gate, design)
        state = look["state_arrays"]
        decisions = _decisions(k, look, others, state, decisions, design)
        rec["looks"].append({key: v for key, v in look.items() if key != "state_arrays"})
        rec["decisions"] = {_key(w): _json_decision(d) for w, d in decisions.items()}
        rec["finished"] = bool(state["stopped"].all()) or k + 1 >= len(looks)
        rec["next"] = None if rec["finished"] else {
            "look": k + 2,
            "seeds": int(looks[k + 1]),
            "weights": [base, *(w for i, w in enumerate(others) if not state["stopped"][i])],
        }
        if store is not None and persist:
            store.write_json(RECORD, rec)
        k += 1
    if state["stopped"].all() or k >= len(looks):
        return _plan(max(k - 1, 0), looks, {}, decisions, base, design, rec, True)
    nxt = seeds[: looks[k]]
    running = [w for i, w in enumerate(others) if not state["stopped"][i]]
    todo = {w: [s for s in nxt if tab.finished.get((w, s), 0) < per_cell] for w in [base, *running]}
    return _plan(
        k, looks, {w: v for w, v in todo.items() if v}, decisions, base, design, rec, False
    )


_FLOATS = (
    "mean_diff",
    "p",
    "level",
    "tost_p",
    "eq_level",
    "conditional_power",
    "adjusted_p",
    "ci_low",
    "ci_high",
    "ci_level",
)


def _json_decision(d: WeightDecision) -> dict[str, Any]:
    out = asdict(d)
    for f in _FLOATS:
        out[f] = _num(out[f])
    return out


def _plan(
    k: int,
    looks: list[int],
    todo: dict[float, list[int]],
    decisions: dict[float, WeightDecision],
    base: float,
    design: dict[str, Any],
    rec: dict[str, Any],
    finished: bool,
) -> SequentialPlan:
    return SequentialPlan(
        k + 1, looks[k], dict(decisions), todo, finished, base, design, list(rec["looks"])
    )


def _pair_history(rec: dict[str, Any], w: float, n_now: int) -> list[int]:
    return [int(lk["weights"][_key(w)]["n_pairs"]) for lk in rec["looks"]] + [n_now]


def _analyse(
    k: int,
    need: list[int],
    tab: _Table,
    base: float,
    others: list[float],
    state: dict[str, np.ndarray],
    rec: dict[str, Any],
    gate: Convergence,
    design: dict[str, Any],
) -> dict[str, Any]:
    """Test look ``k`` (0-based) and return its record (with the new state under
    ``state_arrays``)."""
    from raycg.evaluate.metric_table import find_metric

    m, n_max, alpha, n_looks = (
        len(others),
        design["looks"][-1],
        design["alpha"],
        len(design["looks"]),
    )
    test, margin, spending = (
        design["decision_test"],
        design["equivalence_margin"],
        design["spending"],
    )
    running = [w for i, w in enumerate(others) if not state["stopped"][i]]
    rows = tab.rows[tab.rows["_w"].isin([base, *running]) & tab.rows["_s"].isin(need)]
    converged, reasons = gate(rows.drop(columns=["_w", "_s", "_v"]))
    direction = getattr(find_metric(design["primary_metric"]), "direction", None)
    d = [_diffs(tab, w, base, need) for w in others]
    res = [
        sq.look_tests(x, test, margin if design["futility"] == "equivalence" else None) for x in d
    ]
    p = np.array([float(r["p"]) for r in res])
    mean = np.array([float(r["mean"]) for r in res])
    better = (mean < 0) if direction == "lower" else (mean > 0)
    pairs = [_pair_history(rec, w, x.size) for w, x in zip(others, d, strict=True)]
    eff = np.zeros((m, m))
    eq = np.zeros((m, m))
    for i in range(m):
        for r in range(1, m + 1):
            eff[r - 1, i] = sq.look_levels(pairs[i], n_max, alpha / r, spending, 2, n_looks)[k]
            eq[r - 1, i] = sq.look_levels(pairs[i], n_max, alpha / r, spending, 1, n_looks)[k]
    tost = (
        np.array([float(r.get("tost_p", math.nan)) for r in res])
        if design["futility"] == "equivalence"
        else None
    )
    cp = (
        _conditional_power(p, pairs, k, design)
        if design["futility"] == "conditional-power"
        else None
    )
    new = sq.decide_look(
        state,
        k,
        p,
        better,
        eff,
        final=k == len(design["looks"]) - 1,
        converged=converged,
        tost_p=tost,
        eq_levels=eq if tost is not None else None,
        cp=cp,
        futility_power=design["futility_power"] if cp is not None else None,
    )
    weights = {}
    for i, w in enumerate(others):
        weights[_key(w)] = {
            "n_pairs": int(d[i].size),
            "mean_diff": _num(mean[i]),
            "p": _num(p[i]),
            "better": bool(better[i]),
            "tost_p": None if tost is None else _num(tost[i]),
            "cp": None if cp is None else _num(cp[i]),
            "tested": bool(not state["stopped"][i]),
        }
    return {
        "look": k + 1,
        "seeds": len(need),
        "converged": bool(converged),
        "reasons": list(reasons),
        "weights": weights,
        "state": {
            key: [
                None if isinstance(x, float) and not math.isfinite(x) else x
                for x in new[key].tolist()
            ]
            for key in _STATE_KEYS
        },
        "state_arrays": new,
        "_d": d,
        "_pairs": pairs,
    }


def _conditional_power(
    p: np.ndarray, pairs: list[list[int]], k: int, design: dict[str, Any]
) -> np.ndarray:
    """Conditional power at the target effect for each weight (the design at α/m's final
    boundary)."""
    looks, n_max, m = design["looks"], design["looks"][-1], len(pairs)
    target = design["target_effect_size"] or 0.0
    out = np.full(m, np.nan)
    for i, hist in enumerate(pairs):
        planned = list(hist) + [int(n) for n in looks[k + 1 :]]
        fr = sq.pair_fractions(planned, n_max, len(looks))
        if fr[k] is None or k == len(looks) - 1:
            continue
        b = sq.boundaries(
            [f for f in fr if f is not None], design["alpha"] / m, design["spending"], 2
        )
        out[i] = sq.conditional_power(sq.p_to_z(p[i]), fr[k], b.z[-1], target * math.sqrt(n_max))
    return out


def _decisions(
    k: int,
    look: dict[str, Any],
    others: list[float],
    state: dict[str, np.ndarray],
    old: Mapping[float, WeightDecision],
    design: dict[str, Any],
) -> dict[float, WeightDecision]:
    """WeightDecision of each weight after look ``k``: those stopped earlier keep theirs."""
    out = dict(old)
    m, alpha, test = len(others), design["alpha"], design["decision_test"]
    n_max, n_looks = design["looks"][-1], len(design["looks"])
    for i, w in enumerate(others):
        if old[w].decided:
            continue
        info = look["weights"][_key(w)]
        d, pairs = look["_d"][i], look["_pairs"][i]
        stopped = bool(state["stopped"][i])
        reason = int(state["reason"][i])
        st = STATES[reason + 1] if stopped else "continue"
        status = _STATUSES[int(state["status"][i])] if stopped else "continue"
        adj, lo, hi, ci_level = math.nan, math.nan, math.nan, math.nan
        r = int(state["r"][i])
        own = sq.look_design(pairs, n_max, k, alpha / r, design["spending"], n_looks=n_looks)
        p = _float(info["p"])
        if own is not None and math.isfinite(p):
            adj = sq.stagewise_p(own[0], own[1], float(sq.p_to_z(p)))
        ci = sq.look_design(pairs, n_max, k, alpha / m, design["spending"], n_looks=n_looks)
        if ci is not None:
            ci_level = 1.0 - ci[0].nominal[ci[1]]
            lo, hi = (float(x) for x in sq.repeated_interval(d, ci[0].nominal[ci[1]], test))
        out[w] = WeightDecision(
            w,
            st,
            status,
            k + 1,
            look["seeds"],
            int(info["n_pairs"]),
            _float(info["mean_diff"]),
            p,
            float(state["level"][i]),
            _float(info["tost_p"]),
            float(state["eq_level"][i]),
            _float(info["cp"]),
            adj,
            lo,
            hi,
            ci_level,
            bool(state["eq_rejected"][i]),
            _reason(st, look, info, state, i, design),
        )
    look.pop("_d", None)
    look.pop("_pairs", None)
    return out


def _g(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.3g}"


def _reason(
    st: str,
    look: dict[str, Any],
    info: dict[str, Any],
    state: dict[str, np.ndarray],
    i: int,
    design: dict[str, Any],
) -> str:
    """One line: why the weight stopped at this look, or why it goes on."""
    at = f"look {look['look']} ({look['seeds']} seeds, {info['n_pairs']} pairs)"
    p, lvl, r = _float(info["p"]), float(state["level"][i]), int(state["r"][i])
    test = "sign-flip p" if design["decision_test"] == "sign-flip" else "paired t p"
    cmp = f"{test} {_g(p)} {'≤' if p <= lvl else '>'} {_g(lvl)}, the look's level at α/{r}"
    if not look["converged"]:
        why = "; ".join(look["reasons"]) or "not converged"
        return f"{at}: not converged ({why}): nothing can stop at this look" + (
            "; the last look, so inconclusive" if st == "max" else ""
        )
    if st == "efficacy":
        return f"{at}: efficacy, {cmp}"
    if st == "equivalence":
        return (
            f"{at}: equivalent within ±{design['equivalence_margin']:g}, TOST p "
            f"{_g(_float(info['tost_p']))} ≤ {_g(float(state['eq_level'][i]))}; {cmp}"
        )
    if st == "futility":
        return (
            f"{at}: futility, conditional power {_g(_float(info['cp']))} at d_z = "
            f"{design['target_effect_size']:g} < {design['futility_power']:g}; {cmp}"
        )
    if not math.isfinite(p):
        return f"{at}: fewer than 2 complete pairs or no spread: no test" + (
            "; last look" if st == "max" else ""
        )
    if st == "max":
        return f"{at}: the last look, {cmp}: not significant"
    return f"{at}: continue, {cmp}"
