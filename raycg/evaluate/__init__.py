"""Free-energy scoring of model trajectories against the reference TICA (see METRICS.md)."""

from raycg.evaluate.config import EvalConfig
from raycg.evaluate.samples import ModelSamples, load_model_trajectories
from raycg.evaluate.score import ReferenceSummary, TrialScore, prepare_reference, score

__all__ = [
    "EvalConfig",
    "ModelSamples",
    "ReferenceSummary",
    "TrialScore",
    "load_model_trajectories",
    "prepare_reference",
    "score",
]
