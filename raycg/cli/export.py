"""``raycg export``: a trained model as OpenMM files (system.xml, model_openmm.pt, topology.pdb)."""

from __future__ import annotations

import argparse

from raycg.cli.common import DATASET_HELP, dataset_arg


def register(groups) -> None:
    p = groups["<top>"].add_parser(
        "export",
        help="write a trained model as OpenMM files (PythonForce system, TorchScript, CG PDB)",
        description="Export a raycg model directory for OpenMM: DIR/topology.pdb (CG topology, Å), "
        "DIR/system.xml (openmm.System with the whole raycg energy as a PythonForce; nm, "
        "kJ/mol), DIR/model_openmm.pt (TorchScript for OpenMM-Torch: positions nm -> "
        "kJ/mol), DIR/export.json and DIR/README.md. --check loads the written files back "
        "and compares energies and forces with raycg on dataset frames.",
    )
    p.add_argument(
        "model", metavar="MODEL_DIR", help="model directory written by raycg train / save_model"
    )
    p.add_argument(
        "--dataset",
        required=True,
        type=dataset_arg,
        help=DATASET_HELP + " (bead names, masses, bonds; frames for --check)",
    )
    p.add_argument("--out", required=True, help="export directory to write")
    p.add_argument(
        "--check",
        action="store_true",
        help="compare OpenMM (Reference, CPU) and TorchScript with raycg on dataset frames",
    )
    p.add_argument(
        "--check-frames", type=int, default=1000, help="frames --check compares (default 1000)"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the frames --check draws (default 0)"
    )
    p.add_argument(
        "--torchforce",
        action="store_true",
        help="--check also runs model_openmm.pt in OpenMM-Torch's TorchForce (needs openmmtorch)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing export directory")
    p.set_defaults(handler=run)


#: --check fails (exit 1) when a route's largest error, relative to the largest raycg value,
#: exceeds this (float32 round-off is ~1e-7 relative; accumulated over a pass, ~1e-6)
CHECK_RTOL = 1e-4


def run(args: argparse.Namespace) -> int:
    from raycg.errors import InputError
    from raycg.export import export_model

    if args.check and args.check_frames < 1:
        raise InputError(f"--check-frames must be >= 1, got {args.check_frames}")
    if args.torchforce and not args.check:
        raise InputError("--torchforce is a part of --check", hint="add --check")
    out, check = export_model(
        args.model,
        args.dataset,
        args.out,
        overwrite=args.overwrite,
        check_frames=args.check_frames if args.check else 0,
        seed=args.seed,
        torchforce=args.torchforce,
    )
    print(f"exported {args.model} -> {out} (topology.pdb, system.xml, model_openmm.pt, README.md)")
    if check is None:
        return 0
    print("\n".join(check.lines()))
    bad = [
        name
        for name, s in check.routes.items()
        if s.energy_max_rel > CHECK_RTOL or s.force_max_rel > CHECK_RTOL
    ]
    if bad:
        print(
            f"MISMATCH: {', '.join(bad)} differ from raycg by more than {CHECK_RTOL:g} (relative)"
        )
        return 1
    print(f"ok: every route equals raycg within {CHECK_RTOL:g} (relative)")
    return 0
