"""HPO mode (``raycg study tune``): tune CGSchNet's model and training hyperparameters before a
replica study. ``spec.py``: the ``search:`` section; ``search.py``: Optuna TPE + ASHA inside Ray
Tune; ``summary.py``: trials table, importances, history plot, the exported best spec.

Importing this package imports Ray (the search runs on it); ``raycg.study.hpo.spec`` does not.
"""

from raycg.study.hpo.search import run_hpo, summarize_existing
from raycg.study.hpo.spec import (
           AshaSpec,
           ParamSpec,
           SearchSpec,
           hpo_from_mapping,
           hpo_study_spec,
           load_hpo_spec,
)
from raycg.study.hpo.summary import summarize

__all__ = ["AshaSpec", "ParamSpec", "SearchSpec", "hpo_from_mapping", "hpo_study_spec", "load_hpo_spec",
           "run_hpo", "summarize", "summarize_existing"]
