"""Studies on Ray Tune: spec -> prepare (once) -> trials (energy weight x seed) -> aggregate.

The only raycg package that imports Ray (lazily: importing :mod:`raycg.study` imports neither Ray
nor the stages: a Ray worker running a trial imports only what its pipeline needs). Public API::

    from raycg.study import run_study, resume_study, study_status, load_spec
    table = run_study("studies/quickstart.yaml")          # a pandas DataFrame, one row per trial
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "StudySpec": "raycg.study.spec",
    "grid_points": "raycg.study.spec",
    "load_spec": "raycg.study.spec",
    "trial_config": "raycg.study.spec",
    "trial_id_for": "raycg.study.grid",
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

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'raycg.study' has no attribute {name!r}")
