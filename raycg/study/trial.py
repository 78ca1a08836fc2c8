"""One trial: a plain function of its config (the Ray Tune trainable).

``run_trial(config)`` loads the study's prepared artefacts, then runs the pipeline's phases
(train -> simulate -> score). It reports to Tune after every epoch and every simulation chunk with
a checkpoint (the trial's node-local work directory), so a trial whose node dies resumes from
its last checkpoint on another node. Its outputs (model, trajectories, scores, ``result.json``)
are written into the study storage under ``trials/<trial_id>/``.

Expected failures (training divergence, a simulation in which every replica blew up, a config
the stages reject) end the trial with ``status: failed`` and the reason in ``result.json``;
the study goes on. Anything else (a lost node, a bug) raises so Tune retries the trial from its
last checkpoint, up to ``retries.max_failures`` times.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raycg.errors import InputError
from raycg.study.grid import config_hash, trial_config_from_dict, trial_id_for
from raycg.study.storage import Store
from raycg.utils.io import atomic_write_json
from raycg.utils.provenance import provenance

PHASES = ("train", "simulate", "score")
STATE_FILE = "state.json"
INTERNAL_KEYS = ("study", "phases")  # "phases": a subset of PHASES (HPO trains only)


class TrialFailed(Exception):
    """An expected, deterministic failure of a trial (no retry): divergence, total blow-up, bad config."""

    def __init__(self, reason: str, phase: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.phase = phase


def grid_point(config: dict[str, Any]) -> dict[str, Any]:
    """The swept values of a Tune config (everything but the internal keys)."""
    return {k: v for k, v in config.items() if k not in INTERNAL_KEYS}


class TrialContext:
    """What a pipeline phase needs: the trial's config, work dir, storage, and reporting."""

    def __init__(self, *, trial_id: str, config: dict[str, Any], store: Store, study: dict[str, Any],
                 work: Path, state: dict[str, Any], reporter: Callable[..., None]):
        self.trial_id = trial_id
        self.config = config
        self.store = store
        self.study = study
        self.work = work
        self.state = state
        self._reporter = reporter
        self.rel = f"trials/{trial_id}"
        self.metrics: dict[str, float] = {}
        self.stage_times: dict[str, float] = dict(state.get("stage_times", {}))
        self.extra: dict[str, Any] = {}
        self.restored = bool(state)
        self._prepared_local: Path | None = None

    # reporting -------------------------------------------------------------------------------
    def report(self, metrics: dict[str, Any], *, phase: str, progress: float, checkpoint: bool = True) -> None:
        """Report intermediate metrics to Tune, with a checkpoint of the work directory."""
        self.state["stage_times"] = self.stage_times
        self._reporter(metrics, phase=phase, progress=progress, checkpoint=checkpoint)

    def save_state(self) -> None:
        self.state["stage_times"] = self.stage_times
        atomic_write_json(self.work / STATE_FILE, self.state)

    # prepared artefacts ----------------------------------------------------------------------
    def prepared_dir(self) -> Path:
        """A local directory with the study's prepared artefacts (downloaded once per node for URIs)."""
        if self._prepared_local is not None:
            return self._prepared_local
        if not self.store.remote:
            self._prepared_local = self.store.local_path("prepared")
            return self._prepared_local
        from raycg.study.storage import node_cache_dir

        info = self.store.read_json("prepared/prepared.json")
        dest = node_cache_dir() / "prepared" / info["hash"]
        if not (dest / "prepared.json").exists():
            tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=dest.parent if dest.parent.exists() else None))
            self.store.download_dir("prepared", tmp)
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(tmp, dest)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)
        self._prepared_local = dest
        return dest

    def upload(self, local: str | Path, rel: str) -> None:
        """Copy a local output directory into the study storage under ``trials/<id>/<rel>``."""
        self.store.upload_dir(local, f"{self.rel}/{rel}")

    def upload_file(self, local: str | Path, rel: str) -> None:
        self.store.write_bytes(f"{self.rel}/{rel}", Path(local).read_bytes())


def _node_id() -> str | None:
    try:
        import ray

        if not ray.is_initialized():  # never start Ray just to ask
            return None
        return ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - outside Ray
        return None


def _tune_session():
    """(report, get_checkpoint, Checkpoint) from Ray Tune, or no-op stand-ins outside a Tune run."""
    try:
        import ray
        from ray import tune

        if not ray.is_initialized():
            return None, (lambda: None), None
        ctx = tune.get_context()
        if ctx is not None and ctx.get_trial_id() is not None:
            return tune.report, tune.get_checkpoint, tune.Checkpoint
    except Exception:  # noqa: BLE001 - not in a Tune session
        pass
    return None, (lambda: None), None


