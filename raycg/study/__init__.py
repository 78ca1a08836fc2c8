"""Studies on Ray Tune: spec -> prepare (once) -> trials (energy weight x seed) -> aggregate.

The only raycg package that runs studies on Ray (lazily: importing :mod:`raycg.study` imports
neither Ray nor the stages; a Ray worker running a trial imports only what its pipeline needs).
A study's state is its storage folder alone: ``trials/<id>/`` holds each trial's result, attempts
and checkpoints; Tune schedules. Layout:

==================  ==========================================================================
``spec/``           the YAML spec, one module per group of sections; a precheck before torch/Ray
``grid.py``         grid points, trial ids, each trial's typed config
``keys.py``         trial ids and config hashes
``pipelines/``      the Pipeline interface + registry; ``cgschnet/`` (one module per phase), ``toy.py``
``trial/``          one trial (Ray-free core), its checkpoints, its Tune session, dashboard gauges
``driver/``         run / resume a study on Ray Tune (the Tune wiring, progress, the storage watch)
``results/``        status, ETA and aggregation, read from the study storage alone (no Ray)
``hpo/``            ``raycg study tune``: Optuna + ASHA search
``preflight.py``    the cluster can run the spec: resources, storage, ``--address`` answers
``prepared.py``     what ``prepare`` leaves in ``STUDY/prepared``
``storage.py``      the study storage (local, shared path, s3/gs) behind one ``Store``
==================  ==========================================================================

Elsewhere: the one-machine cluster tools in :mod:`raycg.cluster`, the all-atom replicas on Ray in
:mod:`raycg.allatom.distributed`, every non-public Ray API in :mod:`raycg.ray_compat`.

Public API::

    from raycg.study import run_study, resume_study, study_status, load_spec
    table = run_study("studies/quickstart.yaml")          # a pandas DataFrame, one row per trial
"""

from __future__ import annotations

from raycg.utils.lazy import lazy_exports

_LAZY = {
    "StudySpec": "raycg.study.spec",
    "load_spec": "raycg.study.spec",
    "grid_points": "raycg.study.grid",
    "trial_config": "raycg.study.grid",
    "trial_id_for": "raycg.study.keys",
    "run_study": "raycg.study.driver",
    "resume_study": "raycg.study.driver",
    "validate_study": "raycg.study.driver",
    "StudyIncomplete": "raycg.study.driver",
    "study_status": "raycg.study.results",
    "format_status": "raycg.study.results",
    "aggregate": "raycg.study.results",
    "trial_table": "raycg.study.results",
    "run_trial": "raycg.study.trial",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = list(_LAZY)


