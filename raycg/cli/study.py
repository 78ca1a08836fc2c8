"""``raycg study run|resume|status|analyze``: energy-weight x seed studies on Ray Tune.

Progress goes to stderr; the results (trial table, verdict, report path) and ``status`` to stdout.
A study left with unfinished trials (Ctrl-C, trials Tune gave up on) prints how to resume it and
exits 130 after Ctrl-C, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys


def _incomplete(exc) -> int:
    print(str(exc), file=sys.stderr)
    return 130 if exc.interrupted else 1


def _run(args: argparse.Namespace) -> int:
    from raycg.study.spec.precheck import precheck_spec

    precheck_spec(args.spec)  # before torch and Ray are imported: a bad spec is refused in a second
    from raycg.study.spec.study import load_spec

    load_spec(args.spec, storage=args.storage, name=args.name)  # every section; still no torch or Ray
    from raycg.study.driver import StudyIncomplete, run_study

    try:
        table = run_study(args.spec, address=args.address, storage=args.storage, name=args.name, out=print)
    except StudyIncomplete as exc:
        return _incomplete(exc)
    return 0 if not table.empty else 1


def _resume(args: argparse.Namespace) -> int:
    from raycg.study.driver import StudyIncomplete, resume_study

    try:
        table = resume_study(args.study, address=args.address, storage=args.storage, out=print)
    except StudyIncomplete as exc:
        return _incomplete(exc)
    return 0 if not table.empty else 1


def _status(args: argparse.Namespace) -> int:
    from raycg.study.results import format_status, study_status

    st = study_status(args.study, storage=args.storage)
    if args.json:
        from raycg.utils.io import to_json

        print(to_json(st))
    else:
        print(format_status(st))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from raycg.study.results import aggregate, resolve_study

    aggregate(args.study if args.storage is None else resolve_study(args.study, args.storage))
    return 0


def register(groups) -> None:
    sub = groups["study"]
    p = sub.add_parser("run", help="run a study spec (local Ray by default)",
                       description="Run a study: prepare once, run every (energy weight x seed) trial on Ray Tune, "
                                   "then the statistics and the report. Ctrl-C leaves a resumable study.")
    p.add_argument("spec", help="study spec YAML, e.g. studies/quickstart.yaml")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (default: RAY_ADDRESS if set, else a new local Ray)")
    p.add_argument("--storage", default=None, help="override the spec's storage (directory, s3://..., gs://...)")
    p.add_argument("--name", default=None, help="override the study name")
    p.set_defaults(handler=_run)

    p = sub.add_parser("resume", help="finish the unfinished trials of a study",
                       description="Resume a study after Ctrl-C, a killed driver or lost nodes: finished trials "
                                   "are kept, unfinished and errored ones continue from their last checkpoint.")
    p.add_argument("study", help="study directory/URI, or its name (looked up under --storage, ./runs, ./results)")
    p.add_argument("--address", default=None, help="Ray cluster to join")
    p.add_argument("--storage", default=None, help="where to look the study name up")
    p.set_defaults(handler=_resume)

    p = sub.add_parser("status", help="trials done/running/failed and the ETA")
    p.add_argument("study", help="study directory/URI or name")
    p.add_argument("--storage", default=None)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_status)

    p = sub.add_parser("analyze", help="statistics and report over the finished trials")
    p.add_argument("study", help="study directory/URI or name")
    p.add_argument("--storage", default=None)
    p.set_defaults(handler=_analyze)
