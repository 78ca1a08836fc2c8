"""Calibration of the group-sequential design by simulation through the public API: family-wise
error under no effect, the size of "equivalent" at a true difference equal to the margin, power and
expected trials at the spec's target effect against the fixed design of the same largest size,
expected trials at no effect with futility stopping, and the coverage of the reported repeated
confidence interval.

Each simulated study draws trial values for k weights × N seeds (a seed effect shared by the
weights of a seed, so arms are correlated within a seed: N(0, 0.7) plus per-trial noise;
``normal``: N(0, 1) noise; ``lognormal``: exp(seed + N(0, 1) − 1), skewed trial values), shifts the
non-baseline weights by the scenario's true difference Δ (0; ±margin; the target d_z × SD of a
paired difference) and runs the looks with the functions the planner uses (raycg.stats.sequential:
``look_tests``, ``level_table``, ``sequential_decisions``, ``repeated_interval``). The fixed design
is the same test on all N seeds, Holm across weights (raycg.stats.primary_decisions). For
``--check`` studies per cell the planner itself (raycg.study.sequential.plan_next_look, fed one
look of trials at a time as the driver would) must take the same decisions.

python benchmarks/sequential_calibration.py [--reps 2000] [--check 50] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from raycg.stats import primary_decisions
from raycg.stats import sequential as sq

ALPHA = 0.05
METRIC = "js_divergence"  # lower is better; the values are synthetic
#: designs: name -> (decision test, looks, spending, futility, target d_z, margin in SDs of a paired
#: difference). The target d_z 2 is the quickstart spec's; the margin is half the target difference.
#: Looks may depend on the number of weights k (the exact test's smallest p must reach α/(k − 1)).
DESIGNS = {
    "sign-flip OBF [8,10,12] (k=2), [9,10,12] (k=5)": (
        "sign-flip",
        {2: (8, 10, 12), 5: (9, 10, 12)},
        "obrien-fleming",
        "equivalence",
        2.0,
        1.0,
    ),
    "paired-t OBF [3,5,8,12]": (
        "paired-t",
        (3, 5, 8, 12),
        "obrien-fleming",
        "equivalence",
        2.0,
        1.0,
    ),
    "paired-t Pocock [3,5,8,12]": ("paired-t", (3, 5, 8, 12), "pocock", "equivalence", 2.0, 1.0),
    "paired-t OBF [3,5,8,12] CP": (
        "paired-t",
        (3, 5, 8, 12),
        "obrien-fleming",
        "conditional-power",
        2.0,
        1.0,
    ),
    "paired-t OBF [3,5,8,12] d_z 1": (
        "paired-t",
        (3, 5, 8, 12),
        "obrien-fleming",
        "equivalence",
        1.0,
        0.5,
    ),
}
DISTS = ("normal", "lognormal")
WEIGHTS = {2: (0.0, 1.0), 5: (0.0, 0.1, 1.0, 10.0, 100.0)}
SCENARIOS = ("null", "margin", "target")


def trial_values(dist: str, reps: int, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, k weights, n seeds) with no effect of the weight: a shared seed effect plus noise."""
    seed = rng.normal(0.0, 0.7, (reps, 1, n))
    x = seed + rng.normal(0.0, 1.0, (reps, k, n))
    return np.exp(x - 1.0) if dist == "lognormal" else x


def diff_sd(dist: str) -> float:
    """SD of one paired difference (seeded, 200,000 draws): the scale of Δ and of the margin."""
    x = trial_values(dist, 200_000, 2, 1, np.random.default_rng(0))
    return float(np.std(x[:, 1, 0] - x[:, 0, 0]))


def rate(hits: np.ndarray) -> dict[str, float]:
    r = float(np.mean(hits))
    return {"rate": round(r, 4), "se": round(math.sqrt(r * (1 - r) / np.size(hits)), 4)}


def mean_se(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=float)
    return {
        "mean": round(float(x.mean()), 3),
        "se": round(float(x.std(ddof=1) / math.sqrt(x.size)), 3),
    }


