"""OpenMM export and engine on a trained model: errors, distributions, replica-steps/s (JSON).

With ``--model DIR`` (e.g. the quickstart's trained model) that model is used; without, the
quickstart's CGSchNet (hidden/filters 32, 2 interactions, 16 basis functions, priors, force
matching) is trained for ``--epochs`` on the embedded CLN025 reference. The model is exported
(``raycg.export.export_model`` with the check on ``--frames`` dataset frames: OpenMM Reference and
CPU, TorchScript), then simulated by raycg's engine and by ``engine: openmm`` from the same starts
(350 K, friction ``--friction`` 1/ps, 8 fs: the quickstart's protocol, ``--steps`` long). One JSON
object: the check's errors; per quantity (bond length mean / variance, angle mean / variance, mean
potential energy, kinetic temperature) each engine's mean over replicas with its standard error
(replicas as independent samples: std over per-replica averages / sqrt(R); the first 10% of each
replica's frames dropped), the difference openmm - raycg with its standard error and z; TIC 1-2
metrics (raycg.evaluate.score, bootstrap intervals); each engine's replica-steps/s (one run).
Units: Å, rad, kcal/mol, K.

    python benchmarks/bench_export.py --model DIR [--replicas 16] [--steps 4000] [--frames 1000]
        [--threads 1 --workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: per-replica quantities compared between the engines, and their units
QUANTITIES = {
    "bond_mean_A": "A",
    "bond_var_A2": "A^2",
    "angle_mean_rad": "rad",
    "angle_var_rad2": "rad^2",
    "mean_potential_energy_kcal": "kcal/mol",
    "kinetic_temperature_K": "K",
}


def per_replica(res) -> dict[str, np.ndarray]:
    """Per-replica averages [R] of :data:`QUANTITIES` (first 10% of frames dropped): bond lengths
    and CA-CA-CA angles averaged over bonds/angles and frames; variances over frames of each bond or
    angle, averaged over bonds/angles."""
    out: dict[str, list[float]] = {k: [] for k in QUANTITIES}
    for r in range(res.n_replicas):
        x = res.replica_frames(r)
        skip = len(x) // 10
        x = x[skip:]
        bonds = np.linalg.norm(x[:, 1:] - x[:, :-1], axis=-1)
        u, v = x[:, :-2] - x[:, 1:-1], x[:, 2:] - x[:, 1:-1]
        cos = (u * v).sum(-1) / np.linalg.norm(u, axis=-1) / np.linalg.norm(v, axis=-1)
        ang = np.arccos(np.clip(cos, -1, 1))
        n = len(x)
        vals = {
            "bond_mean_A": bonds.mean(),
            "bond_var_A2": bonds.var(0).mean(),
            "angle_mean_rad": ang.mean(),
            "angle_var_rad2": ang.var(0).mean(),
            "mean_potential_energy_kcal": np.nanmean(res.potential_energy[r, skip : skip + n]),
            "kinetic_temperature_K": np.nanmean(res.kinetic_temperature[r, skip : skip + n]),
        }
        for k, val in vals.items():
            out[k].append(float(val))
    return {k: np.asarray(v) for k, v in out.items()}


def compare(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per quantity: raycg (a) and openmm (b) means over replicas with standard errors, the difference
    b - a with its standard error (independent replicas: sqrt(se_a^2 + se_b^2)) and z = diff / se."""
    out = {}
    for k, unit in QUANTITIES.items():
        ma, mb = float(a[k].mean()), float(b[k].mean())
        sa = float(a[k].std(ddof=1) / np.sqrt(len(a[k])))
        sb = float(b[k].std(ddof=1) / np.sqrt(len(b[k])))
        se = float(np.hypot(sa, sb))
        out[k] = {
            "unit": unit,
            "raycg": ma,
            "raycg_se": sa,
            "openmm": mb,
            "openmm_se": sb,
            "diff": mb - ma,
            "diff_se": se,
            "z": (mb - ma) / se if se > 0 else float("nan"),
        }
    return out


