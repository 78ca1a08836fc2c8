"""Training: force matching plus TICA free-energy matching (published and fes-corrected targets),
trainer with checkpoints and exact resume."""

from raycg.train.config import LossConfig, OptimConfig, TicaSettings, TrainConfig, TrainRunConfig
from raycg.train.correction import (
    CorrectionInputs,
    FesCorrection,
    continue_correction,
    corrected_targets,
    fes_correction,
    marginal_js_divergence,
)
from raycg.train.losses import energy_loss, force_loss, total_loss
from raycg.train.targets import EnergyTargets, compute_energy_targets, tica_free_energy
from raycg.train.trainer import TrainingDiverged, TrainResult, check_divergence, train

__all__ = ["CorrectionInputs", "EnergyTargets", "FesCorrection", "LossConfig", "OptimConfig", "TicaSettings",
           "TrainConfig", "TrainResult", "TrainRunConfig", "TrainingDiverged", "check_divergence",
           "compute_energy_targets", "continue_correction", "corrected_targets", "energy_loss", "fes_correction",
           "force_loss", "marginal_js_divergence", "tica_free_energy", "total_loss", "train"]
