"""OpenMM export and engine on the quickstart's model: errors, distributions, replica-steps/s (JSON).

Trains the quickstart's CGSchNet (hidden/filters 32, 2 interactions, 16 basis functions, priors,
force matching) on the embedded CLN025 reference, exports it (``raycg.export.export_model`` with the
check on ``--frames`` dataset frames: OpenMM Reference and CPU, TorchScript), then simulates it with
raycg's engine and with ``engine: openmm`` (same replicas, starts, 350 K, friction 0.2/ps, 8 fs, the
quickstart's protocol shortened to ``--steps``) and prints one JSON object: the check's errors, both
runs' bond/angle means and variances, mean potential energy, TIC 1-2 metrics (raycg.evaluate.score,
with their bootstrap intervals) side by side, and each engine's replica-steps/s (one run).

    python benchmarks/bench_export.py [--replicas 8] [--steps 5000] [--frames 1000] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def _geometry(res) -> dict[str, float]:
    xs = [res.replica_frames(r) for r in range(res.n_replicas)]
    x = np.concatenate([a[len(a) // 10 :] for a in xs])
    bonds = np.linalg.norm(x[:, 1:] - x[:, :-1], axis=-1)
    u, v = x[:, :-2] - x[:, 1:-1], x[:, 2:] - x[:, 1:-1]
    cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
    ang = np.arccos(np.clip(cos, -1, 1))
    e = res.potential_energy[:, res.potential_energy.shape[1] // 10 :]
    return {
        "bond_mean_A": float(bonds.mean()),
        "bond_var_A2": float(bonds.var(0).mean()),
        "angle_mean_rad": float(ang.mean()),
        "angle_var_rad2": float(ang.var(0).mean()),
        "mean_potential_energy_kcal": float(np.nanmean(e)),
        "kinetic_temperature_K": float(np.nanmean(res.kinetic_temperature)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=None)
    a = ap.parse_args()

    from raycg.cv import fit_reference_tica
    from raycg.data.format import load
    from raycg.evaluate import EvalConfig, load_model_trajectories, score
    from raycg.export import export_model
    from raycg.model import load_model
    from raycg.priors import fit_priors
    from raycg.sim import SimulationConfig, max_bond_from_data, select_start_frames, simulate
    from raycg.sim.openmm_engine import simulate_openmm
    from raycg.synth import embedded_dataset
    from raycg.train import TrainConfig, train

    out: dict = {"load_average_start": os.getloadavg()}
    ds = load(embedded_dataset())
    work = Path(tempfile.mkdtemp(prefix="bench_export."))
    t0 = time.perf_counter()
    priors = fit_priors(ds)
    cfg = TrainConfig.model_validate(
        {
            "epochs": a.epochs,
            "batch_size": 128,
            "frame_stride": 2,
            "max_val_frames": 2000,
            "early_stopping_patience": None,
            "progress": False,
            "model": {
                "hidden_channels": 32,
                "num_filters": 32,
                "num_interactions": 2,
                "num_rbf": 16,
                "cutoff_upper": 12.0,
            },
            "optim": {"lr": 1.0e-3},
        }
    )
    model_dir = train(cfg, ds, priors, None, work / "train").model_dir
    out["train_s"] = time.perf_counter() - t0
    _, check = export_model(model_dir, ds, work / "export", check_frames=a.frames)
    out["check"] = check.to_json()
    model = load_model(model_dir)
    tica = fit_reference_tica(ds, lag=5)
    frames = select_start_frames(ds, a.replicas, method="kcenters", seed=0)
    starts = np.asarray(ds.coords[frames], np.float64)
    sim = SimulationConfig(
        n_steps=a.steps,
        save_every=125,
        dt_ps=0.008,
        friction_per_ps=0.2,
        temperature_K=ds.temperature,
        seed=0,
        blowup_max_bond_A=max_bond_from_data(ds),
    )
    runs = {}
    for engine in ("raycg", "openmm"):
        run_dir = work / f"sim_{engine}"
        kw = dict(out_dir=run_dir, topology=ds.topology(), bonds=ds.bonds, progress=False)
        if engine == "raycg":
            res = simulate(model, ds.masses, starts, sim, **kw)
        else:
            res = simulate_openmm(
                model,
                ds.masses,
                starts,
                sim.model_copy(update={"engine": "openmm"}),
                workers=a.workers,
                **kw,
            )
        sc = score(ds, tica, load_model_trajectories(run_dir, ds), EvalConfig())
        keep = ("js_divergence", "kl_divergence", "w1", "replica_time_lost_fraction")
        metrics = {k: v for k, v in sc.metrics.items() if any(k.startswith(m) for m in keep)}
        runs[engine] = {
            **_geometry(res),
            "tic12": metrics,
            "replica_steps_per_s": res.replica_steps_per_s,
            "wall_s": res.wall_s,
            "n_blown_up": len(res.blown_up),
            "info": res.info["forces"].get("openmm"),
        }
    out["simulation"] = {
        "replicas": a.replicas,
        "steps": a.steps,
        "dt_ps": 0.008,
        "friction_per_ps": 0.2,
        "temperature_K": ds.temperature,
        "runs": runs,
        "speed_ratio_openmm_vs_raycg": runs["openmm"]["replica_steps_per_s"]
        / runs["raycg"]["replica_steps_per_s"],
    }
    out["load_average_end"] = os.getloadavg()
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
