"""``raycg study tune SPEC``: Optuna (TPE) + ASHA hyperparameter search inside Ray Tune."""

from __future__ import annotations

import argparse


def _tune(args: argparse.Namespace) -> int:
    from raycg.study.hpo import run_hpo

    summary = run_hpo(args.spec, address=args.address, storage=args.storage, name=args.name,
                      num_samples=args.num_samples, export=args.export)
    return 0 if summary.get("best") and summary.get("complete") else 1


def _summary(args: argparse.Namespace) -> int:
    from raycg.study.hpo import summarize_existing

    summarize_existing(args.spec, storage=args.storage, name=args.name, export=args.export)
    return 0


def register(groups) -> None:
    p = groups["study"].add_parser(
        "tune", help="search model/training hyperparameters (Optuna TPE + ASHA on Ray Tune)",
        description="Search the hyperparameters in the spec's search: section with Optuna (seeded TPE) inside "
                    "Ray Tune; ASHA stops poor trials early on the per-epoch validation loss. Writes the best "
                    "configuration as a ready replica-study spec (best_spec.yaml), parameter importances and a "
                    "history plot. Running the same command again resumes an interrupted search.")
    p.add_argument("spec", help="study spec with a search: section, e.g. studies/hpo_quickstart.yaml")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (default: RAY_ADDRESS if set, else a new local Ray)")
    p.add_argument("--storage", default=None, help="override the spec's storage (directory, s3://..., gs://...)")
    p.add_argument("--name", default=None, help="override the search's name (its directory)")
    p.add_argument("--num-samples", type=int, default=None,
                   help="override search.num_samples (for a new search; a resumed one keeps its own)")
    p.add_argument("--export", default=None, help="also write the best spec to this path")
    p.add_argument("--summary-only", action="store_true",
                   help="only rewrite the summary, plot and best spec from a finished or interrupted search")
    p.set_defaults(handler=lambda a: _summary(a) if a.summary_only else _tune(a))
