"""Training: force matching plus TICA free-energy matching, trainer with checkpoints and exact resume."""

from raycg.train.config import LossConfig, OptimConfig, TicaSettings, TrainConfig, TrainRunConfig
from raycg.train.losses import energy_loss, force_loss, total_loss
from raycg.train.targets import EnergyTargets, compute_energy_targets, tica_free_energy
from raycg.train.trainer import TrainingDiverged, TrainResult, check_divergence, train

__all__ = ["EnergyTargets", "LossConfig", "OptimConfig", "TicaSettings", "TrainConfig", "TrainResult",
           "TrainRunConfig", "TrainingDiverged", "check_divergence", "compute_energy_targets", "energy_loss", "force_loss", "tica_free_energy",
           "total_loss", "train"]