def run_design(
    d: np.ndarray,
    looks: tuple[int, ...],
    test: str,
    spending: str,
    futility: str,
    margin: float,
    target_dz: float,
) -> dict[str, np.ndarray]:
    """The sequential decisions of studies of differences ``d`` (reps, m, N) and each weight's
    repeated interval at the look it stopped at."""
    reps, m, n_max = d.shape
    k_looks = len(looks)
    res = [
        sq.look_tests(d[..., :n], test, margin if futility == "equivalence" else None)
        for n in looks
    ]
    p = np.stack([r["p"] for r in res], axis=-2)
    better = np.stack([r["mean"] < 0 for r in res], axis=-2)
    eff = sq.level_table(np.array(looks), n_max, ALPHA, spending, 2, m)
    kw: dict[str, object] = {}
    if futility == "equivalence":
        kw = {
            "tost_p": np.stack([r["tost_p"] for r in res], axis=-2),
            "eq_levels": sq.level_table(np.array(looks), n_max, ALPHA, spending, 1, m),
        }
    elif futility == "conditional-power":
        b = sq.boundaries([n / n_max for n in looks], ALPHA / m, spending, 2)
        cp = np.stack(
            [
                sq.conditional_power(
                    sq.p_to_z(p[..., k, :]), looks[k] / n_max, b.z[-1], target_dz * math.sqrt(n_max)
                )
                for k in range(k_looks)
            ],
            axis=-2,
        )
        kw = {"cp": cp, "futility_power": 0.1}
    st = sq.sequential_decisions(p, better, eff, **kw)
    ci_b = sq.boundaries([n / n_max for n in looks], ALPHA / m, spending, 2)
    lo, hi = np.full((reps, m), np.nan), np.full((reps, m), np.nan)
    for k, n in enumerate(looks):
        rows, cols = np.nonzero(st["look"] == k)
        if rows.size:
            lo[rows, cols], hi[rows, cols] = sq.repeated_interval(
                d[rows, cols, :n], ci_b.nominal[k], test
            )
    seeds = np.array(looks)[st["look"]]
    return {
        **st,
        "ci_low": lo,
        "ci_high": hi,
        "seeds": seeds,
        "trials": seeds.sum(-1) + seeds.max(-1),
    }


def fixed_design(d: np.ndarray, test: str) -> np.ndarray:
    """Status codes of the fixed design on all N seeds (same test, Holm across weights)."""
    r = sq.look_tests(d, test)
    return primary_decisions(r["p"], r["mean"] < 0, ALPHA)["code"]


