"""``raycg data import {mdtraj,torchmd-cg,mdcath}``, ``raycg data info`` and ``raycg data validate``."""

from __future__ import annotations

import argparse

from raycg.cli.common import DATASET_HELP, dataset_arg

FORCE_UNIT_HELP = ("units of the input forces: kcal/mol/A, kJ/mol/nm, kJ/mol/A, kcal/mol/nm "
                   "(converted to kcal/mol/Å at import)")


def register(groups: dict) -> None:
    g = groups["data"]
    info = g.add_parser("info", help="print a dataset's size, time, temperature, hash and summary",
                        description="Print frames, beads, trajectories, total simulated time, temperature, "
                                    "content hash, beads and the stored provenance summary of a dataset.")
    info.add_argument("dataset", metavar="DATASET", type=dataset_arg, help=DATASET_HELP)
    info.set_defaults(handler=_info)

    val = g.add_parser("validate", help="check a dataset (shapes, NaN/inf, trajectories, units, hash)",
                       description="Check a dataset structurally and physically (length units from bonded "
                                   "Cα distances, force units from the configurational virial). Prints the "
                                   "checks; exits 2 with one line naming the first problem. Never modifies it.")
    val.add_argument("dataset", metavar="DATASET", type=dataset_arg, help=DATASET_HELP)
    val.add_argument("--no-hash", action="store_true", help="skip recomputing the content hash")
    val.add_argument("--no-physics", action="store_true", help="skip the length/force unit checks")
    val.add_argument("--quiet", action="store_true", help="print nothing when valid")
    val.set_defaults(handler=_validate)

    imp = g.add_parser("import", help="import mdtraj trajectories, torchmd-cg arrays or mdCATH HDF5",
                       description="Convert other data to a raycg dataset (units converted at the boundary, "
                                   "streamed in chunks, validated, written atomically).")
    imp.set_defaults(_group_parser=imp)
    sub = imp.add_subparsers(dest="import_format", metavar="FORMAT")

    t = sub.add_parser("torchmd-cg", help="Cα coords/forces .npy (torchmd-cg / Majewski CLN025 layout)",
                       description="Import Cα coordinates [N,B,3] and forces [N,B,3] .npy files (a path or a "
                                   "glob: one file per trajectory). Defaults: 350 K, 100 ps between frames, "
                                   "Å and kcal/mol/Å.")
    t.add_argument("--coords", required=True, nargs="+", metavar="NPY", help="coordinates .npy (paths or globs)")
    t.add_argument("--forces", required=True, nargs="+", metavar="NPY", help="forces .npy, same order")
    t.add_argument("--embeddings", metavar="NPY", help="bead embeddings (one integer type per bead)")
    t.add_argument("--sequence", help="residue sequence, e.g. YYDPETGTWY (or --topology)")
    t.add_argument("--topology", metavar="PDB", help="PDB whose CA atoms give the bead residues")
    t.add_argument("--traj-ids", metavar="NPY", help="per-frame trajectory ids of a single file (contiguous)")
    t.add_argument("--frames-per-traj", type=int, metavar="N", help="split a single file into N-frame trajectories")
    t.add_argument("--weights", metavar="NPY", help="per-frame statistical weights [N] (non-equilibrium data)")
    t.add_argument("--temperature", type=float, default=350.0, metavar="K", help="data temperature (default 350)")
    t.add_argument("--dt-ps", type=float, default=100.0, help="time between frames in ps (default 100)")
    t.add_argument("--length-units", default="angstrom", help="units of the coordinates: angstrom or nm")
    t.add_argument("--force-units", default="kcal/mol/A", help=FORCE_UNIT_HELP)
    _common(t, mapped=False)
    t.set_defaults(handler=_import_torchmd_cg)

    m = sub.add_parser("mdtraj", help="all-atom trajectories (xtc, dcd, h5, ...) + forces arrays, mapped",
                       description="Import all-atom trajectories readable by mdtraj (one trajectory per file) "
                                   "with one forces array (.npy/.npz) per file, or one for all, mapped to CG beads.")
    m.add_argument("trajectories", nargs="+", metavar="TRAJ", help="trajectory files or globs")
    m.add_argument("--top", metavar="PDB", help="topology (needed for xtc/dcd/...)")
    m.add_argument("--forces", required=True, nargs="+", metavar="NPY", help="forces [frames, atoms, 3]")
    m.add_argument("--forces-key", help="array name inside an .npz (default: 'forces' or the only one)")
    m.add_argument("--force-units", required=True, help=FORCE_UNIT_HELP)
    m.add_argument("--temperature", type=float, required=True, metavar="K", help="simulation temperature")
    m.add_argument("--dt-ps", type=float, help="time between saved frames, ps (default: from the trajectory)")
    m.add_argument("--stride", type=int, default=1, help="keep every n-th frame")
    _common(m, mapped=True)
    m.set_defaults(handler=_import_mdtraj)

    c = sub.add_parser("mdcath", help="mdCATH HDF5 (one domain, one temperature; replicas = trajectories)",
                       description="Import one domain at one temperature from an mdCATH HDF5 file "
                                   "(coords Å, forces kcal/mol/Å, 1 ns between frames), mapped to CG beads.")
    c.add_argument("h5file", metavar="H5")
    c.add_argument("--temperature", type=float, metavar="K", help="temperature group (needed if several)")
    c.add_argument("--replicas", nargs="+", help="replica names (default: all)")
    c.add_argument("--domain", help="domain group (needed if several)")
    c.add_argument("--dt-ps", type=float, default=1000.0, help="time between frames in ps (default 1000)")
    c.add_argument("--force-units", default="kcal/mol/A", help=FORCE_UNIT_HELP)
    c.add_argument("--length-units", default="angstrom", help="units of the coordinates")
    _common(c, mapped=True)
    c.set_defaults(handler=_import_mdcath)


