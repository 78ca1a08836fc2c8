"""A synthetic study directory (no Ray, no training): 3 energy weights x 4 seeds, paired by seed.

w1_s3 failed (its baseline partner's pair is dropped), w10_s8 is still running. Every ok trial has
``metrics`` and ``convergence`` in result.json; ``spec.yaml`` has an ``analysis:`` section and
``prepared/noise_floor.json`` holds the floor (both optional).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

KT = 0.0019872041 * 300.0  # kcal/mol
WEIGHTS = (0.0, 1.0, 10.0)
SEEDS = (0, 1, 2, 3, 4, 5, 6, 7)
NBINS = 24
FLOOR = {"kl_ref_model": (0.04, 0.01), "js_divergence": (0.015, 0.004), "w1": (0.18, 0.03),
         "fes_mse_aligned": (0.25, 0.08)}


def _grid():
    edges = np.linspace(-3.0, 3.0, NBINS + 1)
    c = 0.5 * (edges[1:] + edges[:-1])
    x, y = np.meshgrid(c, c, indexing="ij")
    return edges, x, y


def _density(x, y, trap: float) -> np.ndarray:
    """Two wells; ``trap`` in [0, 1) moves population into the deeper one and narrows it."""
    deep = np.exp(-((x + 1.2) ** 2 + (y + 0.8) ** 2) / (2 * (0.6 - 0.3 * trap) ** 2))
    shallow = np.exp(-((x - 1.3) ** 2 + (y - 1.0) ** 2) / (2 * 0.55**2))
    p = (0.6 + 0.35 * trap) * deep / deep.sum() + (0.4 - 0.35 * trap) * shallow / shallow.sum()
    return p / p.sum()


def _fes(hist: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        f = -KT * np.log(hist / hist.sum())
    f[~np.isfinite(f)] = np.nan
    return f - np.nanmin(f)


def _provenance(seed: int) -> dict:
    return {"raycg_version": "0.1.0", "git_commit": "abc1234", "data_hash": "sha256:feedbeef",
            "packages": {"numpy": np.__version__, "pandas": pd.__version__, "torch": "2.5.0"}, "seed": seed}


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1))


def _metrics(trap: float, seed_effect: float, s: int, rng) -> dict:
    kl = 0.05 + 0.5 * trap + seed_effect + rng.normal(0, 0.01)
    return {
        "kl_ref_model": kl,
        "kl_ref_model_eps8": 1.6 * kl, "kl_ref_model_eps4": 0.35 * kl, "kl_ref_model_eps3": 0.05 * kl,
        "missed_reference_mass": 0.03 + 0.6 * trap + 0.01 * s,
        "js_divergence": 0.02 + 0.1 * trap + rng.normal(0, 0.01),
        "w1": 0.2 + 0.3 * trap + rng.normal(0, 0.05),
        "fes_mse_aligned": 0.3 + 2.0 * trap + rng.normal(0, 0.2),
        "coverage": 0.95 - 0.3 * trap + rng.normal(0, 0.03),
        "kl_model_ref": 0.04 + 0.2 * trap + rng.normal(0, 0.02),
        "transitions_per_replica_mean": 30.0 * (1 - trap) + rng.normal(0, 2.0),
        "blown_up_fraction": 0.0 if s else 0.125,
        "replica_time_lost_fraction": 0.0 if s else 0.1,
        "n_replicas_total": 8.0,
        "final_val_force_loss": 25.0 + 2.0 * trap,  # w_E = 0: 25.0, 3.8% below the prior-only 26.0
        "train_prior_only_val_force_loss": 26.0,
        "final_val_energy_loss": 10.0 - 5.0 * trap,
        "train_best_epoch": 9.0,
        "train_epochs": 10.0,
    }


ONE_STATE_NOTE = ("one-state model: pooled folded fraction 0.000; all 5 replicas started folded left that state "
                  "(within burn-in) and none returned in 900 ps of aggregate sampling after burn-in")


def _convergence(converged: bool | None, s: int) -> dict | None:
    if converged is None:
        return None
    if converged:
        notes = [ONE_STATE_NOTE] if s == 0 else []
        return {"converged": True, "reasons": [], "notes": notes,
                "diagnostics": {"run_longer_factor": 1.0, "time_over_timescale": 12.0, "crossings_per_replica": 6.0}}
    ratio = 0.2 + 0.05 * s
    return {"converged": False, "reasons": [
        f"replicas ran {60 * ratio:.4g} ps after burn-in (median), {ratio:.2g}× the reference's slowest implied "
        f"timescale (60 ps); needs ≥ 10× (run {10 / ratio:.2g}× longer)",
        "0.3 folding/unfolding transitions per replica (needs ≥ 2): the folded population still reflects the starts"],
        "diagnostics": {"run_longer_factor": 10 / ratio, "time_over_timescale": ratio, "crossings_per_replica": 0.3}}


def _trial(root: Path, w: float, s: int, rng, edges, x, y, hist_ref, fes_ref, converged: bool | None,
           seed_effect: float) -> None:
    trap = 0.8 * w / (w + 2.0)
    tid = f"w{w:g}_s{s}"
    d = root / "trials" / tid
    hist = rng.multinomial(20_000, _density(x, y, trap).ravel()).reshape(x.shape).astype(float)
    metrics = _metrics(trap, seed_effect, s, rng)
    metrics["kl_ref_model_ci_low"], metrics["kl_ref_model_ci_high"] = 0.8 * metrics["kl_ref_model"], \
        1.25 * metrics["kl_ref_model"]
    result = {"trial_id": tid, "status": "ok", "error": None,
              "config": {"energy_weight": w, "seed": s, "model.hidden": 64, "pipeline": "cgschnet"},
              "metrics": metrics, "runtime_s": 100.0 + 10 * s, "stage_times": {"train": 60.0, "simulate": 30.0},
              "provenance": _provenance(s)}
    conv = _convergence(converged, s)
    if conv is not None:
        result["convergence"] = conv
        metrics["converged"] = float(conv["converged"])
    _write_json(d / "result.json", result)
    np.savez(d / "fes.npz", edges_x=edges, edges_y=edges, fes_reference=fes_ref, fes_model=_fes(hist),
             hist_reference=hist_ref, hist_model=hist,
             transitions_per_replica=rng.poisson(30.0 * (1 - trap), size=8).astype(float),
             deepest_well_population_model=np.array(0.6 + 0.35 * trap + rng.normal(0, 0.02)),
             deepest_well_population_reference=np.array(0.6))
    ep = np.arange(1, 11)
    pd.DataFrame({"epoch": ep, "train_force_loss": (5 + s) * np.exp(-ep / 4) + 1 + 0.05 * w,
                  "val_force_loss": (5.2 + s) * np.exp(-ep / 4) + 1.1 + 0.05 * w,
                  "train_energy_loss": (0.1 * w) * np.exp(-ep / 3), "val_energy_loss": (0.12 * w) * np.exp(-ep / 3),
                  "lr": 1e-3}).to_csv(d / "train_history.csv", index=False)


def make_study(root: Path, *, converged: bool | None = True, floor: bool = True, analysis: dict | None = None,
               failed: bool = True, running: bool = True, weights: tuple[float, ...] = WEIGHTS) -> Path:
    """Write the study; ``converged=None``: no convergence diagnostics; ``analysis``: the spec section
    (default: primary kl_ref_model, three secondary metrics, margin 0.05)."""
    rng = np.random.default_rng(12345)
    edges, x, y = _grid()
    hist_ref = rng.multinomial(200_000, _density(x, y, 0.0).ravel()).reshape(x.shape).astype(float)
    fes_ref = _fes(hist_ref)
    if analysis is None:
        analysis = {"primary_metric": "kl_ref_model", "secondary_metrics": ["js_divergence", "w1", "fes_mse_aligned"],
                    "alpha": 0.05, "equivalence_margin": 0.05, "target_effect_size": 1.0}
    import yaml

    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.yaml").write_text(yaml.safe_dump({"name": "synthetic", "analysis": analysis}, sort_keys=False))
    _write_json(root / "study.json", {"name": "synthetic", "spec": {}})
    _write_json(root / "prepared" / "prepared.json", {"data_hash": "sha256:feedbeef"})
    if floor:
        from raycg.evaluate import FloorStat, NoiseFloor, SamplingProtocol

        NoiseFloor(SamplingProtocol(8, 500, 0.2, "equilibrium"),
                   {m: FloorStat(mu, sd, mu - 2 * sd, mu + 2 * sd, 50) for m, (mu, sd) in FLOOR.items()},
                   n_repeats=50, seed=0, converged_fraction=0.9).save(root / "prepared" / "noise_floor.json")
    seed_effects = rng.uniform(0, 0.25, len(SEEDS))  # shared by all weights of a seed: the reason to pair
    for w in weights:
        for s in SEEDS:
            if failed and (w, s) == (1.0, 3):
                continue
            _trial(root, w, s, rng, edges, x, y, hist_ref, fes_ref, converged, seed_effects[s])
    if failed:
        _write_json(root / "trials" / "w1_s3" / "result.json", {
            "trial_id": "w1_s3", "status": "failed", "error": "simulate: all 8 replicas blew up by step 1200",
            "failed_phase": "simulate", "config": {"energy_weight": 1.0, "seed": 3, "model.hidden": 64},
            "metrics": {"train_force_loss": 9.0}, "runtime_s": 42.0, "stage_times": {"train": 40.0},
            "provenance": _provenance(3)})
    if running:
        d = root / "trials" / "w10_s8"
        _write_json(d / "config.json", {"trial_id": "w10_s8", "grid_point": {"energy_weight": 10.0, "seed": 8},
                                        "config": {}})
        _write_json(d / "status.json", {"trial_id": "w10_s8", "phase": "train", "progress": 0.3})
    return root


@pytest.fixture
def study_factory():
    """``make_study`` itself, for tests that need their own variant."""
    return make_study


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("study"))