def covers(lo: np.ndarray, hi: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """NaN bounds are (−∞, ∞)."""
    return ~np.isfinite(lo) | ((lo <= truth) & (truth <= hi))


def cell(
    design: str, dist: str, k: int, scenario: str, reps: int, check: int, seed: int
) -> dict[str, object]:
    test, looks, spending, futility, target_dz, margin_sd = DESIGNS[design]
    looks = looks[k] if isinstance(looks, dict) else looks
    rng = np.random.default_rng(seed)
    m, n_max, sd = k - 1, looks[-1], diff_sd(dist)
    margin = margin_sd * sd
    delta = {
        "null": np.zeros(m),
        "target": np.full(m, -target_dz * sd),
        "margin": margin * np.where(np.arange(m) % 2 == 0, 1.0, -1.0),
    }[scenario]
    x = trial_values(dist, reps, k, n_max, rng)
    x[:, 1:] += delta[:, None]
    d = x[:, 1:] - x[:, :1]
    out = run_design(d, looks, test, spending, futility, margin, target_dz)
    fixed = fixed_design(d, test)
    trials_fixed = k * n_max
    sig, fsig = out["status"] <= 1, fixed <= 1
    res: dict[str, object] = {
        "design": design,
        "looks": list(looks),
        "dist": dist,
        "weights": k,
        "scenario": scenario,
        "reps": reps,
        "true_delta_sd": round(float(delta[0] / sd), 3) if m else 0.0,
        "margin_sd": margin_sd,
        "any_significant": rate(sig.any(-1)),
        "fixed_any_significant": rate(fsig.any(-1)),
        "any_equivalent": rate((out["status"] == 2).any(-1)),
        "expected_trials": mean_se(out["trials"]),
        "fixed_trials": trials_fixed,
        "trials_fraction": round(float(out["trials"].mean() / trials_fixed), 3),
        "stop_reasons": {
            name: round(float(np.mean(out["reason"] == i)), 4) for i, name in enumerate(sq.REASONS)
        },
    }
    if scenario == "target":
        res["power"] = rate(sig & (out["status"] == 0))
        res["fixed_power"] = rate(fsig & (fixed == 0))
    if scenario in ("null", "target"):
        cov = covers(out["ci_low"], out["ci_high"], delta[None, :])
        res["ci_coverage"] = {
            "each": rate(cov),
            "all_weights": rate(cov.all(-1)),
            "infinite": round(float(np.mean(~np.isfinite(out["ci_low"]))), 4),
        }
    res["crosscheck"] = crosscheck(x[:check], d[:check], out, design, WEIGHTS[k], margin)
    return res


def crosscheck(
    x: np.ndarray,
    d: np.ndarray,
    out: dict[str, np.ndarray],
    design: str,
    weights: tuple[float, ...],
    margin: float,
) -> dict[str, int]:
    """Run the planner on the first studies look by look; count studies whose decisions differ."""
    from raycg.study.sequential import plan_next_look
    from raycg.study.spec import spec_from_any

    test, looks, spending, futility, target_dz, _ = DESIGNS[design]
    looks = looks[len(weights)] if isinstance(looks, dict) else looks
    spec = spec_from_any(
        {
            "name": "calibration",
            "pipeline": "toy",
            "grid": {"energy_weights": list(weights), "seeds": looks[-1]},
            "analysis": {
                "primary_metric": METRIC,
                "secondary_metrics": [],
                "design": "sequential",
                "looks": list(looks),
                "decision_test": test,
                "spending": spending,
                "futility": futility,
                "equivalence_margin": margin,
                "target_effect_size": target_dz,
                "alpha": ALPHA,
            },
        }
    )
    mismatches = 0
    for i in range(x.shape[0]):
        rows: list[dict[str, object]] = []
        done: set[tuple[float, int]] = set()
        while True:
            plan = plan_next_look(
                spec,
                pd.DataFrame(
                    rows, columns=["status", "energy_weight", "seed", METRIC, "converged"]
                ),
            )
            if plan.finished:
                break
            for w, seeds in plan.seeds_to_run.items():
                j = weights.index(w)
                for s in seeds:
                    if (w, s) not in done:
                        done.add((w, s))
                        rows.append(
                            {
                                "status": "ok",
                                "energy_weight": w,
                                "seed": s,
                                METRIC: x[i, j, s],
                                "converged": True,
                            }
                        )
        got = [(dec.look - 1, dec.status) for dec in plan.decisions.values()]
        want = [
            (
                int(out["look"][i, j]),
                (
                    "significant improvement",
                    "significant worsening",
                    "equivalent",
                    "no significant difference",
                    "inconclusive",
                )[int(out["status"][i, j])],
            )
            for j in range(len(weights) - 1)
        ]
        mismatches += got != want
    return {"studies": int(x.shape[0]), "mismatches": mismatches}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=2000, help="simulated sequential studies per cell")
    ap.add_argument(
        "--check", type=int, default=30, help="studies per cell re-run through the planner"
    )
    ap.add_argument("--workers", type=int, default=2, help="processes (one cell each at a time)")
    ap.add_argument("--designs", nargs="*", default=list(DESIGNS), help="which of DESIGNS to run")
    args = ap.parse_args(argv)
    t0 = time.time()
    cells = [
        (des, dist, k, sc)
        for des in args.designs
        for dist in DISTS
        for k in WEIGHTS
        for sc in SCENARIOS
    ]
    jobs = [(*c, args.reps, args.check, 2000 + i) for i, c in enumerate(cells)]
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(pool.map(cell, *zip(*jobs, strict=True)))
    keys = ("decision_test", "looks", "spending", "futility", "target_dz", "margin_sd")
    designs = {
        name: {
            k: ({str(n): lk for n, lk in v.items()} if isinstance(v, dict) else v)
            for k, v in zip(keys, spec, strict=True)
        }
        for name, spec in DESIGNS.items()
        if name in args.designs
    }
    print(
        json.dumps(
            {
                "alpha": ALPHA,
                "designs": designs,
                "cells": results,
                "elapsed_s": round(time.time() - t0, 1),
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