def _common(p: argparse.ArgumentParser, *, mapped: bool) -> None:
    p.add_argument("--out", required=True, metavar="DIR", help="output dataset directory")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--termini", action="store_true", help="distinct bead types for N- and C-terminal residues")
    p.add_argument("--bead-mass", choices=["residue", "ca"], default="residue",
                   help="bead mass: residue mass (default) or the Cα atom mass")
    if mapped:
        p.add_argument("--map", dest="map_file", metavar="YAML", help="custom map (one mdtraj selection per bead)")
        p.add_argument("--constraints", choices=["h-bonds", "none"], default="h-bonds",
                       help="rigid constraints for force aggregation (default h-bonds: Hα forces go to Cα)")
    p.add_argument("--chunk-frames", type=int, help="frames per chunk (memory bound)")
    p.add_argument("--no-validate", action="store_true", help="skip validating the result")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _finish(args: argparse.Namespace, result) -> int:
    path, report = result
    if not args.quiet:
        if report is not None:
            for name, detail in report.checks:
                print(f"  ok  {name}: {detail}")
        print(f"wrote {path}")
    return 0


def _kw(args: argparse.Namespace) -> dict:
    kw = dict(overwrite=args.overwrite, validate=not args.no_validate, progress=not args.quiet,
              termini=args.termini, bead_mass=args.bead_mass)
    if args.chunk_frames:
        kw["chunk_frames"] = args.chunk_frames
    return kw


def _import_torchmd_cg(args: argparse.Namespace) -> int:
    from raycg.data.importers import import_torchmd_cg

    return _finish(args, import_torchmd_cg(
        args.coords, args.forces, args.out, embeddings=args.embeddings, sequence=args.sequence,
        topology=args.topology, traj_ids=args.traj_ids, frames_per_traj=args.frames_per_traj,
        weights=args.weights, temperature=args.temperature, dt_ps=args.dt_ps, length_units=args.length_units,
        force_units=args.force_units, **_kw(args)))


def _import_mdtraj(args: argparse.Namespace) -> int:
    from raycg.data.importers import import_mdtraj

    return _finish(args, import_mdtraj(
        args.trajectories, args.forces, args.out, topology=args.top, force_units=args.force_units,
        forces_key=args.forces_key, temperature=args.temperature, dt_ps=args.dt_ps, stride=args.stride,
        map_file=args.map_file, constraints=args.constraints, **_kw(args)))


def _import_mdcath(args: argparse.Namespace) -> int:
    from raycg.data.importers import import_mdcath

    return _finish(args, import_mdcath(
        args.h5file, args.out, temperature=args.temperature, replicas=args.replicas, domain=args.domain,
        dt_ps=args.dt_ps, length_units=args.length_units, force_units=args.force_units, map_file=args.map_file,
        constraints=args.constraints, **_kw(args)))


def _info(args: argparse.Namespace) -> int:
    from raycg.data.describe import describe
    from raycg.data.validate import require_valid

    print(describe(require_valid(args.dataset, "cheap", command="data info")))
    return 0


def _validate(args: argparse.Namespace) -> int:
    from raycg.data.validate import validate_dataset

    rep = validate_dataset(args.dataset, check_hash=not args.no_hash, physics=not args.no_physics)
    if not args.quiet:
        for name, detail in rep.checks:
            print(f"ok  {name}: {detail}")
        print(f"valid: {rep.path}")
    return 0
