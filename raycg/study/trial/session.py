"""The trial's side of Ray Tune: report (with a checkpoint), restore, and where it runs.

Outside a Tune run (a plain ``run_trial`` call, the unit tests) the session is a no-op: reports
go nowhere and there is no checkpoint. Nothing here imports Ray: inside a Ray worker it is
already imported, and a plain call never starts it.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any


class TrialSession:
    """No Tune: nothing to report to, nothing to restore."""

    in_tune = False

    def __init__(self, node_id: str | None = None):
        self.node_id = node_id

    def restore_into(self, work: Path) -> bool:
        """Copy the trial's last checkpoint into ``work``; False when there is none."""
        return False

    def report(self, row: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        pass


class TuneSession(TrialSession):
    """Inside a Tune trial: ``ray.tune.report`` / ``get_checkpoint`` (public API since Ray 2.41)."""

    in_tune = True

    def __init__(self, tune: Any, node_id: str | None):
        super().__init__(node_id)
        self._tune = tune

    def restore_into(self, work: Path) -> bool:
        ckpt = self._tune.get_checkpoint()
        if ckpt is None:
            return False
        with ckpt.as_directory() as d:
            shutil.copytree(d, work, dirs_exist_ok=True)
        return True

    def report(self, row: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        if checkpoint_dir is None:
            self._tune.report(row)
        else:
            self._tune.report(row, checkpoint=self._tune.Checkpoint.from_directory(str(checkpoint_dir)))


def current_session() -> TrialSession:
    """The Tune session of this process's trial, or the no-op one."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return TrialSession()
    for name in ("ray.train", "ray.tune"):  # one line per checkpoint is noise at study scale
        logging.getLogger(name).setLevel(logging.WARNING)
    from ray import tune

    node_id = ray.get_runtime_context().get_node_id()
    ctx = tune.get_context()
    if ctx is not None and ctx.get_trial_id() is not None:
        return TuneSession(tune, node_id)
    return TrialSession(node_id)
