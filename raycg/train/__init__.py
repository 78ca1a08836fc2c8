"""Training: force matching plus TICA free-energy matching (published and fes-corrected targets),
trainer with checkpoints and exact resume."""

from raycg.train.config import LossConfig, OptimConfig, TicaSettings, TrainConfig, TrainRunConfig
from raycg.utils.lazy import lazy_exports

#: imported on first use, so that the configs (a spec's ``training:``) validate without torch
_LAZY = {
    "CorrectionInputs": "raycg.train.correction", "FesCorrection": "raycg.train.correction",
    "continue_correction": "raycg.train.correction", "corrected_targets": "raycg.train.correction",
    "fes_correction": "raycg.train.correction", "marginal_js_divergence": "raycg.train.correction",
    "energy_loss": "raycg.train.losses", "force_loss": "raycg.train.losses",
    "total_loss": "raycg.train.losses", "EnergyTargets": "raycg.train.targets",
    "compute_energy_targets": "raycg.train.targets", "tica_free_energy": "raycg.train.targets",
    "TrainingDiverged": "raycg.train.trainer", "TrainResult": "raycg.train.trainer",
    "check_divergence": "raycg.train.trainer", "train": "raycg.train.trainer",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = ["CorrectionInputs", "EnergyTargets", "FesCorrection", "LossConfig", "OptimConfig", "TicaSettings",
           "TrainConfig", "TrainResult", "TrainRunConfig", "TrainingDiverged", "check_divergence",
           "compute_energy_targets", "continue_correction", "corrected_targets", "energy_loss", "fes_correction",
           "force_loss", "marginal_js_divergence", "tica_free_energy", "total_loss", "train"]
