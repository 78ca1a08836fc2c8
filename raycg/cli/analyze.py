"""``raycg analyze STUDY_DIR``: trial table, statistics, figures and report of a study."""

from __future__ import annotations

import argparse
import math
from typing import Any


def register(groups: dict[str, Any]) -> None:
    p = groups["<top>"].add_parser(
        "analyze", help="statistics, figures and a report of a study directory",
        description="Read STUDY_DIR/trials/*/result.json (+ fes.npz, train_history.csv), test each metric "
                    "across energy weights (paired by seed, Holm-corrected vs the baseline; the spec's analysis: "
                    "section names the primary metric) and write results/trials.parquet, results/summary.csv, "
                    "results/convergence.csv, results/report.md and results/figures/*.png.")
    p.add_argument("study_dir", metavar="STUDY_DIR")
    p.add_argument("--metrics", default=None,
                   help="comma-separated extra (exploratory) metrics beyond the spec's primary and secondary ones")
    p.add_argument("--group", default=None, help="config column to group by (default: arm for a study with "
                                                 "grid.arms, else energy_weight)")
    p.add_argument("--baseline", default=None, help="baseline group value (default: the grid's baseline arm, "
                                                    "else the smallest)")
    p.add_argument("--alpha", type=float, default=None,
                   help="family-wise significance level (default: the spec's analysis.alpha, else 0.05)")
    p.add_argument("--primary-metric", default=None,
                   help="metric the verdict is about (default: the spec's analysis.primary_metric, else kl_ref_model)")
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
    from raycg.stats import format_group

    if args.alpha is not None and not 0 < args.alpha < 0.5:
        raise InputError(f"--alpha {args.alpha} must be in (0, 0.5)")
    a = run_analysis(args.study_dir, _split(args.metrics) or None, group=args.group, baseline=_baseline(args.baseline),
                     primary_metric=args.primary_metric, alpha=args.alpha, figures=not args.no_figures)
    counts = a.table["status"].value_counts().to_dict()
    print(f"trials: {len(a.table)} (" + ", ".join(f"{v} {k}" for k, v in counts.items()) + ")")
    if a.statistics is not None:
        s = a.summary
        key, label = (("signflip_p_holm", "sign-flip p (Holm)") if a.settings.decision_test == "sign-flip"
                      else ("t_p_holm", "paired t p (Holm)"))
        print(f"{'metric':<30} {a.group:>14} {'n':>4} {'mean':>11} {'95% CI (t)':>23} {'pairs':>5} "
              f"{label:>18}  role")
        for _, r in s.iterrows():
            ci = f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}]" if math.isfinite(r["ci_low"]) else ""
            pairs = "" if _missing(r.get("n_pairs")) else str(int(r["n_pairs"]))
            print(f"{r['metric'][:30]:<30} {format_group(r['group']):>14} {int(r['n']):>4} {r['mean']:>11.4g} "
                  f"{ci:>23} {pairs:>5} {_p(r.get(key)):>18}  {r['role']}")
        print()
    print("verdict:")
    print("\n".join(a.verdict_lines))
    for n in a.notes:
        print(f"note: {n}")
    print(f"report: {a.report_path}")
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
