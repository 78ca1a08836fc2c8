"""``raycg data generate-aa`` and ``raycg data report``."""

from __future__ import annotations

import argparse

from raycg.cli.common import DATASET_HELP, dataset_arg


def register(groups: dict) -> None:
    g = groups["data"].add_parser(
        "generate-aa", help="all-atom OpenMM reference MD on Ray, mapped to a CG dataset",
        description="Run N independent all-atom replicas (amber14 + GBn2 implicit solvent by default, or "
                    "TIP3P-FB/PME) with OpenMM as Ray tasks (GPU when the cluster has one), checkpointed "
                    "every segment, then map them to a CG dataset with the constraint-aware Cα force map.",
    )
    g.add_argument("pdb", help="protein PDB with hydrogens (e.g. the packaged raycg/resources/cln025_allatom.pdb)")
    g.add_argument("--out", required=True, help="output directory (replicas, checkpoints; CG dataset in OUT/cg)")
    g.add_argument("--config", help="YAML with AllAtomConfig fields (command-line flags override it)")
    g.add_argument("--replicas", type=int, dest="n_replicas")
    g.add_argument("--ns", type=float, dest="duration_ns", help="production length per replica (ns)")
    g.add_argument("--temperature", type=float, dest="temperature_K", help="K (default 350)")
    g.add_argument("--solvent", choices=["implicit-gbn2", "explicit-tip3pfb"])
    g.add_argument("--no-hmr", action="store_false", dest="hmr", default=None, help="2 fs steps without HMR")
    g.add_argument("--save-every-ps", type=float, dest="save_every_ps")
    g.add_argument("--segment-ps", type=float, dest="segment_ps", help="checkpoint interval (ps)")
    g.add_argument("--platform", choices=["auto", "CUDA", "OpenCL", "CPU", "Reference"])
    g.add_argument("--seed", type=int)
    g.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local Ray)")
    g.add_argument("--cpus-per-replica", type=int, default=1)
    g.add_argument("--gpu", choices=["auto", "yes", "no"], default="auto")
    g.add_argument("--dataset-out", help="where to write the CG dataset (default OUT/cg)")
    g.add_argument("--map-only", action="store_true", help="only map what exists now to a CG dataset")
    g.set_defaults(handler=_generate)

    r = groups["data"].add_parser(
        "report", help="is this reference usable for a study? (time, folding, TICA, convergence)",
        description="Check a reference dataset: total simulated time, folded fraction (Cα RMSD to native), "
                    "folding/unfolding transitions, TICA implied timescales vs sampled time, and whether the "
                    "free-energy surface is converged (halves of the data agree); writes a figure.",
    )
    r.add_argument("dataset", metavar="DATASET", type=dataset_arg, help=DATASET_HELP)
    r.add_argument("--native", help="native structure PDB (default: the embedded CLN025 when 10 beads)")
    r.add_argument("--out", help="directory for report.json and report.png (default DATASET/report)")
    r.add_argument("--lag", type=int, default=None,
                   help="TICA lag in frames (default: the lag the dataset recommends, else 20)")
    r.add_argument("--folded-rmsd", type=float, default=None, help="Å threshold for 'folded'")
    r.set_defaults(handler=_report)


_FIELDS = ("n_replicas", "duration_ns", "temperature_K", "solvent", "hmr", "save_every_ps", "segment_ps",
           "platform", "seed")


def _generate(args: argparse.Namespace) -> int:
    from raycg.allatom import AllAtomConfig, assemble_dataset
    from raycg.config import read_yaml, validate_config

    data, lines, source = {}, {}, "command line"
    if args.config:
        data, lines = read_yaml(args.config)
        source = args.config
    for f in _FIELDS:
        v = getattr(args, f)
        if v is not None:
            data[f] = v
    cfg = validate_config(AllAtomConfig, data, source=source, lines=lines)
    if args.map_only:
        path = assemble_dataset(args.out, args.dataset_out or f"{args.out}/cg", overwrite=True)
    else:
        from raycg.allatom.distributed import generate_allatom

        path = generate_allatom(args.pdb, args.out, cfg, address=args.address, cpus_per_replica=args.cpus_per_replica,
                                use_gpu=args.gpu, dataset_out=args.dataset_out)
    print(f"CG dataset: {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from raycg.report.dataset_report import dataset_report

    rep = dataset_report(args.dataset, native=args.native, out=args.out, lag=args.lag, folded_rmsd_A=args.folded_rmsd)
    print(rep.text())
    return 0
