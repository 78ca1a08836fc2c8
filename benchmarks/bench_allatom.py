"""ns/day per all-atom replica: raycg's checkpointed replica runner vs a bare OpenMM script, same run.

Both use the same system (amber14 + GBn2, HBonds constraints, HMR, 4 fs LangevinMiddle, 350 K), the
same platform/threads and save positions + forces every ``--save-every-ps``. The bare script keeps
frames in memory; raycg also writes segment files, checkpoints and progress. Prints JSON.

    python benchmarks/bench_allatom.py [--ps 10] [--repeats 2] [--platform CPU] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def bare_openmm(pdb: Path, cfg, ps: float) -> float:
    import openmm as mm
    import openmm.app as app
    import openmm.unit as u

    p = app.PDBFile(str(pdb))
    ff = app.ForceField("amber14-all.xml", "implicit/gbn2.xml")
    system = ff.createSystem(p.topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds,
                             hydrogenMass=cfg.hydrogen_mass_amu * u.amu)
    integ = mm.LangevinMiddleIntegrator(cfg.temperature_K * u.kelvin, 1 / u.picosecond, cfg.dt_fs * u.femtosecond)
    plat = mm.Platform.getPlatformByName(cfg.platform)
    props = {"Threads": str(cfg.cpu_threads)} if cfg.platform == "CPU" and cfg.cpu_threads else {}
    sim = app.Simulation(p.topology, system, integ, plat, props)
    sim.context.setPositions(p.positions)
    sim.minimizeEnergy(maxIterations=cfg.minimise_iterations)
    sim.context.setVelocitiesToTemperature(cfg.temperature_K * u.kelvin, 1)
    frames = []
    n = int(round(ps / cfg.save_every_ps))
    t0 = time.perf_counter()
    for _ in range(n):
        sim.step(cfg.save_every_steps)
        s = sim.context.getState(getPositions=True, getForces=True)
        frames.append((s.getPositions(asNumpy=True), s.getForces(asNumpy=True)))
    wall = time.perf_counter() - t0
    return n * cfg.save_every_steps * cfg.dt_fs * 1e-6 / wall * 86400.0


def raycg_replica(pdb: Path, cfg, ps: float) -> float:
    from raycg.allatom import run_replica

    c = cfg.model_copy(update={"duration_ns": ps / 1000.0})
    with tempfile.TemporaryDirectory() as d:
        prog = run_replica(pdb, c, 0, d)
    return prog["ns_done"] / prog["wall_s"] * 86400.0


def main() -> None:
    from raycg.allatom import AllAtomConfig

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ps", type=float, default=10.0, help="production length per measurement (ps)")
    ap.add_argument("--save-every-ps", type=float, default=1.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--platform", default="CPU")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from raycg.synth.go_model import native_pdb_path

    pdb = native_pdb_path()
    cfg = AllAtomConfig(save_every_ps=args.save_every_ps, segment_ps=max(args.ps / 4, args.save_every_ps),
                        minimise_iterations=100, equilibration_ps=0.0, unfold_ps=0.0, unfolded_fraction=0.0,
                        platform=args.platform, cpu_threads=args.threads, duration_ns=args.ps / 1000.0)
    bare, ours = [], []
    for _ in range(args.repeats):  # interleaved, so both see the same machine load
        bare.append(bare_openmm(pdb, cfg, args.ps))
        ours.append(raycg_replica(pdb, cfg, args.ps))
    b, o = max(bare), max(ours)
    # each (bare, raycg) pair ran back to back, so their ratio sees the same machine load
    pair_overhead = sorted(100 * (1 - y / x) for x, y in zip(bare, ours))
    median_pair = pair_overhead[len(pair_overhead) // 2] if len(pair_overhead) % 2 else \
        0.5 * (pair_overhead[len(pair_overhead) // 2 - 1] + pair_overhead[len(pair_overhead) // 2])
    print(json.dumps({
        "benchmark": "allatom_ns_per_day", "system": "CLN025 amber14+GBn2, HMR 4 fs, 350 K",
        "platform": args.platform, "threads": args.threads, "ps_per_run": args.ps, "save_every_ps": args.save_every_ps,
        "bare_openmm_ns_per_day": [round(x, 2) for x in bare], "raycg_ns_per_day": [round(x, 2) for x in ours],
        "best_bare": round(b, 2), "best_raycg": round(o, 2),
        "overhead_percent_best_vs_best": round(100 * (1 - o / b), 2),
        "overhead_percent_per_pair": [round(x, 2) for x in pair_overhead],
        "overhead_percent_median_of_pairs": round(median_pair, 2),
        "target_overhead_percent": 5.0,
    }, indent=2))


if __name__ == "__main__":
    main()
