"""``raycg sim run``: simulate a saved model (or a priors JSON) from start frames of a dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from raycg.cli.common import DATASET_HELP, dataset_arg


def register(groups) -> None:
    p = groups["sim"].add_parser(
        "run", help="simulate a saved model or priors JSON from dataset start frames",
        description="Batched BAOAB Langevin (or Brownian) simulation. Units: Å, ps, amu, kcal/mol, K. "
                    "Writes OUT/topology.pdb, replica_NNNN.h5 (mdtraj), thermo.npz, replicas.json, "
                    "checkpoint.pt; re-running with the same OUT resumes an interrupted run.")
    p.add_argument("model", metavar="MODEL_OR_PRIORS",
                   help="model directory written by raycg.model.save_model, or a priors JSON (PriorSet.save)")
    p.add_argument("--dataset", required=True, type=dataset_arg,
                   help=DATASET_HELP + " (start frames, masses, topology)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--config", help="YAML file with SimulationConfig fields (command-line options override it)")
    p.add_argument("--n-replicas", type=int, default=32, help="number of replicas (default 32)")
    p.add_argument("--starts", choices=("kcenters", "stratified", "random"), default="kcenters",
                   help="start-frame selection (default kcenters on pair distances; stratified needs --features)")
    p.add_argument("--features", help="per-frame 1-D/2-D feature .npy for --starts stratified (e.g. TIC projections)")
    p.add_argument("--n-steps", type=int, help="integration steps")
    p.add_argument("--dt-ps", type=float, help="time step in ps (default 0.002)")
    p.add_argument("--friction", type=float, dest="friction_per_ps", help="friction in 1/ps (default 1)")
    p.add_argument("--temperature", type=float, dest="temperature_K", help="K (default: the dataset's temperature)")
    p.add_argument("--integrator", choices=("baoab", "brownian"))
    p.add_argument("--save-every", type=int, help="save a frame every N steps")
    p.add_argument("--seed", type=int)
    p.add_argument("--dtype", choices=("float32", "float64"))
    p.add_argument("--device", help="cpu, cuda, cuda:N")
    p.add_argument("--max-bond", type=float, dest="blowup_max_bond_A",
                   help="blow-up envelope in Å (default 1.5 x the largest bonded distance in the dataset; 0: off)")
    p.add_argument("--checkpoint-every", type=int, help="checkpoint every N steps")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the potential (default: auto, runs of 10,000+ steps)")
    p.add_argument("--filter-table-spacing", type=float, dest="filter_table_spacing_A",
                   help="CGSchNet filter table grid in Å (default 0.005; 0: exact filter networks)")
    p.add_argument("--engine", choices=("raycg", "openmm"),
                   help="raycg (batched torch, default) or openmm (one OpenMM Context per replica, "
                        "LangevinMiddleIntegrator, the model as a PythonForce; same outputs)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a finished simulation in OUT, or files there raycg cannot read")
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.set_defaults(handler=run)


def load_potential(path: str | Path, device: str = "cpu"):
    """A potential from a priors JSON (PriorSet) or a model directory (raycg.model.load_model)."""
    from raycg.errors import InputError

    path = Path(path)
    if not path.exists():
        raise InputError(f"model or priors not found: {path}", hint="check the path")
    if path.is_file() and path.suffix == ".json":
        from raycg.priors import PriorSet

        return PriorSet.load(path).to_module()
    if path.is_dir():
        try:
            from raycg.model import load_model
        except ImportError:
            raise InputError(f"{path}: model files need raycg.model, which is not available",
                             hint="pass a priors JSON instead") from None
        return load_model(path, device=device)
    raise InputError(f"{path} is neither a priors JSON (.json) nor a model directory",
                     hint="pass a priors JSON (raycg priors fit) or a model directory (raycg train)")


def check_out(out: str | Path, overwrite: bool) -> None:
    """Refuse (one InputError line) an ``--out`` that is not a directory, or, without
    ``--overwrite``, one holding a file the run would replace that raycg cannot read back
    (:func:`raycg.sim.output.unreadable_output`)."""
    from raycg.errors import InputError
    from raycg.sim.output import not_a_directory, unreadable_output

    if why := not_a_directory(out):
        raise InputError(f"--out {out} {why}", hint="give a directory (new, or a simulation's)")
    if not overwrite and (why := unreadable_output(out)):
        raise InputError(f"--out {out}: {why}, so raycg will not replace it",
                         hint="pass --overwrite to replace it, or choose another --out")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from raycg.cli.common import check_device
    from raycg.config import read_yaml, validate_config
    from raycg.data.validate import require_valid
    from raycg.errors import InputError
    from raycg.sim import SimulationConfig, make_config, max_bond_from_data, select_start_frames, simulate
    from raycg.utils.io import atomic_write_json

    check_out(args.out, args.overwrite)  # before any work: nothing raycg cannot read is replaced
    ds = require_valid(args.dataset, "cheap", command="sim run")  # start frames, masses, bonds, units
    base: dict = {}
    if args.config:
        data, lines = read_yaml(args.config)
        validate_config(SimulationConfig, data, source=str(args.config), lines=lines)
        base = dict(data)
    base.setdefault("temperature_K", ds.temperature)
    over = {k: getattr(args, k) for k in ("n_steps", "dt_ps", "friction_per_ps", "temperature_K", "integrator",
                                          "save_every", "seed", "dtype", "device", "checkpoint_every", "compile",
                                          "engine")
            if getattr(args, k) is not None}
    if args.blowup_max_bond_A is not None:
        over["blowup_max_bond_A"] = args.blowup_max_bond_A if args.blowup_max_bond_A > 0 else None
    elif base.get("blowup_max_bond_A") is None and ds.bonds.shape[0] > 0:
        over["blowup_max_bond_A"] = max_bond_from_data(ds)
    if args.filter_table_spacing_A is not None:
        over["filter_table_spacing_A"] = args.filter_table_spacing_A if args.filter_table_spacing_A > 0 else None
    cfg = make_config(base, **over)
    check_device(cfg.device, where="--device" if args.device else f"{args.config}: device")
    if args.n_replicas < 1:
        raise InputError(f"--n-replicas must be >= 1, got {args.n_replicas}")
    features = None
    if args.features:
        try:
            features = np.load(args.features, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise InputError(f"--features {args.features}: cannot read .npy ({exc})") from None
    frames = select_start_frames(ds, args.n_replicas, method=args.starts, seed=cfg.seed, features=features)
    potential = load_potential(args.model, cfg.device)
    start = np.asarray(ds.coords[frames], dtype=np.float64)
    res = simulate(potential, ds.masses, start, cfg, out_dir=args.out, topology=ds.topology(),
                   bonds=ds.bonds, progress=not args.no_progress, overwrite=args.overwrite,
                   keep_positions=False)
    atomic_write_json(Path(args.out) / "starts.json", {
        "dataset": str(Path(args.dataset).resolve()), "dataset_hash": ds.content_hash, "method": args.starts,
        "frames": frames.tolist(), "model": str(Path(args.model).resolve())})
    n_dead = int((~res.alive).sum())
    print(f"simulated {res.n_replicas} replicas x {cfg.n_steps} steps ({res.steps_per_s:.4g} steps/s, "
          f"{res.replica_steps_per_s:.4g} replica-steps/s); {n_dead} blown up; output: {args.out}")
    return 0