def run_trial(config: dict[str, Any]) -> dict[str, Any]:
    """Run one trial of a study. ``config`` = ``{"study": URI, "energy_weight": w, "seed": s, ...}``.

    Works inside Ray Tune (reports, checkpoints, restores) and outside it (a plain call, for
    debugging: ``run_trial({"study": "runs/quickstart", "energy_weight": 0.1, "seed": 0})``).
    Returns the final metrics (also written to ``trials/<id>/result.json``).
    """
    t_start = time.perf_counter()
    for name in ("ray.train", "ray.tune"):  # one line per checkpoint is noise at study scale
        logging.getLogger(name).setLevel(logging.WARNING)
    store = Store(config["study"])
    study = store.read_json("study.json")
    point = grid_point(config)
    trial_id = trial_id_for(point)
    full = trial_config_from_dict(study["spec"], point)  # validated by the driver
    chash = config_hash(full)
    rel = f"trials/{trial_id}"
    tune_report, get_checkpoint, Checkpoint = _tune_session()

    # A trial that already finished is never run again (e.g. when Tune restores a study whose
    # state was saved just before the trial's last report): report its stored result and stop.
    old = store.try_read_json(f"{rel}/result.json")
    if old and old.get("config_hash") == chash and old.get("status") in ("ok", "failed"):
        final = _final_metrics(old)
        final["skipped_already_done"] = True
        if tune_report is not None:
            tune_report(final)
        return final

    # Threads follow the CPUs granted to the trial.
    cpus = max(1, int(round(float(full.get("resources", {}).get("cpus", 1)))))
    if full.get("pipeline") != "toy" or "torch" in sys.modules:
        import torch

        torch.set_num_threads(cpus)

    work = Path(tempfile.mkdtemp(prefix=f"raycg-{trial_id[:40]}-"))
    state: dict[str, Any] = {}
    restored_from = None
    ckpt = get_checkpoint()
    if ckpt is not None:
        with ckpt.as_directory() as d:
            shutil.copytree(d, work, dirs_exist_ok=True)
        state = _read_json(work / STATE_FILE) or {}
        restored_from = {"phase": state.get("phase"), "step": state.get("step")}
    attempt = {"attempt_id": uuid.uuid4().hex[:12], "node_id": _node_id(), "pid": os.getpid(),
               "started_unix": time.time(), "restored_from": restored_from}
    store.write_json(f"{rel}/attempts/{int(time.time() * 1000)}-{attempt['attempt_id']}.json", attempt)
    if not store.exists(f"{rel}/config.json"):
        store.write_json(f"{rel}/config.json", {"trial_id": trial_id, "config_hash": chash, "config": full,
                                                "grid_point": point})

    n_reports = [0]

    def reporter(metrics: dict[str, Any], *, phase: str, progress: float, checkpoint: bool = True) -> None:
        state["phase"] = phase
        state["step"] = metrics.get("epoch", metrics.get("chunk"))
        row = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
        row.update(phase=phase, progress=float(progress), trial_key=trial_id)
        status = {"trial_id": trial_id, "phase": phase, "progress": float(progress), "updated_unix": time.time(),
                  "node_id": attempt["node_id"], "attempt_id": attempt["attempt_id"],
                  "step": state["step"]}
        store.write_json(f"{rel}/status.json", status)
        n_reports[0] += 1
        tmetrics.update(metrics, phase=phase, progress=progress)
        if tune_report is None:
            if checkpoint:
                ctx.save_state()
            return
        if checkpoint:
            ctx.save_state()
            tune_report(row, checkpoint=Checkpoint.from_directory(str(work)))
        else:
            tune_report(row)

    from raycg.study.metrics import TrialMetrics

    tmetrics = TrialMetrics(trial_id, study.get("name"), full, restored=ckpt is not None)
    ctx = TrialContext(trial_id=trial_id, config=full, store=store, study=study, work=work, state=state,
                       reporter=reporter)
    ctx.extra["attempt"] = attempt

    from raycg.study.pipelines import get_pipeline

    pipeline = get_pipeline(full.get("pipeline", "cgschnet"))
    status, error, failed_phase = "ok", None, None
    try:
        for phase in config.get("phases") or PHASES:
            if phase in state.get("done", []):
                continue
            t0 = time.perf_counter()
            try:
                getattr(pipeline, phase)(ctx)
            finally:
                ctx.stage_times[phase] = ctx.stage_times.get(phase, 0.0) + (time.perf_counter() - t0)
            state.setdefault("done", []).append(phase)
            state["metrics"] = {**state.get("metrics", {}), **ctx.metrics}
            if phase != PHASES[-1]:
                ctx.report({f"{phase}_done": 1}, phase=phase, progress=_phase_end(phase))
    except TrialFailed as exc:
        status, error, failed_phase = "failed", exc.reason, exc.phase
    except InputError as exc:  # the stages rejected this trial's config: deterministic, no retry
        status, error, failed_phase = "failed", f"invalid config: {exc}", state.get("phase")

    metrics = {**state.get("metrics", {}), **ctx.metrics}
    runtime = time.perf_counter() - t_start
    result = {
        "trial_id": trial_id,
        "status": status,
        "error": error,
        "failed_phase": failed_phase,
        "config": _flat(point, full),
        "config_hash": chash,
        "metrics": metrics,
        "runtime_s": runtime,
        "stage_times": ctx.stage_times,
        "attempts": len(store.listdir(f"{rel}/attempts")),
        "restored_from": restored_from,
        "node_id": attempt["node_id"],
        "provenance": provenance(full, data_hash=study.get("prepared", {}).get("data_hash"),
                                 trial_id=trial_id, study=study.get("name")),
    }
    store.write_json(f"{rel}/result.json", result)
    store.write_json(f"{rel}/status.json", {"trial_id": trial_id, "phase": "done", "progress": 1.0,
                                            "updated_unix": time.time(), "status": status,
                                            "node_id": attempt["node_id"]})
    shutil.rmtree(work, ignore_errors=True)
    final = _final_metrics(result)
    tmetrics.finish(status)
    if tune_report is not None:
        tune_report(final)
    return final


def _phase_end(phase: str) -> float:
    return {"train": 0.6, "simulate": 0.9, "score": 1.0}[phase]


def _final_metrics(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in result.get("metrics", {}).items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out.update(status=result["status"], error=result.get("error") or "", phase="done", progress=1.0,
               trial_key=result["trial_id"], runtime_s=result.get("runtime_s", 0.0),
               stage_time_s=float(sum(result.get("stage_times", {}).values())))
    return out


def _flat(point: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    out = dict(point)
    out["pipeline"] = full.get("pipeline")
    return out


def _read_json(path: Path) -> Any:
    import json

    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def format_exception(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
