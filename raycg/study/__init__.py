"""Studies on Ray Tune: spec -> prepare (once) -> trials (energy weight x seed) -> aggregate.

The only raycg package that imports Ray (lazily: importing :mod:`raycg.study` does not start or
import Ray). Public API::

    from raycg.study import run_study, resume_study, study_status, load_spec
    table = run_study("studies/quickstart.yaml")          # a pandas DataFrame, one row per trial
"""

from __future__ import annotations

from typing import Any

from raycg.study.spec import StudySpec, grid_points, load_spec, trial_config, trial_id_for

_LAZY = {
    "run_study": "raycg.study.runner",
    "resume_study": "raycg.study.runner",
    "study_status": "raycg.study.runner",
    "format_status": "raycg.study.runner",
    "aggregate": "raycg.study.runner",
    "trial_table": "raycg.study.runner",
    "validate_study": "raycg.study.runner",
    "prepare": "raycg.study.prepare",
    "run_trial": "raycg.study.trial",
}

__all__ = ["StudySpec", "grid_points", "load_spec", "trial_config", "trial_id_for", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'raycg.study' has no attribute {name!r}")