def _say(what: str, t0: float) -> None:
    """A progress line on stderr (stdout holds only the JSON)."""
    print(f"[bench_export {time.perf_counter() - t0:7.1f} s] {what}", file=sys.stderr, flush=True)


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (OpenMM's worker processes)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _train(ds, epochs: int, work: Path) -> Path:
    """The quickstart's CGSchNet trained on ``ds`` for ``epochs``; its model directory."""
    from raycg.priors import fit_priors
    from raycg.train import TrainConfig, train

    cfg = TrainConfig.model_validate(
        {
            "epochs": epochs,
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
    return train(cfg, ds, fit_priors(ds), None, work / "train").model_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="trained model directory (default: train the quickstart's model)")
    ap.add_argument("--replicas", type=int, default=16)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--save-every", type=int, default=50)
    ap.add_argument("--friction", type=float, default=0.2, help="1/ps (the quickstart's 0.2)")
    ap.add_argument("--frames", type=int, default=1000, help="dataset frames the export check compares")
    ap.add_argument("--epochs", type=int, default=4, help="training epochs without --model")
    ap.add_argument("--workers", type=int, default=None, help="OpenMM worker processes (default: one per core)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch intra-op threads of this process (default: torch's); OpenMM's worker "
                         "processes use one each. On a shared machine 1, with --workers 1, runs both engines "
                         "on one core each (2 spinning threads on busy cores are many times slower)")
    a = ap.parse_args()
    import torch

    if a.threads is not None:
        torch.set_num_threads(a.threads)

    from raycg.cv import fit_reference_tica
    from raycg.data.format import load
    from raycg.evaluate import EvalConfig, load_model_trajectories, score
    from raycg.export import export_model
    from raycg.model import load_model
    from raycg.sim import SimulationConfig, max_bond_from_data, select_start_frames, simulate
    from raycg.synth import embedded_dataset

    out: dict = {"load_average_start": os.getloadavg(), "cpu_cores": len(os.sched_getaffinity(0)),
                 "torch_threads": torch.get_num_threads(), "openmm_workers": a.workers}
    ds = load(embedded_dataset())
    work = Path(tempfile.mkdtemp(prefix="bench_export."))
    start = t0 = time.perf_counter()
    if a.model:
        model_dir = Path(a.model)
        out["model"] = str(model_dir.resolve())
    else:
        model_dir = _train(ds, a.epochs, work)
        out["model"] = f"trained here ({a.epochs} epochs)"
        out["train_s"] = time.perf_counter() - t0
    _say("export and check", start)
    t0 = time.perf_counter()
    _, check = export_model(model_dir, ds, work / "export", check_frames=a.frames)
    out["check"] = check.to_json()
    out["check_s"] = time.perf_counter() - t0
    model = load_model(model_dir)
    _say("reference TICA", start)
    tica = fit_reference_tica(ds, lag=5)
    frames = select_start_frames(ds, a.replicas, method="kcenters", seed=0)
    starts = np.asarray(ds.coords[frames], np.float64)
    dt = 0.008
    base = SimulationConfig(
        n_steps=a.steps,
        save_every=a.save_every,
        dt_ps=dt,
        friction_per_ps=a.friction,
        temperature_K=ds.temperature,
        seed=0,
        blowup_max_bond_A=max_bond_from_data(ds),
    )
    runs, stats = {}, {}
    for engine in ("raycg", "openmm"):
        run_dir = work / f"sim_{engine}"
        _say(f"simulate: engine {engine}", start)
        t1, c1 = time.perf_counter(), _cpu_s()
        res = simulate(
            model,
            ds.masses,
            starts,
            base.model_copy(update={"engine": engine}),
            out_dir=run_dir,
            topology=ds.topology(),
            bonds=ds.bonds,
            progress=False,
            **({"workers": a.workers} if engine == "openmm" else {}),
        )
        total, cpu = time.perf_counter() - t1, _cpu_s() - c1
        stats[engine] = per_replica(res)
        _say(f"score: engine {engine}", start)
        sc = score(ds, tica, load_model_trajectories(run_dir, ds), EvalConfig())
        keep = ("js_divergence", "kl_divergence", "w1", "replica_time_lost_fraction")
        forces = res.info["forces"]
        runs[engine] = {
            "replica_steps_per_s": res.replica_steps_per_s,
            "wall_s": res.wall_s,
            "total_s_with_setup": total,
            "cpu_s_with_setup": cpu,
            "n_blown_up": len(res.blown_up),
            "compiled": bool(forces.get("compiled")),
            "openmm": forces.get("openmm"),
            "tic12": {k: v for k, v in sc.metrics.items() if any(k.startswith(m) for m in keep)},
        }
    out["simulation"] = {
        "replicas": a.replicas,
        "steps": a.steps,
        "save_every": a.save_every,
        "dt_ps": dt,
        "length_ps": a.steps * dt,
        "friction_per_ps": a.friction,
        "temperature_K": ds.temperature,
        "compare": compare(stats["raycg"], stats["openmm"]),
        "runs": runs,
        "speed_ratio_openmm_vs_raycg": runs["openmm"]["replica_steps_per_s"]
        / runs["raycg"]["replica_steps_per_s"],
    }
    out["load_average_end"] = os.getloadavg()
    out["total_s"], out["cpu_s"] = time.perf_counter() - start, _cpu_s()
    print(json.dumps(out, indent=1, default=float))


if __name__ == "__main__":
    main()
