"""The report's section on a sequential design (``analysis.design: sequential``): the looks, their
boundaries, the spending function and stopping rule, where and why each weight stopped, its
boundary-adjusted p-value and repeated confidence interval, and the seeds saved against the fixed
design of the same largest size. Empty for a fixed design.

The decisions are the driver's: this module reads ``STUDY/sequential.json`` (written look by look by
the study driver's planner, atomically) and decides nothing itself; the boundaries shown are
recomputed from the recorded design with :func:`raycg.stats.sequential.boundaries`. A sequential
study without a record (no look analysed yet) gets a section that says what the first look needs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raycg.report.inputs import study_spec

if TYPE_CHECKING:
    from raycg.report.analyze import Analysis

#: the driver's record of the analysed looks, in the study folder
RECORD = "sequential.json"
FORMAT = "raycg-sequential-decisions"
_SPENDING = {
    "obrien-fleming": "Lan–DeMets O'Brien–Fleming type, α(t) = 2 − 2Φ(z_{1−α/4}/√t) per side",
    "pocock": "Lan–DeMets Pocock type, α(t) = α·ln(1 + (e − 1)t)",
}
_TEST = {"sign-flip": "exact sign-flip test", "paired-t": "paired t-test"}


def _g(x: Any, digits: int = 3) -> str:
    if x is None or not math.isfinite(float(x)):
        return "n/a"
    return f"{float(x):.{digits}g}".replace("-", "−")


def _ci(lo: Any, hi: Any) -> str:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "(−∞, ∞)"
    return f"[{_g(lo)}, {_g(hi)}]"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *["| " + " | ".join(str(c) for c in r) + " |" for r in rows],
    ]


def read_record(study_dir: Path) -> dict[str, Any] | None:
    """``STUDY/sequential.json`` as written by the driver; None if absent; ValueError (one line) if it
    is not a readable raycg sequential record."""
    path = Path(study_dir) / RECORD
    if not path.is_file():
        return None
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable sequential record ({exc})") from None
    if not isinstance(rec, dict) or rec.get("format") != FORMAT or not isinstance(rec.get("design"), dict):
        raise ValueError(f"{path}: not a raycg sequential record")
    return rec


def trial_counts(rec: dict[str, Any]) -> tuple[int, int]:
    """(trials the sequential design has needed so far, run or queued; trials of the fixed design of
    the same largest size): each weight up to the look it stopped at (a running one up to the next
    look), the baseline up to the largest, times the trials per cell (sweeps)."""
    d = rec["design"]
    per_cell, n_max = int(d.get("per_cell", 1)), int(d["looks"][-1])
    nxt = rec.get("next") or {}
    seeds = [int(v["seeds"]) if v["state"] != "continue" else max(int(v["seeds"]), int(nxt.get("seeds", 0)))
             for v in rec.get("decisions", {}).values()]
    fixed = (len(d["weights"])) * n_max * per_cell
    return (sum(seeds) + max(seeds, default=0)) * per_cell, fixed


def _design_lines(d: dict[str, Any], m: int, fr: list[float]) -> list[str]:
    test = _TEST[d["decision_test"]]
    futility = {
        "equivalence": f"equivalence within ±{_g(d['equivalence_margin'])} by two one-sided "
                       f"{test}s at each look's one-sided level (same spending, Holm across weights)",
        "conditional-power": f"conditional power below {_g(d['futility_power'])} at the target "
                             f"d_z = {_g(d['target_effect_size'])}",
        "none": "none"}[d["futility"]]
    holm = (f"Holm across the {m} weights in its group-sequential form (Maurer & Bretz 2013)"
            if m > 1 else "one weight")
    return [
        f"- Design: group-sequential, looks at {', '.join(map(str, d['looks']))} seeds "
        f"(information fractions {', '.join(_g(x, 2) for x in fr)}), "
        f"{_SPENDING[d['spending']]}; family-wise α = {_g(d['alpha'])}, {holm}; decision test: "
        f"{test}; futility: {futility}.",
        "- Stopping rule: at each look whose trials have all finished, a weight stops for efficacy "
        "when its p-value is at most the look's nominal level of the design at α/r (r: weights not "
        "yet shown different), for futility by the rule above, and at the last look in any case; "
        "the baseline runs while any weight does. A look whose trials fail the convergence gate "
        "stops nothing. Decided weights get no more seeds; decisions are final (sequential.json).",
        "- These decisions are the verdict of a sequential study: the fixed-design lines in the "
        "Verdict section analyse the trials that exist as if their number had been planned, so "
        "their p-values ignore the looks.", ""]


def _decision_rows(rec: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for key, dec in rec.get("decisions", {}).items():
        if dec["state"] != "continue":
            stop = f"look {dec['look']} ({dec['seeds']} seeds)"
        else:
            stop = f"running after look {dec['look']}" if dec["look"] else "no look yet"
        lvl = dec.get("ci_level")
        ci = f"{_ci(dec.get('ci_low'), dec.get('ci_high'))} ({_g(100 * lvl, 4)}%)" if lvl is not None else "n/a"
        rows.append([f"w_E = {float(key):g}", stop, dec["status"], _g(dec.get("mean_diff")), dec["n_pairs"],
                     _g(dec.get("p")), _g(dec.get("level")), _g(dec.get("adjusted_p")), ci, dec["reason"]])
    return rows


def _look_rows(rec: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for lk in rec.get("looks", []):
        tested = [f"w_E = {float(k):g}" for k, v in lk["weights"].items() if v.get("tested")]
        rows.append([lk["look"], lk["seeds"], "yes" if lk["converged"] else "no: " + "; ".join(lk["reasons"]),
                     ", ".join(tested) or "none"])
    return rows


def sequential_section(a: Analysis) -> list[str]:
    """Markdown lines of the section (none for a fixed design)."""
    raw = study_spec(a.study_dir)
    section = raw.get("analysis") if isinstance(raw.get("analysis"), dict) else {}
    if section.get("design") != "sequential":
        return []
    out = ["## Sequential design", ""]
    try:
        rec = read_record(a.study_dir)
    except ValueError as exc:
        return out + [f"- The driver's decisions could not be read: {exc}.", ""]
    if rec is None:
        looks = section.get("looks") or []
        first = f"{looks[0]} seeds of every weight" if looks else "its seeds"
        return out + [f"- Looks at {', '.join(map(str, looks))} seeds; no look has been analysed yet (the driver "
                      f"records each look in {RECORD}): the first look needs {first}. `raycg study resume` "
                      "continues the study.", ""]
    from raycg.stats.sequential import boundaries

    d = rec["design"]
    looks, n_max, m, alpha = d["looks"], d["looks"][-1], len(d["weights"]) - 1, d["alpha"]
    fr = [n / n_max for n in looks]
    eff = boundaries(fr, alpha / m, d["spending"], 2)
    eq = boundaries(fr, alpha / m, d["spending"], 1) if d["futility"] == "equivalence" else None
    out += _design_lines(d, m, fr)
    rows = []
    for k, n in enumerate(looks):
        row = [k + 1, n, _g(fr[k], 2), _g(eff.z[k]), _g(eff.nominal[k])]
        rows.append(row + ([_g(eq.nominal[k])] if eq is not None else []))
    header = ["look", "seeds", "t", f"|z| boundary (α/{m})" if m > 1 else "|z| boundary",
              "nominal two-sided p level"] + (["equivalence level (one-sided)"] if eq else [])
    out += _table(header, rows) + [
        "", "Levels as planned at the first Holm step (α/m); each weight's are recomputed from its complete "
        "pairs at each look at its Holm step, and the last look spends what is left.", ""]
    if rec.get("looks"):
        out += _table(["look", "seeds", "converged", "weights tested"], _look_rows(rec)) + [""]
    base = d["weights"][0]
    header = [f"vs w_E = {base:g}", "stopped at", "status", "Δ", "pairs", "p", "level",
              "boundary-adjusted p", "repeated CI", "why"]
    out += _table(header, _decision_rows(rec)) + [""]
    used, fixed = trial_counts(rec)
    finished = bool(rec.get("finished"))
    state = "needed" if finished else "has needed so far (run or queued)"
    out += [
        f"- Trials: the sequential design {state} {used}; the fixed design of the same largest "
        f"size ({n_max} seeds × {m + 1} weights) runs {fixed}: {fixed - used} trials saved "
        f"({_g(100 * (fixed - used) / fixed, 3)}%).",
        "- Boundary-adjusted p: stagewise ordering (Jennison & Turnbull §8.4) under the weight's "
        "own design at its Holm level α/r, compared with that level; ≤ it exactly when the weight crossed. "
        "Repeated CI: the decision test inverted at the look's nominal level of the design at "
        f"α/{m}: all looks and weights cover together with probability ≥ {_g(1 - alpha)} whenever the "
        "study stops (Jennison & Turnbull ch. 9); (−∞, ∞) where the test cannot reach that level with "
        "these pairs.", ""]
    nxt = rec.get("next")
    if not finished and nxt:
        todo = ", ".join(f"w_E = {float(w):g}" for w in nxt["weights"])
        out += [f"- Not finished: look {nxt['look']} ({nxt['seeds']} seeds) runs {todo}; "
                "`raycg study resume` continues the study.", ""]
    return out
