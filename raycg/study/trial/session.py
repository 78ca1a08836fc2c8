"""The trial's side of Ray Tune: report (with a checkpoint), restore, and where it runs.

Outside a Tune run (a plain ``run_trial`` call, the unit tests) the session is a no-op: reports
go nowhere and there is no checkpoint. Nothing here imports Ray: inside a Ray worker it is
already imported, and a plain call never starts it.

A checkpoint carries a manifest of its files (:mod:`raycg.study.trial.checkpoint`). On restore the
newest complete checkpoint of the trial's directory is used: usually the one Tune offers; a newer
one when Tune restored a saved state that lagged behind the storage (a killed driver: the trial
went on checkpointing after the last save); an older one when the offered copy was truncated by a
full disk or already deleted by Tune's clean-up; then the checkpoint a repaired study salvaged into
``trials/<id>/recovered_checkpoint``. A trial with none of them starts afresh.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from raycg.study.trial import checkpoint as ckpt_files


class TrialSession:
    """No Tune: nothing to report to, nothing to restore."""

    in_tune = False

    def __init__(self, node_id: str | None = None):
        self.node_id = node_id

    def restore_into(self, work: Path, fallback: Path | None = None) -> str | None:
        """Copy the trial's last complete checkpoint into ``work``; return where it came from (None: none).

        Without Tune there is only ``fallback`` (a checkpoint salvaged by a study repair).
        """
        return _restore_first(work, [("recovered", fallback)] if fallback is not None else [])

    def report(self, row: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        pass


class TuneSession(TrialSession):
    """Inside a Tune trial: ``ray.tune.report`` / ``get_checkpoint`` (public API since Ray 2.41)."""

    in_tune = True

    def __init__(self, tune: Any, node_id: str | None):
        super().__init__(node_id)
        self._tune = tune

    def restore_into(self, work: Path, fallback: Path | None = None) -> str | None:
        ckpt = self._tune.get_checkpoint()
        candidates: list[tuple[str, Path | None]] = []
        if ckpt is not None and _is_local(ckpt):
            candidates = list(ckpt_files.candidates(Path(ckpt.path)))
        elif ckpt is not None:  # object store: Tune downloads it
            try:
                with ckpt.as_directory() as d:
                    source = _restore_first(work, [("tune", Path(d))])
                if source:
                    return source
            except OSError as exc:
                logging.getLogger(__name__).warning("checkpoint %s unreadable (%s)", ckpt.path, exc)
        if fallback is not None:
            candidates.append(("recovered", fallback))
        return _restore_first(work, candidates)

    def report(self, row: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        if checkpoint_dir is None:
            self._tune.report(row)
        else:
            ckpt_files.write_manifest(checkpoint_dir)
            self._tune.report(row, checkpoint=self._tune.Checkpoint.from_directory(str(checkpoint_dir)))


def _is_local(ckpt: Any) -> bool:
    return type(ckpt.filesystem).__name__ == "LocalFileSystem"


def _restore_first(work: Path, candidates: list[tuple[str, Path | None]]) -> str | None:
    """Copy the first complete checkpoint of ``candidates`` into ``work``; return its label (None: none)."""
    log = logging.getLogger(__name__)
    for label, path in candidates:
        if path is None:
            continue
        why = ckpt_files.problem(path)
        if why is None:
            try:
                shutil.copytree(path, work, dirs_exist_ok=True)
            except OSError as exc:  # deleted meanwhile (Tune keeps only the newest few)
                why = str(exc)
            else:
                if ckpt_files.problem(work) is None:
                    return label
                why = "incomplete after copying"
            for p in list(work.iterdir()):  # start the next candidate from an empty directory
                shutil.rmtree(p) if p.is_dir() else p.unlink()
        log.warning("not restoring from %s: %s", path, why)
    return None


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
