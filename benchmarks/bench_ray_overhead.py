"""Ray overhead of a study, and the speed-up from 1 to 2 worker nodes. Prints JSON.

1. **Overhead per trial**: a local Ray (2 CPUs) runs a grid of 12 short trials of the ``toy``
   pipeline (same reporting, checkpointing and storage writes as a real trial; its stages sleep a
   known time). Overhead per trial = (Tune wall time x trial slots / trials) - mean time inside
   the stages; it includes scheduling, actor start-up, every per-epoch/per-chunk report with its
   checkpoint and every result written to the study storage. Target: < 2 s.
2. **Scaling**: the same kind of grid on a ``ray.cluster_utils.Cluster`` (head without CPUs plus
   1, then 2, one-CPU worker nodes); speed-up = wall(1 node) / wall(2 nodes). Target: >= 1.8x.
   The toy stages sleep, so this measures how well the study fills the nodes, not how fast two
   busy cores are (this machine is shared). A fixed start-up (Tune set-up and the first trial
   actor on each node, ~4 s here) does not shrink with more nodes; ``speedup_after_startup``
   leaves it out. Scaling trials spend 5 s in their stages (quickstart trials: 60-90 s).

    python benchmarks/bench_ray_overhead.py [--trials 12] [--stage-s 2.5] [--scaling-stage-s 5] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")


def toy_spec(name: str, storage: Path, n_trials: int, stage_s: float, concurrency: int | None) -> dict:
    seeds = max(1, n_trials // 3)
    epochs, chunks = 3, 2
    return {
        "name": name, "pipeline": "toy", "storage": str(storage),
        "grid": {"energy_weights": [0.0, 0.5, 1.0], "seeds": seeds},
        "toy": {"epochs": epochs, "epoch_s": 0.6 * stage_s / epochs, "chunks": chunks,
                "chunk_s": 0.4 * stage_s / chunks},
        "resources": {"cpus": 1},
        "concurrency": {"max_concurrent_trials": concurrency},
    }


def run_grid(spec: dict) -> dict:
    from raycg.study import run_study

    lines: list[str] = []
    t0, u0 = time.perf_counter(), time.time()
    table = run_study(spec, log=lines.append, aggregate_results=False)
    wall = time.perf_counter() - t0
    study = Path(spec["storage"]) / spec["name"]
    res = [json.loads(p.read_text()) for p in sorted(study.glob("trials/*/result.json"))]
    stage = [sum(r["stage_times"].values()) for r in res]
    inside = [r["runtime_s"] - s for r, s in zip(res, stage)]
    first_start = min(json.loads(p.read_text())["started_unix"] for p in study.glob("trials/*/attempts/*.json"))
    last_end = max(p.stat().st_mtime for p in study.glob("trials/*/result.json"))
    return {"wall_s": wall, "startup_s": first_start - u0, "busy_s": last_end - first_start, "n_trials": len(table),
            "n_ok": int((table["status"] == "ok").sum()),
            "mean_stage_s": sum(stage) / len(stage), "mean_in_trial_overhead_s": sum(inside) / len(inside)}


def bench_overhead(n_trials: int, stage_s: float, work: Path) -> dict:
    import ray

    temp = Path(tempfile.mkdtemp(prefix="rcgb", dir="/tmp"))
    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024**2,
             _temp_dir=str(temp), logging_level="WARNING", log_to_driver=False)
    init_s = time.perf_counter() - t0
    try:
        r = run_grid(toy_spec("overhead", work, n_trials, stage_s, 2))
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    slots = 2
    per_trial = r["wall_s"] * slots / r["n_trials"] - r["mean_stage_s"]
    return {"n_trials": r["n_trials"], "n_ok": r["n_ok"], "concurrent_trials": slots, "ray_init_s": init_s,
            "study_wall_s": r["wall_s"], "mean_stage_time_s": r["mean_stage_s"],
            "overhead_per_trial_s": per_trial, "overhead_inside_trial_function_s": r["mean_in_trial_overhead_s"],
            "target_s": 2.0, "meets_target": per_trial < 2.0}


def bench_scaling(n_trials: int, stage_s: float, work: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    address_file = Path("/tmp/ray/ray_current_cluster")
    out = {}
    for n_nodes in (1, 2):
        old = address_file.read_bytes() if address_file.exists() else None
        temp = Path(tempfile.mkdtemp(prefix="rcgs", dir="/tmp"))
        cluster = Cluster(initialize_head=True, connect=False,
                          head_node_args={"num_cpus": 0, "temp_dir": str(temp), "include_dashboard": False,
                                          "object_store_memory": 80 * 1024**2})
        if old is None:
            address_file.unlink(missing_ok=True)
        else:
            address_file.write_bytes(old)
        try:
            for _ in range(n_nodes):
                cluster.add_node(num_cpus=1, temp_dir=str(temp), object_store_memory=80 * 1024**2)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
            try:
                out[n_nodes] = run_grid(toy_spec(f"scaling{n_nodes}", work, n_trials, stage_s, None))
            finally:
                ray.shutdown()
        finally:
            cluster.shutdown()
            shutil.rmtree(temp, ignore_errors=True)
    speedup = out[1]["wall_s"] / out[2]["wall_s"]
    return {"n_trials": out[1]["n_trials"], "wall_s_1_node": out[1]["wall_s"], "wall_s_2_nodes": out[2]["wall_s"],
            "speedup": speedup, "target": 1.8, "meets_target": speedup >= 1.8,
            "startup_s_1_node": out[1]["startup_s"], "startup_s_2_nodes": out[2]["startup_s"],
            "speedup_after_startup": out[1]["busy_s"] / out[2]["busy_s"],
            "stage_work": "sleep (toy pipeline)", "mean_stage_time_s": out[1]["mean_stage_s"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--stage-s", type=float, default=2.5, help="time inside the stages of one trial")
    ap.add_argument("--scaling-trials", type=int, default=12)
    ap.add_argument("--scaling-stage-s", type=float, default=5.0,
                    help="time inside the stages of one scaling trial (quickstart trials take 60-90 s)")
    ap.add_argument("--skip-scaling", action="store_true")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="raycg-bench-ray-"))
    try:
        result = {"benchmark": "ray_overhead", "cpus_on_machine": os.cpu_count(),
                  "load_avg_1m_start": os.getloadavg()[0],
                  "overhead": bench_overhead(args.trials, args.stage_s, work)}
        if not args.skip_scaling:
            result["scaling"] = bench_scaling(args.scaling_trials, args.scaling_stage_s, work)
        result["load_avg_1m_end"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    from raycg.utils.provenance import provenance

    result["provenance"] = {k: v for k, v in provenance().items() if k in ("git_commit", "packages", "created_utc")}
    text = json.dumps(result, indent=2, default=str)
    print(text)
    if args.out:
        from raycg.utils.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
