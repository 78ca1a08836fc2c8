"""Thin adapters between the study and the stage APIs (priors, cv, train, sim, evaluate).

Everything the study needs from another package goes through here, so an API change touches one
file. Where a stage lacks something the study needs, the work-around lives here too:

"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from raycg.config import validate_config
from raycg.errors import ConfigError, InputError

SIM_SECTION_EXTRAS = ("replicas", "start_method", "start_seed", "chunks")
EVAL_SECTION_EXTRAS = ("tica_lag", "tica_dim", "metrics")


# --- configs ----------------------------------------------------------------------------------------
def train_config(cfg: dict[str, Any], *, source: str = "spec"):
    from raycg.train import TrainConfig

    return validate_config(TrainConfig, cfg, source=f"{source}: training")


def sim_config(cfg: dict[str, Any], *, source: str = "spec"):
    from raycg.sim import SimulationConfig

    data = {k: v for k, v in cfg.items() if k not in SIM_SECTION_EXTRAS}
    try:
        return SimulationConfig.model_validate(data)
    except Exception as exc:  # noqa: BLE001 - pydantic error -> one line
        from pydantic import ValidationError

        from raycg.config import format_validation_error

        if isinstance(exc, ValidationError):
            raise ConfigError(format_validation_error(exc, source, prefix="simulation")) from None
        raise


def eval_config(cfg: dict[str, Any], *, source: str = "spec"):
    from raycg.evaluate import EvalConfig

    data = {k: v for k, v in cfg.items() if k not in EVAL_SECTION_EXTRAS}
    return validate_config(EvalConfig, data, source=f"{source}: evaluation")


def check_trial_config(cfg: dict[str, Any], *, source: str = "spec") -> None:
    """Validate one trial's resolved config against the stage configs (raises ConfigError)."""
    try:
        train_config(cfg["training"], source=source)
    except ImportError:
        pass
    try:
        sim_config(cfg["simulation"], source=source)
    except ImportError:
        pass
    try:
        eval_config(cfg["evaluation"], source=source)
    except ImportError:
        pass


# --- prepare ----------------------------------------------------------------------------------------
def fit_priors(ds, cfg: Any):
    from raycg.priors import PriorConfig
    from raycg.priors import fit_priors as _fit

    pc = cfg if not isinstance(cfg, dict) else PriorConfig.model_validate(cfg)
    return _fit(ds, pc)


def fit_tica(ds, *, lag: int, dim: int | None):
    from raycg.cv import fit_reference_tica

    return fit_reference_tica(ds, lag=lag, dim=dim)


def tica_summary(tica) -> dict[str, Any]:
    out: dict[str, Any] = {"lag": int(getattr(tica, "lag", 0)), "dim": int(getattr(tica, "dim", 0))}
    try:
        out["timescales_ps"] = [float(t) for t in np.asarray(tica.timescales_ps)[:5]]
    except Exception:  # noqa: BLE001 - summary only
        pass
    return out


def select_starts(ds, n: int, method: str, seed: int) -> np.ndarray:
    from raycg.sim.starts import select_start_frames

    features = None
    if method == "stratified":  # stratify on the leading TICs of a quick TICA
        from raycg.cv import fit_reference_tica

        features = fit_reference_tica(ds, lag=1, dim=2).transform(ds.coords, n_components=2)
    return select_start_frames(ds, n, method=method, seed=seed, features=features)


def max_bond(ds) -> float | None:
    try:
        from raycg.sim.starts import max_bond_from_data

        return float(max_bond_from_data(ds))
    except (ImportError, InputError):
        return None


def precompute_targets(spec, ds, priors, tica, out: Path) -> dict[str, Any] | None:
    """Energy targets of the spec's base loss settings into ``out/targets`` (the trainer's cache format)."""
    try:
        from raycg.train import compute_energy_targets
    except ImportError:
        return None
    tc = spec.training if not isinstance(spec.training, dict) else train_config(spec.training)
    lc = tc.loss
    if lc.energy_target == "none" and max(spec.grid.energy_weights) <= 0:
        return None
    tg = compute_energy_targets(ds, tica, lc.energy_target, n_components=lc.n_components, density=lc.density,
                                bins=lc.bins, bandwidth=lc.kde_bandwidth, cache_dir=out / "targets")
    info = dict(tg.info)
    info.pop("cached", None)
    return {"mode": lc.energy_target, "cache_dir": "targets"}


# --- trial ------------------------------------------------------------------------------------------
_DATASETS: dict[str, Any] = {}


def load_dataset(path: str | Path):
    """Load (memory-mapped) and keep a dataset per process (actors are reused between trials)."""
    from raycg.data import format as dfmt

    key = str(Path(path).resolve())
    if key not in _DATASETS:
        _DATASETS[key] = dfmt.load(path)
    return _DATASETS[key]


def device_for(cfg: dict[str, Any]) -> str:
    gpu = float((cfg.get("resources") or {}).get("gpu", 0) or 0)
    if gpu > 0:
        try:
            import torch

            if torch.cuda.is_available():
                return "cuda"
        except ImportError:
            pass
    return "cpu"


def load_model(path: Path, device: str):
    from raycg.model.io import load_model as _load

    return _load(path, device=device)
