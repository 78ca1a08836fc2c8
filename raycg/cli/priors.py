"""``raycg priors fit`` and ``raycg priors show``."""

from __future__ import annotations

import argparse
import sys
import warnings

from raycg.cli.common import DATASET_HELP, dataset_arg


def register(groups: dict) -> None:
    g = groups["priors"]
    p = g.add_parser(
        "fit", help="fit bonds, angles, dihedrals and repulsion to a dataset by Boltzmann inversion",
        description="Fit harmonic bonds/angles, Fourier dihedrals and (sigma/r)^6 repulsion to a CG dataset by "
                    "Boltzmann inversion at its temperature (Jacobian-corrected histograms), write them as "
                    "versioned JSON with fit diagnostics, and optionally plot data vs fit.")
    p.add_argument("dataset", metavar="DATASET", type=dataset_arg, help=DATASET_HELP)
    p.add_argument("--out", required=True, metavar="PRIORS_JSON", help="output file (JSON)")
    p.add_argument("--config", metavar="YAML", help="PriorConfig YAML (fields of raycg.priors.PriorConfig)")
    p.add_argument("--plot", metavar="DIR", help="write PNGs of data free energies vs fitted curves here")
    p.add_argument("--grouping", choices=["term", "bead_types"],
                   help="one parameter set per term (default) or per bead-type tuple")
    p.add_argument("--bins", type=int,
                   help="histogram bins for bonds/angles/dihedrals (default: auto, 200 for >= 5000 frames)")
    p.add_argument("--max-frames", type=int, help="use at most this many evenly spaced frames")
    p.add_argument("--temperature", type=float, metavar="K", help="fit at this temperature instead of the dataset's")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--quiet", action="store_true", help="no progress or summary")
    p.set_defaults(handler=_fit)

    s = g.add_parser("show", help="print fitted prior parameters and fit quality; optionally plot them",
                     description="Print the parameters and fit diagnostics of a priors JSON file.")
    s.add_argument("priors", metavar="PRIORS_JSON")
    s.add_argument("--plot", metavar="DIR", help="write PNGs of the stored histograms vs fitted curves here")
    s.set_defaults(handler=_show)


def _fit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from raycg.config import load_config, validate_config
    from raycg.data.validate import require_valid
    from raycg.errors import InputError
    from raycg.priors import PriorConfig, fit_priors
    from raycg.priors.plot import plot_priors

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise InputError(f"output {out} exists", hint="pass --overwrite to replace it or choose another --out")
    if out.is_dir():
        raise InputError(f"output {out} is a directory", hint="--out names the priors JSON file")
    cfg = load_config(PriorConfig, args.config) if args.config else PriorConfig()
    overrides = {k: v for k, v in {"grouping": args.grouping, "bins": args.bins, "max_frames": args.max_frames,
                                    "temperature_K": args.temperature}.items() if v is not None}
    if overrides:
        cfg = validate_config(PriorConfig, {**cfg.model_dump(), **overrides}, source="command line")
    ds = require_valid(args.dataset, "cheap", command="priors fit")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        priors = fit_priors(ds, cfg, progress=not args.quiet)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    priors.save(out)
    if not args.quiet:
        print("\n".join(priors.summary_lines()))
        print(f"wrote {out}")
    if args.plot:
        for path in plot_priors(priors, args.plot):
            if not args.quiet:
                print(f"wrote {path}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from raycg.priors import PriorSet
    from raycg.priors.plot import plot_priors

    priors = PriorSet.load(args.priors)
    print("\n".join(priors.summary_lines()))
    if args.plot:
        paths = plot_priors(priors, args.plot)
        if not paths:
            print("no histograms stored in this file (fitted with store_histograms: false)", file=sys.stderr)
        for path in paths:
            print(f"wrote {path}")
    return 0
