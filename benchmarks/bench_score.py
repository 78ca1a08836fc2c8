"""Scoring throughput: 1,000,000 model frames of CLN025 size (10 Cα beads) against a reference.

Synthetic two-state data (folded = CLN025 native Cα trace, unfolded = extended chain, 0.4 Å noise,
slow switching) stands in for real trajectories; the work per frame is the same as for real data.
Measured separately: fitting the reference TICA, preparing the reference (projection, FES, basins,
RMSD statistics; done once per study) and scoring the model (projection after 10% burn-in, 2-D/1-D
FES, KL both ways, JS, W1 exact 1-D on all frames + exact 2-D grid optimal transport, FES MSE, coverage,
folded/mirror RMSD fractions on all frames, basins and transitions). Prints JSON (time and peak RSS).

    python benchmarks/bench_score.py [--model-frames 1000000] [--replicas 1000] [--reference-frames 1000000]
    python benchmarks/bench_score.py --w1 [--repeats 20]

``--w1`` times only the 2-D W1 transport, side by side on the same 24 x 24 histograms of two
two-basin samples: raycg's ``transport_cost`` (POT's network simplex) against the same transport
as a sparse linear program through scipy's HiGHS (what raycg used before), with both values.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

import numpy as np


def rss_mb() -> float:
    """Peak resident memory of this process so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux: VmHWM), so a stage's own peak can be read."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def hwm_mb() -> float:
    """Peak RSS since the last reset (MB), from /proc/self/status; NaN where unavailable."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def current_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def w1_side_by_side(repeats: int, seed: int) -> dict:
    """Seconds per 2-D W1 transport: POT's network simplex (raycg) vs the linear program through HiGHS."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix
    from scipy.spatial.distance import cdist

    from raycg.evaluate import metrics as M

    rng = np.random.default_rng(seed)
    ref = np.concatenate([rng.normal([0, 0], [1, 0.5], (30_000, 2)), rng.normal([2.5, 1], [0.5, 0.5], (8_000, 2))])
    rows, ours, theirs, sizes = [], [], [], []
    for _ in range(repeats):
        mod = np.concatenate([rng.normal([0.2, 0.1], [1.1, 0.6], (6_000, 2)),
                              rng.normal([2.2, 1.2], [0.6, 0.4], (2_000, 2))])
        edges = M.w1_grid_edges(ref, mod, 24)
        hp = np.bincount(M.w1_cells(ref, edges), minlength=576) / len(ref)
        hq = np.bincount(M.w1_cells(mod, edges), minlength=576) / len(mod)
        d = hp - hq
        pos, neg = d > 1e-14, d < -1e-14
        c = [0.5 * (e[1:] + e[:-1]) for e in edges]
        gx, gy = np.meshgrid(*c, indexing="ij")
        centres = np.column_stack([gx.ravel(), gy.ravel()])
        p, q = d[pos], -d[neg] * d[pos].sum() / -d[neg].sum()
        cost = cdist(centres[pos], centres[neg])
        t0 = time.perf_counter()
        a = M.transport_cost(p, centres[pos], q, centres[neg])
        ours.append(time.perf_counter() - t0)
        m, n = cost.shape
        t0 = time.perf_counter()
        r_ = np.concatenate([np.repeat(np.arange(m), n), m + np.tile(np.arange(n), m)])
        a_eq = coo_matrix((np.ones(2 * m * n), (r_, np.tile(np.arange(m * n), 2))), shape=(m + n, m * n)).tocsr()
        b = linprog(cost.ravel(), A_eq=a_eq[:-1], b_eq=np.concatenate([p, q])[:-1], bounds=(0, None),
                    method="highs").fun
        theirs.append(time.perf_counter() - t0)
        rows.append(abs(a - b) / b)
        sizes.append([m, n])
    return {"benchmark": "bench_score --w1", "repeats": repeats,
            "cells_surplus_deficit_median": np.median(sizes, 0).tolist(),
            "raycg_pot_network_simplex_s_median": round(float(np.median(ours)), 5),
            "reference_scipy_highs_lp_s_median": round(float(np.median(theirs)), 5),
            "speedup": round(float(np.median(theirs) / np.median(ours)), 1),
            "max_relative_difference": float(max(rows)), "python": sys.version.split()[0]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--w1", action="store_true", help="time only the W1 transport: POT vs scipy HiGHS")
    ap.add_argument("--repeats", type=int, default=20, help="--w1: histograms pairs timed")
    ap.add_argument("--model-frames", type=int, default=1_000_000)
    ap.add_argument("--replicas", type=int, default=1000)
    ap.add_argument("--reference-frames", type=int, default=1_000_000)
    ap.add_argument("--reference-trajectories", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="also write the JSON here")
    args = ap.parse_args(argv)
    if args.w1:
        out = w1_side_by_side(args.repeats, args.seed)
        print(json.dumps(out, indent=2))
        return out

    from raycg._testing.datasets import make_dataset, two_state_coords, two_state_states
    from raycg.cv import fit_reference_tica
    from raycg.evaluate import EvalConfig, ModelSamples, prepare_reference, score

    rng = np.random.default_rng(args.seed)
    t_ref = args.reference_trajectories
    ref_len = args.reference_frames // t_ref
    states = two_state_states(t_ref, ref_len, 0.005, rng)
    reference = make_dataset(two_state_coords(states, 0.4, rng), [ref_len] * t_ref, dt_frame_ps=100.0,
                             temperature_K=350.0, name="bench-reference")
    r = args.replicas
    length = args.model_frames // r
    mstates = two_state_states(r, length, 0.002, rng)
    model = two_state_coords(mstates, 0.45, rng).reshape(r, length, 10, 3)
    samples = ModelSamples.from_arrays(list(model), dt_frame_ps=1.0)
    base_rss = rss_mb()

    t0 = time.perf_counter()
    tica = fit_reference_tica(reference, lag=20)
    t_tica = time.perf_counter() - t0
    cfg = EvalConfig()
    before_prep = current_mb()
    can_reset = reset_peak()
    t0 = time.perf_counter()
    ref = prepare_reference(reference, tica, cfg)
    t_prep = time.perf_counter() - t0
    prep_peak = hwm_mb() - before_prep if can_reset else float("nan")
    before_score = current_mb()
    reset_peak()
    t0 = time.perf_counter()
    result = score(reference, tica, samples, cfg, reference_summary=ref)
    t_score = time.perf_counter() - t0
    score_peak = hwm_mb() - before_score if can_reset else float("nan")
    t0 = time.perf_counter()
    score(reference, tica, samples, cfg)
    t_score_cold = time.perf_counter() - t0
    out = {
        "benchmark": "bench_score",
        "model_frames_input": int(r * length),
        "model_frames_scored": int(result.metrics["n_frames_model"]),
        "replicas": r,
        "reference_frames": reference.n_frames,
        "n_beads": 10,
        "fit_tica_s": round(t_tica, 2),
        "prepare_reference_s": round(t_prep, 2),
        "score_s": round(t_score, 2),
        "score_including_reference_s": round(t_score_cold, 2),
        "score_stage_s": result.info["timings_s"],
        "target_s": 30.0,
        "meets_target": bool(t_score_cold < 30.0),
        "peak_rss_mb": round(rss_mb(), 1),
        "rss_after_data_mb": round(base_rss, 1),
        "prepare_reference_peak_extra_mb": round(prep_peak, 1),
        "score_peak_extra_mb": round(score_peak, 1),
        "input_data_mb": round((reference.coords.nbytes + model.nbytes) / 2**20, 1),
        "w1_grid_bins": cfg.w1_bins,
        "rmsd_frames": f"all (rmsd_max_frames={cfg.rmsd_max_frames})",
        "metrics_sample": {k: round(result.metrics[k], 4) for k in
                           ("kl_ref_model", "kl_model_ref", "js_divergence", "w1", "fes_mse", "coverage",
                            "folded_fraction_model", "transitions_per_replica_mean")},
        "python": sys.version.split()[0],
    }
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        from raycg.utils.io import atomic_write_text

        atomic_write_text(args.out, text + "\n")
    return out


if __name__ == "__main__":
    main()
