"""The trial's side of Ray Tune: reports, and the node it runs on.

Tune only schedules: a trial reports its progress (``ray.tune.report``, no checkpoint) for the
dashboard, the progress printer and Tune's retries; its state lives in its own folder of the study
storage (:mod:`raycg.study.trial.checkpoint`). Outside a Tune run (a plain ``run_trial`` call, the
unit tests) reports go nowhere. Nothing here imports Ray: inside a Ray worker it is already
imported, and a plain call never starts it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any


class TrialSession:
    """No Tune: nothing to report to."""

    in_tune = False

    def __init__(self, node_id: str | None = None):
        self.node_id = node_id

    def report(self, row: dict[str, Any]) -> None:
        pass


class TuneSession(TrialSession):
    """Inside a Tune trial: ``ray.tune.report`` (public API since Ray 2.41)."""

    in_tune = True

    def __init__(self, tune: Any, node_id: str | None):
        super().__init__(node_id)
        self._tune = tune

    def report(self, row: dict[str, Any]) -> None:
        self._tune.report(row)


def current_session() -> TrialSession:
    """The Tune session of this process's trial, or the no-op one."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return TrialSession()
    for name in ("ray.train", "ray.tune"):  # one line per report is noise at study scale
        logging.getLogger(name).setLevel(logging.WARNING)
    from ray import tune

    node_id = ray.get_runtime_context().get_node_id()
    ctx = tune.get_context()
    if ctx is not None and ctx.get_trial_id() is not None:
        return TuneSession(tune, node_id)
    return TrialSession(node_id)
