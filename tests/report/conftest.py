"""A synthetic study directory: 3 energy weights x 3 seeds (ok), one failed and one running trial."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

KT = 0.0019872041 * 300.0  # kcal/mol
WEIGHTS = (0.0, 1.0, 10.0)
SEEDS = (0, 1, 2)
NBINS = 24


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


def make_study(root: Path, *, failed: bool = True, running: bool = True) -> Path:
    """Write ``root/trials/<id>/{result.json, scores.json, fes.npz, train_history.csv}``."""
    rng = np.random.default_rng(12345)
    edges, x, y = _grid()
    hist_ref = rng.multinomial(200_000, _density(x, y, 0.0).ravel()).reshape(x.shape).astype(float)
    fes_ref = _fes(hist_ref)
    _write_json(root / "study.json", {"name": "synthetic", "spec": {}})
    _write_json(root / "prepared" / "prepared.json", {"data_hash": "sha256:feedbeef"})
    for w in WEIGHTS:
        trap = 0.8 * w / (w + 2.0)
        for s in SEEDS:
            tid = f"w{w:g}_s{s}"
            d = root / "trials" / tid
            hist = rng.multinomial(20_000, _density(x, y, trap).ravel()).reshape(x.shape).astype(float)
            metrics = {
                "kl_ref_model": 0.05 + 0.5 * trap + rng.normal(0, 0.02),
                "js": 0.02 + 0.1 * trap + rng.normal(0, 0.01),
                "w1": 0.2 + 0.3 * trap + rng.normal(0, 0.05),
                "fes_mse": 0.3 + 2.0 * trap + rng.normal(0, 0.2),
                "coverage": 0.95 - 0.3 * trap + rng.normal(0, 0.03),
                "kl_model_ref": 0.04 + 0.2 * trap + rng.normal(0, 0.02),
                "transitions_per_replica_mean": 30.0 * (1 - trap) + rng.normal(0, 2.0),
                "deepest_well_excess": 0.35 * trap + rng.normal(0, 0.02),
                "blown_up_fraction": 0.0 if s else 0.125,
                "n_replicas_total": 8.0,  # constant: not tested
                "folded_fraction_reference": 0.55,  # constant: not tested
            }
            _write_json(d / "result.json", {
                "trial_id": tid, "status": "ok", "error": None,
                "config": {"energy_weight": w, "seed": s, "model.hidden": 64, "pipeline": "cgschnet"},
                "metrics": metrics, "runtime_s": 100.0 + 10 * s, "stage_times": {"train": 60.0, "simulate": 30.0},
                "provenance": _provenance(s)})
            _write_json(d / "scores.json", {"metrics": metrics})
            np.savez(d / "fes.npz", edges_x=edges, edges_y=edges, fes_reference=fes_ref, fes_model=_fes(hist),
                     hist_reference=hist_ref, hist_model=hist,
                     transitions_per_replica=rng.poisson(30.0 * (1 - trap), size=8).astype(float),
                     deepest_well_population_model=np.array(0.6 + 0.35 * trap + rng.normal(0, 0.02)),
                     deepest_well_population_reference=np.array(0.6))
            ep = np.arange(1, 11)
            pd.DataFrame({"epoch": ep, "train_force_loss": (5 + s) * np.exp(-ep / 4) + 1 + 0.05 * w,
                          "val_force_loss": (5.2 + s) * np.exp(-ep / 4) + 1.1 + 0.05 * w,
                          "train_energy_loss": (0.1 * w) * np.exp(-ep / 3), "val_energy_loss": (0.12 * w) * np.exp(-ep / 3),
                          "lr": 1e-3, "frames_per_s": 5000.0}).to_csv(d / "train_history.csv", index=False)
    if failed:
        d = root / "trials" / "w1_s3"
        _write_json(d / "result.json", {
            "trial_id": "w1_s3", "status": "failed", "error": "simulate: all 8 replicas blew up by step 1200",
            "failed_phase": "simulate", "config": {"energy_weight": 1.0, "seed": 3, "model.hidden": 64},
            "metrics": {"train_force_loss": 9.0}, "runtime_s": 42.0, "stage_times": {"train": 40.0},
            "provenance": _provenance(3)})
    if running:
        d = root / "trials" / "w10_s4"
        _write_json(d / "config.json", {"trial_id": "w10_s4", "grid_point": {"energy_weight": 10.0, "seed": 4},
                                        "config": {}})
        _write_json(d / "status.json", {"trial_id": "w10_s4", "phase": "train", "progress": 0.3})
    return root


@pytest.fixture
def study_factory():
    """``make_study`` itself, for tests that need their own variant."""
    return make_study


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    return make_study(tmp_path_factory.mktemp("study"))
