"""Calibration of the verdict under simulated null studies: does every "significant", "equivalent"
and printed interval keep its stated error rate at n = 3, 5, 10 seeds without normality?

Per cell (distribution × seeds × weights) ``--reps`` null studies go through the public functions
analyze_study itself uses (sign-flip p, Holm via ``primary_decisions``, ``signflip_interval``,
``signflip_tost``), and the old paired-t rule on the same draws. Distributions of the trial values
(a seed effect N(0, 0.7) shared by the weights of a seed, plus per-trial noise):

- ``normal``: N(0, 1) noise; ``t3``: Student t (3 df) noise; ``lognormal``: exp(seed + N(0, 1) − 1),
  so group means are skewed (the paired differences stay symmetric: trials are exchangeable);
- ``trapped``: normal noise, and each non-baseline trial is "trapped" with probability p = 0.2,
  adding s·(1 − p) (else −s·p): equal means, skewed differences d = N(0, √2) + s·Bernoulli(p) − p·s,
  s = 4.5 (the paired t's size at n = 5 is then about 7%). Here the sign-flip null (symmetric d) is
  false while the mean difference is 0: no test of the mean is exact at small n (Bahadur–Savage).

Reported with Monte Carlo SE: the rate of studies with any "significant" line (sign-flip and paired
t rules), the coverage of every printed paired-difference interval (sign-flip 1 − α/m, infinite ones
cover; Student t 95%), the TOST size at true mean differences ±margin (margin = SD(d)/2) and, for
``--check`` studies per cell, whether analyze_study's statuses equal the vectorised rule.

    python benchmarks/stats_calibration.py [--reps 2000] [--check 200] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

from raycg.stats import (
    STATUSES,
    analyze_study,
    paired_t,
    primary_decisions,
    signflip_interval,
    signflip_p,
    signflip_tost,
    t_interval,
    tost_paired,
)

ALPHA = 0.05
DISTS = ("normal", "lognormal", "t3", "trapped")
SEEDS = (3, 5, 10)
WEIGHTS = {2: (0.0, 1.0), 5: (0.0, 0.1, 1.0, 10.0, 100.0)}
TRAP_P, TRAP_S = 0.2, 4.5
METRIC = "kl_ref_model"


def trial_values(dist: str, reps: int, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, k weights, n seeds) of one metric with no effect of the weight on its mean."""
    seed = rng.normal(0.0, 0.7, (reps, 1, n))
    if dist == "t3":
        return seed + rng.standard_t(3, (reps, k, n))
    x = seed + rng.normal(0.0, 1.0, (reps, k, n))
    if dist == "lognormal":
        return np.exp(x - 1.0)
    if dist == "trapped":
        x[:, 1:] += TRAP_S * ((rng.random((reps, k - 1, n)) < TRAP_P) - TRAP_P)
    return x


def diff_sd(dist: str) -> float:
    """SD of one paired difference (seeded, 200000 draws): the scale of the equivalence margin."""
    x = trial_values(dist, 200_000, 2, 1, np.random.default_rng(0))
    return float(np.std(x[:, 1, 0] - x[:, 0, 0]))


def rate(hits: np.ndarray) -> dict[str, float]:
    r = float(np.mean(hits))
    return {"rate": round(r, 4), "se": round(float(np.sqrt(r * (1 - r) / np.size(hits))), 4)}


def coverage(lo: np.ndarray, hi: np.ndarray, truth: float = 0.0) -> dict[str, object]:
    """Per-interval and simultaneous (all weights of a study) coverage; NaN bounds are (−∞, ∞)."""
    cov = ~np.isfinite(lo) | ((lo <= truth) & (truth <= hi))
    return {"each": rate(cov), "all_weights": rate(cov.all(-1)), "infinite": round(float(np.mean(~np.isfinite(lo))), 4)}


def frame(x: np.ndarray, weights: tuple[float, ...]) -> pd.DataFrame:
    """One study (weights, seeds) as a trial table."""
    return pd.DataFrame([{"energy_weight": w, "seed": s, METRIC: x[i, s]} for i, w in enumerate(weights)
                         for s in range(x.shape[1])])


def decisions(d: np.ndarray, margin: float) -> dict[str, np.ndarray]:
    """The verdict's vectorised rule (sign-flip) and the old paired-t rule on differences (reps, m, n)."""
    better = d.mean(-1) < 0
    zero = np.zeros_like(d)
    return {"signflip": primary_decisions(signflip_p(d), better, ALPHA, signflip_tost(d, margin)["p"]),
            "paired_t": primary_decisions(paired_t(zero, d)["p"], better, ALPHA, tost_paired(zero, d, margin)["p"])}


def cell(dist: str, n: int, k: int, reps: int, check: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    m, margin = k - 1, 0.5 * diff_sd(dist)
    x = trial_values(dist, reps, k, n, rng)
    d = x[:, 1:] - x[:, :1]
    dec = decisions(d, margin)
    lo, hi = signflip_interval(d, ALPHA / m)
    tlo, thi = t_interval(d, 0.95)
    shift = margin * np.where(np.arange(m) % 2 == 0, 1.0, -1.0)[:, None]  # true Δ = +margin, −margin, ...
    at_margin = decisions(d + shift, margin)
    out = {"dist": dist, "n": n, "weights": k, "comparisons": m, "reps": reps, "margin": round(margin, 4),
           "any_significant_signflip": rate((dec["signflip"]["code"] <= 1).any(-1)),
           "any_significant_paired_t": rate((dec["paired_t"]["code"] <= 1).any(-1)),
           "signflip_ci_level": round(1 - ALPHA / m, 4), "signflip_ci_coverage": coverage(lo, hi),
           "t_ci95_coverage": coverage(tlo, thi),
           "tost_size_signflip": rate((at_margin["signflip"]["tost_p_holm"] <= ALPHA).any(-1)),
           "tost_size_paired_t": rate((at_margin["paired_t"]["tost_p_holm"] <= ALPHA).any(-1))}
    mismatches = 0
    for i in range(min(check, reps)):
        st = analyze_study(frame(x[i], WEIGHTS[k]), metrics=[METRIC], primary=METRIC, equivalence_margin=margin)
        mismatches += [v.status for v in st.verdict] != [STATUSES[c] for c in dec["signflip"]["code"][i]]
    out["crosscheck"] = {"studies": min(check, reps), "status_mismatches": mismatches}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=2000, help="null studies per cell")
    ap.add_argument("--check", type=int, default=200, help="studies per cell re-analysed by analyze_study")
    ap.add_argument("--workers", type=int, default=2, help="processes (one cell each at a time)")
    args = ap.parse_args(argv)
    t0 = time.time()
    cells = [(dist, n, k) for dist in DISTS for n in SEEDS for k in WEIGHTS]
    jobs = [(dist, n, k, args.reps, args.check, 1000 + i) for i, (dist, n, k) in enumerate(cells)]
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(pool.map(cell, *zip(*jobs, strict=True)))
    print(json.dumps({"alpha": ALPHA, "trap": {"p": TRAP_P, "s": TRAP_S}, "cells": results,
                      "elapsed_s": round(time.time() - t0, 1)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
