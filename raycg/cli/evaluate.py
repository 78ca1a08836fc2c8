"""``raycg eval tica`` (fit the reference TICA) and ``raycg eval score`` (score trajectories)."""

from __future__ import annotations

import argparse

from raycg.cli.common import DATASET_HELP, dataset_arg


def register(groups) -> None:
    p = groups["eval"].add_parser(
        "tica", help="fit the reference TICA on a dataset and print its implied timescales",
        description="Fit deeptime TICA on the reference dataset (lagged pairs inside each trajectory only; "
                    "frame weights used when the dataset has them) and save it as a small versioned "
                    ".npz (+ .json sidecar).")
    p.add_argument("dataset", metavar="DATASET", type=dataset_arg, help=DATASET_HELP)
    p.add_argument("--lag", type=int, default=20, help="lag time in frames (default 20)")
    p.add_argument("--dim", type=int, default=None, help="number of components kept (default: all)")
    p.add_argument("--var-cutoff", type=float, default=None, help="keep components up to this kinetic variance")
    p.add_argument("--features", choices=("pair_distances", "pair_distances+pseudo_dihedrals"),
                   default="pair_distances", help="TICA input features (default: all bead-pair distances)")
    p.add_argument("--no-weights", action="store_true", help="ignore the dataset's frame weights")
    p.add_argument("--out", required=True, help="output file (e.g. tica.npz)")
    p.add_argument("--n-timescales", type=int, default=5, help="implied timescales to print (default 5)")
    p.set_defaults(handler=run_tica)

    s = groups["eval"].add_parser(
        "score", help="score model trajectories against the reference FES",
        description="Project trajectories (raycg simulation directories or any mdtraj-readable file with a CG "
                    "topology; .npy arrays in Å) onto the reference TICA after burn-in and compute the FES "
                    "metrics of raycg/evaluate/METRICS.md. Writes OUT/scores.json and OUT/fes.npz.")
    s.add_argument("reference", metavar="REFERENCE", type=dataset_arg, help="reference: " + DATASET_HELP)
    s.add_argument("trajectories", metavar="TRAJECTORIES", nargs="+",
                   help="simulation output directories and/or trajectory files")
    s.add_argument("--tica", required=True, help="reference TICA file from 'raycg eval tica'")
    s.add_argument("--out", required=True, help="output directory for scores.json and fes.npz")
    s.add_argument("--config", help="YAML file with EvalConfig fields (or an 'evaluate:' section)")
    s.add_argument("--top", help="topology for trajectory files that carry none (default: the reference's)")
    s.add_argument("--burn-in", type=float, dest="burn_in_fraction", help="fraction dropped per replica (0.1)")
    s.add_argument("--bins", type=int, help="FES bins per TIC axis (60)")
    s.add_argument("--folded-rmsd", type=float, dest="folded_rmsd_A", help="folded threshold, Cα RMSD in Å (1.5)")
    s.add_argument("--dt-frame-ps", type=float,
                   help="time between saved frames in ps, for files that do not record it (e.g. .npy)")
    s.add_argument("--native", dest="native_pdb", help="native structure PDB (its Cα atoms)")
    s.set_defaults(handler=run_score)


def run_tica(args: argparse.Namespace) -> int:
    from raycg.cv import fit_reference_tica
    from raycg.data.validate import require_valid

    ds = require_valid(args.dataset, "cheap", command="eval tica")
    tica = fit_reference_tica(ds, lag=args.lag, dim=args.dim, features=args.features,
                              weights=None if args.no_weights else "dataset", var_cutoff=args.var_cutoff,
                              progress=True)
    path = tica.save(args.out)
    print(tica.summary(args.n_timescales))
    print(f"wrote {path} (+ {path.with_suffix('.json').name})")
    return 0


def load_eval_config(path: str | None, overrides: dict):
    from raycg.config import read_yaml, validate_config
    from raycg.evaluate import EvalConfig

    data: dict = {}
    lines: dict = {}
    if path:
        data, lines = read_yaml(path)
        if isinstance(data, dict) and set(data) == {"evaluate"}:
            data = data["evaluate"]
            lines = {k[1:]: v for k, v in lines.items() if k[:1] == ("evaluate",)}
        if not isinstance(data, dict):
            data = {"<root>": data}
    data = {**data, **{k: v for k, v in overrides.items() if v is not None}}
    return validate_config(EvalConfig, data, source=path or "command line", lines=lines)


def run_score(args: argparse.Namespace) -> int:
    import math

    from raycg.cv import ReferenceTICA
    from raycg.data.validate import require_valid
    from raycg.evaluate import load_model_trajectories, score

    over = {k: getattr(args, k) for k in ("burn_in_fraction", "bins", "folded_rmsd_A", "native_pdb")}
    config = load_eval_config(args.config, over)
    ds = require_valid(args.reference, "cheap", command="eval score")
    tica = ReferenceTICA.load(args.tica)
    tica.check_compatible(ds, where=args.tica)
    samples = load_model_trajectories(args.trajectories, ds, topology=args.top)
    if args.dt_frame_ps is not None:
        if not args.dt_frame_ps > 0:
            from raycg.errors import InputError

            raise InputError(f"--dt-frame-ps must be positive, got {args.dt_frame_ps}")
        samples.dt_frame_ps = float(args.dt_frame_ps)
    result = score(ds, tica, samples, config)
    out = result.save(args.out)
    print(f"scored {int(result.metrics['n_frames_model'])} frames from {int(result.metrics['n_replicas_used'])} "
          f"replicas ({samples.n_blown_up} blown up, {samples.n_empty} empty, excluded) against "
          f"{result.info['reference_frames']} reference frames")
    width = max(len(k) for k in result.metrics)
    for k, v in result.metrics.items():
        print(f"  {k:<{width}}  {v:.6g}" if math.isfinite(v) else f"  {k:<{width}}  nan")
    print(f"wrote {out / 'scores.json'} and {out / 'fes.npz'}")
    return 0
