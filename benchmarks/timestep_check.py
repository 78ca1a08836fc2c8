"""Does the simulation time step change what a study measures? A trained model of a finished study,
simulated with the study's own protocol at several time steps (same simulated time), scored like a trial.

    python benchmarks/timestep_check.py results/quickstart --trial w0_s0 --dt-fs 4 8 --seeds 3

For each time step and seed: KL(ref||model) and W1 (the study's metrics), the mean potential energy
(a configurational average: BAOAB keeps it exact for harmonic modes at any stable step), the mean
kinetic temperature (full-step velocities: BAOAB cools a mode of frequency ω by (ω·dt)²/4), the
convergence verdict, blown-up replicas and the simulation's wall time. Prints JSON; the summary gives
each step's mean ± SD over seeds. The quickstart's 8 fs was chosen from this script's output.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def run_one(study: Path, trial: str, dt_fs: float, seed: int, workdir: Path) -> dict:
    from raycg.cv import ReferenceTICA
    from raycg.data import format as dfmt
    from raycg.evaluate import load_model_trajectories, score
    from raycg.model.io import load_model
    from raycg.sim import simulate
    from raycg.study.pipelines.cgschnet.simulate import engine_config
    from raycg.study.spec import load_spec

    spec = load_spec(study / "spec.yaml")
    prep = json.loads((study / "prepared" / "prepared.json").read_text())
    ds = dfmt.load(prep["dataset_path"])
    starts = np.load(study / "prepared" / "start_positions.npy")
    sec = spec.simulation
    total_ps = sec.n_steps * sec.dt_ps
    dt = dt_fs / 1000.0
    n, every = round(total_ps / dt), round(sec.save_every * sec.dt_ps / dt)
    cfg = engine_config(sec, prep).model_copy(update={"dt_ps": dt, "n_steps": n, "save_every": every,
                                                      "checkpoint_every": n, "seed": seed})
    out = workdir / f"{trial}_{dt_fs:g}fs_seed{seed}"
    t0 = time.perf_counter()
    res = simulate(load_model(study / "trials" / trial / "model"), ds.masses, starts, cfg, out_dir=out,
                   topology=ds.topology(), bonds=ds.bonds, progress=False, overwrite=True)
    wall = time.perf_counter() - t0
    samples = load_model_trajectories(out, reference=ds)
    samples.set_start_frames(starts)
    sc = score(ds, ReferenceTICA.load(study / "prepared" / "tica.npz"), samples, spec.evaluation.eval_config())
    thermo = np.load(out / "thermo.npz")
    burn = int(spec.evaluation.burn_in_fraction * thermo["potential_energy"].shape[1])
    return {"dt_fs": dt_fs, "seed": seed, "n_steps": n, "sim_wall_s": round(wall, 1),
            "alive": int(np.sum(res.alive)), "converged": bool(sc.convergence.converged),
            "kl_ref_model": float(sc.metrics["kl_ref_model"]), "w1": float(sc.metrics["w1"]),
            "mean_potential_energy": float(np.nanmean(thermo["potential_energy"][:, burn:])),
            "mean_kinetic_temperature": float(np.nanmean(thermo["kinetic_temperature"][:, burn:]))}


def summarize(rows: list[dict]) -> dict:
    out = {}
    for dt in sorted({r["dt_fs"] for r in rows}):
        sel = [r for r in rows if r["dt_fs"] == dt]
        out[f"{dt:g}fs"] = {k: {"mean": float(np.mean([r[k] for r in sel])),
                                "sd": float(np.std([r[k] for r in sel], ddof=1)) if len(sel) > 1 else None}
                            for k in ("kl_ref_model", "w1", "mean_potential_energy", "mean_kinetic_temperature",
                                      "sim_wall_s")}
        out[f"{dt:g}fs"]["converged"] = sum(r["converged"] for r in sel)
        out[f"{dt:g}fs"]["runs"] = len(sel)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="a finished study directory (STORAGE/NAME)")
    ap.add_argument("--trial", default="w0_s0")
    ap.add_argument("--dt-fs", type=float, nargs="+", default=[4.0, 8.0])
    ap.add_argument("--seeds", type=int, default=3, help="simulation seeds per time step (1, 2, ...)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, args.seeds + 1):
            for dt in args.dt_fs:
                rows.append(run_one(args.study, args.trial, dt, seed, Path(tmp)))
    print(json.dumps({"study": str(args.study), "trial": args.trial, "torch": torch.__version__,
                      "runs": rows, "summary": summarize(rows)}, indent=1))


if __name__ == "__main__":
    main()
