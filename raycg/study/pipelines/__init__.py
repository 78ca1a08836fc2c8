"""What a trial runs: one :class:`Pipeline` interface, a registry, two implementations.

- ``base.py``: :class:`Pipeline` (validate, prepare, train, simulate, score, its metrics and
  objective), :class:`TrialContext` (what a phase gets), :class:`TrialFailed`;
- ``registry.py``: ``get_pipeline(name)`` for the ``pipeline:`` field of a spec;
- ``cgschnet/``: the real pipeline, one module per phase (prepare, train, simulate, score);
- ``toy.py``: a seconds-long numpy stand-in with the same reporting, checkpointing and failures,
  for exercising the Ray machinery.
"""

from raycg.study.pipelines.base import PHASES, Objective, Pipeline, TrialContext, TrialFailed
from raycg.study.pipelines.registry import get_pipeline, pipeline_names

__all__ = ["PHASES", "Objective", "Pipeline", "TrialContext", "TrialFailed", "get_pipeline", "pipeline_names"]
