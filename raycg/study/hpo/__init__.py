"""HPO mode (``raycg study tune``): tune CGSchNet's model and training hyperparameters before a
replica study. ``spec.py``: the ``search:`` section; ``search.py``: Optuna TPE + ASHA inside Ray
Tune; ``summary.py``: trials table, importances, history plot, the exported best spec;
``state.py``: the digests that keep Tune from unpickling a search state raycg did not record.

Names are imported on first use: ``raycg.study.hpo.spec`` and ``raycg.study.hpo.state`` import
no Ray; ``run_hpo`` and ``summarize_existing`` (``search.py``) do.
"""

from __future__ import annotations

from raycg.utils.lazy import lazy_exports

_LAZY = {
    "AshaSpec": ".spec", "ParamSpec": ".spec", "SearchSpec": ".spec", "hpo_from_mapping": ".spec",
    "hpo_study_spec": ".spec", "load_hpo_spec": ".spec",
    "run_hpo": ".search", "summarize_existing": ".search", "summarize": ".summary",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

__all__ = sorted(_LAZY)


