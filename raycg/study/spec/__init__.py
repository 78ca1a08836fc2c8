"""The study spec (one YAML file): each section's fields live in one module of this package.

- ``study.py``: :class:`StudySpec` (the top level: name, dataset, pipeline, storage) and
  :func:`load_spec`;
- ``sections.py``: ``simulation``, ``evaluation``, ``toy`` (stage configs + what a study adds);
  ``priors`` and ``training`` are the stage configs themselves (``raycg.priors``, ``raycg.train``);
- ``analysis.py``: ``analysis`` (primary metric, alpha, equivalence margin, target effect size);
- ``execution.py``: ``grid``, ``resources``, ``retries``, ``concurrency``;
- ``fields.py``: dotted paths (``training.optim.lr``) read and set with validation.
"""

from raycg.study.spec.analysis import AnalysisSpec
from raycg.study.spec.execution import ConcurrencySpec, GridSpec, ResourcesSpec, RetriesSpec
from raycg.study.spec.fields import SWEEPABLE_SECTIONS, get_field, set_field
from raycg.study.spec.sections import EvaluationSection, SimulationSection, ToySection
from raycg.study.spec.study import StudySpec, load_spec, spec_from_any

__all__ = [
    "SWEEPABLE_SECTIONS", "AnalysisSpec", "ConcurrencySpec", "EvaluationSection", "GridSpec", "ResourcesSpec",
    "RetriesSpec", "SimulationSection", "StudySpec", "ToySection", "get_field", "load_spec", "set_field",
    "spec_from_any",
]
