"""``raycg analyze STUDY_DIR``: trial table, statistics, figures and report of a study."""

from __future__ import annotations

import argparse
import math
from typing import Any


def register(groups: dict[str, Any]) -> None:
    p = groups["<top>"].add_parser(
        "analyze", help="statistics, figures and a report of a study directory",
        description="Read STUDY_DIR/trials/*/result.json (+ fes.npz, train_history.csv), test each metric "
                    "across energy weights (Holm-corrected vs the baseline) and write results/trials.parquet, "
                    "results/summary.csv, results/report.md and results/figures/*.png.")
    p.add_argument("study_dir", metavar="STUDY_DIR")
    p.add_argument("--metrics", default=None, help="comma-separated metrics (default: all found)")
    p.add_argument("--group", default="energy_weight", help="config column to group by (default energy_weight)")
    p.add_argument("--baseline", default=None, help="baseline group value (default: the smallest)")
    p.add_argument("--alpha", type=float, default=0.05, help="family-wise significance level (default 0.05)")
    p.add_argument("--primary", choices=("welch", "mwu", "perm"), default="welch",
                   help="test whose Holm-corrected p decides significance (default welch)")
    p.add_argument("--lower-better", default="", help="comma-separated metrics where lower is better "
                   "(overrides the guess from the name)")
    p.add_argument("--higher-better", default="", help="comma-separated metrics where higher is better")
    p.add_argument("--seed", type=int, default=0, help="seed of bootstrap and permutation resampling")
    p.add_argument("--resamples", type=int, default=9999, help="bootstrap/permutation resamples (default 9999)")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    p.set_defaults(handler=_run)


def _split(text: str | None) -> list[str]:
    return [s.strip() for s in (text or "").split(",") if s.strip()]


def _baseline(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _run(args: argparse.Namespace) -> int:
    from raycg.errors import InputError
    from raycg.report import run_analysis
    from raycg.stats import HEADLINE_METRICS, TESTS, format_group, verdict

    if not 0 < args.alpha < 1:
        raise InputError(f"--alpha {args.alpha} must be in (0, 1)")
    directions: dict[str, str | None] = {m: "lower" for m in _split(args.lower_better)}
    directions.update({m: "higher" for m in _split(args.higher_better)})
    a = run_analysis(args.study_dir, _split(args.metrics) or None, group=args.group, baseline=_baseline(args.baseline),
                     directions=directions, alpha=args.alpha, primary=args.primary, seed=args.seed,
                     n_resamples=args.resamples, figures=not args.no_figures)
    counts = a.table["status"].value_counts().to_dict()
    print(f"trials: {len(a.table)} (" + ", ".join(f"{v} {k}" for k, v in counts.items()) + ")")
    if a.results is not None:
        s = a.summary
        head = f"{'metric':<30} {a.group:>14} {'n':>4} {'mean':>11} {'95% CI':>23} " + " ".join(
            f"{t + ' holm p':>13}" for t in TESTS) + "  sig"
        print(head)
        for _, r in s.iterrows():
            ci = f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]" if math.isfinite(r["ci_low"]) else ""
            ps = " ".join(f"{_p(r.get(f'{t}_p_holm')):>13}" for t in TESTS)
            sig = "" if r["group"] == r["baseline"] or _missing(r.get("significant")) else (
                "yes" if r["significant"] else "no")
            print(f"{r['metric'][:30]:<30} {format_group(r['group']):>14} {int(r['n']):>4} {r['mean']:>11.4g} "
                  f"{ci:>23} {ps}  {sig}")
        print()
    if a.results is not None:
        head = [m for m in HEADLINE_METRICS if m in a.metrics] or a.metrics
        print("\n".join(verdict(a.results, m) for m in head))
        if len(head) < len(a.metrics):
            print(f"(verdicts for all {len(a.metrics)} metrics are in the report)")
    else:
        print(a.verdict)
    for n in a.notes:
        print(f"note: {n}")
    print(f"report: {a.report}")
    return 0


def _missing(v: Any) -> bool:
    try:
        return v is None or bool(v != v)
    except (TypeError, ValueError):
        return True


def _p(v: Any) -> str:
    if _missing(v):
        return "-"
    return "<0.001" if v < 0.001 else f"{v:.3f}"
