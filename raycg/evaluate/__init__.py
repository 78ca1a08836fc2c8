"""Free-energy scoring of model trajectories against the reference TICA (see METRICS.md)."""

from raycg.evaluate.config import EvalConfig
from raycg.evaluate.convergence import Convergence
from raycg.evaluate.floor import (
    FloorStat,
    NoiseFloor,
    ReferenceSplit,
    SamplingProtocol,
    draw_reference_samples,
    noise_floor,
    split_reference,
)
from raycg.evaluate.gate_power import GatePower, gate_power
from raycg.evaluate.metric_table import (
    METRICS,
    MetricSpec,
    find_metric,
    headline_metrics,
    metric_direction,
    metric_label,
    metric_spec,
    primary_candidates,
)
from raycg.evaluate.samples import ModelSamples, load_model_trajectories
from raycg.evaluate.score import (
    ReferenceSummary,
    TrialScore,
    prepare_reference,
    score,
    tica_fingerprint,
)

__all__ = [
    "METRICS",
    "Convergence",
    "EvalConfig",
    "FloorStat",
    "GatePower",
    "MetricSpec",
    "ModelSamples",
    "NoiseFloor",
    "ReferenceSplit",
    "ReferenceSummary",
    "SamplingProtocol",
    "TrialScore",
    "draw_reference_samples",
    "find_metric",
    "gate_power",
    "headline_metrics",
    "load_model_trajectories",
    "metric_direction",
    "metric_label",
    "metric_spec",
    "noise_floor",
    "prepare_reference",
    "primary_candidates",
    "score",
    "split_reference",
    "tica_fingerprint",
]
