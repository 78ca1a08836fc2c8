"""The study spec (one YAML file): each section's fields live in one module of this package.

- ``study.py``: :class:`StudySpec` (the top level: name, dataset, pipeline, storage) and
  :func:`load_spec`;
- ``sections.py``: ``simulation``, ``evaluation``, ``toy`` (stage configs + what a study adds);
  ``priors`` and ``training`` are the stage configs themselves (``raycg.priors``, ``raycg.train``);
- ``analysis.py``: ``analysis`` (primary metric, alpha, equivalence margin, target effect size);
- ``execution.py``: ``grid``, ``resources``, ``retries``, ``concurrency``;
- ``fields.py``: dotted paths (``training.optim.lr``) read and set with validation;
- ``precheck.py``: the checks that need neither torch nor the stage configs (run before them).

Names are imported lazily: importing one light module (``execution``, ``precheck``) does not import
the stage configs (and so torch).
"""

from __future__ import annotations

from raycg.utils.lazy import lazy_exports

_LAZY = {
    "AnalysisSpec": ".analysis",
    "ConcurrencySpec": ".execution", "GridSpec": ".execution", "ResourcesSpec": ".execution",
    "RetriesSpec": ".execution",
    "SWEEPABLE_SECTIONS": ".fields", "get_field": ".fields", "set_field": ".fields",
    "EvaluationSection": ".sections", "SimulationSection": ".sections", "ToySection": ".sections",
    "StudySpec": ".study", "load_spec": ".study", "spec_from_any": ".study",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = sorted(_LAZY)


