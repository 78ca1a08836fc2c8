"""Free-energy scoring of model trajectories against the reference TICA (see METRICS.md)."""

from raycg.evaluate.config import EvalConfig
from raycg.evaluate.samples import ModelSamples, load_model_trajectories
from raycg.evaluate.score import (
    METRIC_DIRECTIONS,
    ReferenceSummary,
    TrialScore,
    metric_direction,
    prepare_reference,
    score,
    tica_fingerprint,
)

__all__ = [
    "METRIC_DIRECTIONS",
    "EvalConfig",
    "ModelSamples",
    "ReferenceSummary",
    "TrialScore",
    "load_model_trajectories",
    "metric_direction",
    "prepare_reference",
    "score",
    "tica_fingerprint",
]
