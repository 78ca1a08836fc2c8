"""One trial: a plain function of its Tune config (the Ray Tune trainable).

``run_trial(config)`` builds the trial's typed config from the study's spec and its grid values,
then runs the pipeline's phases (train -> simulate -> score). After every epoch and every
simulation chunk it stores a checkpoint of its node-local work directory in its own folder,
``trials/<id>/checkpoints/`` (:mod:`raycg.study.trial.checkpoint`), then reports to Tune; every
attempt (a Tune retry, a resumed study, a node lost) starts from the newest complete one. Its
outputs (model, trajectories, scores, ``result.json``) are written into the study storage under
``trials/<id>/``; that folder is the trial's whole state (Tune's experiment folder is disposable).

Expected failures (training divergence, a simulation in which every replica blew up, a config the
stages reject) end the trial with ``status: failed`` and the reason in ``result.json``; the study
goes on. Anything else (a lost node, a full disk, a bug) raises so Tune retries the trial from its
last checkpoint, up to ``retries.max_failures`` times.

Every attempt keeps a record in ``trials/<id>/attempts/`` (node, PID, host, what it restored
from), updated at each report with its wall time and per-phase times; ``result.json``'s
``runtime_s`` and ``stage_times`` are the sums over all attempts (an attempt lost with its node
counts up to its last report) and ``attempt_times`` lists them one by one.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from raycg.config import validate_config
from raycg.errors import InputError
from raycg.study.grid import Trial, grid_point, make_trial
from raycg.study.pipelines import PHASES, Pipeline, TrialContext, TrialFailed, get_pipeline
from raycg.study.pipelines.base import PHASE_END, STATE_FILE
from raycg.study.spec import StudySpec
from raycg.study.storage import Store
from raycg.study.trial.checkpoint import TrialCheckpoints
from raycg.study.trial.metrics import TrialMetrics
from raycg.study.trial.session import TrialSession, current_session
from raycg.study.trial.workdir import new_work_dir, remove_work_dir
from raycg.utils.provenance import provenance

FINAL = ("ok", "failed")
_SPECS: dict[str, StudySpec] = {}  # validated specs by hash, per process (Tune reuses actors)


def run_trial(config: dict[str, Any]) -> dict[str, Any]:
    """Run one trial of a study. ``config`` = ``{"study": URI, "energy_weight": w, "seed": s, ...}``.

    Works inside Ray Tune (reports, checkpoints, restores) and outside it (a plain call, for
    debugging: ``run_trial({"study": "runs/quickstart", "energy_weight": 0.1, "seed": 0})``).
    Returns the final metrics (also written to ``trials/<id>/result.json``).
    """
    t_start = time.perf_counter()
    store = Store(config["study"])
    study = store.read_json("study.json")
    spec = study_spec(study, source=f"{store.root}/study.json")
    trial = make_trial(spec, grid_point(config), source=f"{store.root}/study.json")
    session = current_session()
    old = store.try_read_json(f"trials/{trial.trial_id}/result.json")
    # A finished trial never runs again (e.g. Tune restores a study whose state was saved just
    # before the trial's last report): report its stored result and stop.
    if old and old.get("config_hash") == trial.config_hash and old.get("status") in FINAL:
        final = final_metrics(old)
        final["skipped_already_done"] = True
        session.report(final)
        return final
    pipeline = get_pipeline(spec.pipeline)
    if pipeline.uses_torch or "torch" in sys.modules:  # threads follow the CPUs granted to the trial
        import torch

        torch.set_num_threads(max(1, round(spec.resources.cpus)))
    attempt = TrialAttempt(store, study, trial, pipeline, session)
    try:
        result = attempt.run(config.get("phases") or PHASES, t_start)
    finally:
        remove_work_dir(attempt.work)
    final = final_metrics(result)
    session.report(final)
    return final


def study_spec(study: dict[str, Any], *, source: str = "study.json") -> StudySpec:
    """The validated spec of a ``study.json`` (validated once per process)."""
    key = study["spec_hash"]
    if key not in _SPECS:
        _SPECS[key] = validate_config(StudySpec, study["spec"], source=source)
    return _SPECS[key]


class TrialAttempt:
    """One attempt at a trial: its work directory (restored from the last checkpoint), reports, result."""

    def __init__(self, store: Store, study: dict[str, Any], trial: Trial, pipeline: Pipeline,
                 session: TrialSession):
        self.store, self.study, self.trial, self.pipeline, self.session = store, study, trial, pipeline, session
        self.rel = f"trials/{trial.trial_id}"
        self.work = new_work_dir(trial.trial_id)
        self.state: dict[str, Any] = {}
        self.restored_from = None
        self.checkpoints = TrialCheckpoints(store, self.rel)
        number = self.checkpoints.restore_into(self.work)
        if number is not None:
            self.state = _read_json(self.work / STATE_FILE) or {}
            self.restored_from = {"phase": self.state.get("phase"), "step": self.state.get("step")}
        self.info = {"attempt_id": uuid.uuid4().hex[:12], "node_id": session.node_id, "pid": os.getpid(),
                     "host": socket.gethostname(), "started_unix": time.time(), "restored_from": self.restored_from,
                     "restore_source": f"checkpoints/{number:06d}" if number is not None else None}
        self.attempt_rel = f"{self.rel}/attempts/{int(time.time() * 1000)}-{self.info['attempt_id']}.json"
        self.phase_times: dict[str, float] = {}  # this attempt's seconds per phase
        self._phase: tuple[str, float] | None = None  # the phase running now, since when
        self.gauges = TrialMetrics(trial.trial_id, study.get("name"), pipeline.simulation_steps(trial.config),
                                   restored=self.restored_from is not None)
        self.ctx = TrialContext(trial_id=trial.trial_id, config=trial.config, point=trial.point, store=store,
                                work=self.work, state=self.state, reporter=self.report)

    def report(self, metrics: dict[str, Any], *, phase: str, progress: float, checkpoint: bool = True) -> None:
        """Status marker, dashboard gauges, a checkpoint of the work directory (stored), a Tune report."""
        self.state["phase"] = phase
        self.state["step"] = metrics.get("epoch", metrics.get("chunk"))
        if checkpoint:  # stored before anything says this step is done
            self.ctx.save_state()
            self.checkpoints.save(self.work)
        row = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool)) or v is None}
        row.update(phase=phase, progress=float(progress), trial_key=self.trial.trial_id)
        self.store.write_json(f"{self.rel}/status.json", {
            "trial_id": self.trial.trial_id, "phase": phase, "progress": float(progress),
            "updated_unix": time.time(), "node_id": self.info["node_id"], "attempt_id": self.info["attempt_id"],
            "step": self.state["step"]})
        self.gauges.update(metrics, phase=phase, progress=progress)
        self._record_attempt()
        self.session.report(row)

    def _record_attempt(self, ended: str | None = None) -> dict[str, Any]:
        """Write this attempt's record: wall time so far and seconds per phase (the running one included)."""
        now = time.perf_counter()
        times = dict(self.phase_times)
        if self._phase is not None:
            times[self._phase[0]] = times.get(self._phase[0], 0.0) + now - self._phase[1]
        self.info.update(runtime_s=now - self.t_start, stage_times=times, updated_unix=time.time(), ended=ended,
                         last={"phase": self.state.get("phase"), "step": self.state.get("step")})
        self.store.write_json(self.attempt_rel, self.info)
        return self.info

    def run(self, phases: list[str] | tuple[str, ...], t_start: float) -> dict[str, Any]:
        """Run the phases not done yet; write and return ``result.json``."""
        self.t_start = t_start
        self._record_attempt()
        if not self.store.exists(f"{self.rel}/config.json"):
            self.store.write_json(f"{self.rel}/config.json", {
                "trial_id": self.trial.trial_id, "config_hash": self.trial.config_hash,
                "config": self.trial.config_json(), "grid_point": self.trial.point})
        status, error, failed_phase = "ok", None, None
        try:
            for phase in phases:
                if phase not in self.state.get("done", []):
                    self._run_phase(phase)
        except TrialFailed as exc:
            status, error, failed_phase = "failed", exc.reason, exc.phase
        except InputError as exc:  # the stages rejected this trial's config: deterministic, no retry
            status, error, failed_phase = "failed", f"invalid config: {exc}", self.state.get("phase")
        self._record_attempt(ended=status)
        result = self._result(status, error, failed_phase)
        self.store.write_json(f"{self.rel}/result.json", result)
        self.store.delete(f"{self.rel}/checkpoints")  # the result is final: give the space back
        self.store.write_json(f"{self.rel}/status.json", {
            "trial_id": self.trial.trial_id, "phase": "done", "progress": 1.0, "updated_unix": time.time(),
            "status": status, "node_id": self.info["node_id"]})
        self.gauges.finish(status)
        return result

    def _run_phase(self, phase: str) -> None:
        ctx = self.ctx
        t0 = time.perf_counter()
        self._phase = (phase, t0)
        try:
            getattr(self.pipeline, phase)(ctx)
        finally:
            elapsed = time.perf_counter() - t0
            self._phase = None
            ctx.stage_times[phase] = ctx.stage_times.get(phase, 0.0) + elapsed
            self.phase_times[phase] = self.phase_times.get(phase, 0.0) + elapsed
        self.state.setdefault("done", []).append(phase)
        self.state["metrics"] = {**self.state.get("metrics", {}), **ctx.metrics}
        if phase != PHASES[-1]:
            ctx.report({f"{phase}_done": 1}, phase=phase, progress=PHASE_END[phase])

    def _attempt_times(self) -> list[dict[str, Any]]:
        """Every attempt's record (this one as just written), oldest first."""
        out = []
        for name in self.store.listdir(f"{self.rel}/attempts"):
            rec = self.info if f"{self.rel}/attempts/{name}" == self.attempt_rel else \
                self.store.try_read_json(f"{self.rel}/attempts/{name}")
            if not rec:
                continue
            runtime = rec.get("runtime_s")
            if runtime is None and rec.get("updated_unix"):  # a record without timings: its span
                runtime = float(rec["updated_unix"]) - float(rec.get("started_unix", rec["updated_unix"]))
            out.append({"attempt_id": rec.get("attempt_id"), "node_id": rec.get("node_id"),
                        "started_unix": rec.get("started_unix"), "runtime_s": float(runtime or 0.0),
                        "stage_times": rec.get("stage_times") or {}, "restored_from": rec.get("restored_from"),
                        "ended": rec.get("ended")})
        return sorted(out, key=lambda a: a.get("started_unix") or 0.0)

    def _result(self, status: str, error: str | None, failed_phase: str | None) -> dict[str, Any]:
        trial = self.trial
        attempts = self._attempt_times()
        stage_times: dict[str, float] = {}
        for a in attempts:
            for phase, t in a["stage_times"].items():
                stage_times[phase] = stage_times.get(phase, 0.0) + float(t)
        return {
            "trial_id": trial.trial_id, "status": status, "error": error, "failed_phase": failed_phase,
            "config": {**trial.point, "pipeline": self.pipeline.name}, "config_hash": trial.config_hash,
            "metrics": {**self.state.get("metrics", {}), **self.ctx.metrics},
            "convergence": self.ctx.convergence,
            "runtime_s": sum(a["runtime_s"] for a in attempts), "stage_times": stage_times,
            "attempts": len(attempts), "attempt_times": attempts,
            "restored_from": self.restored_from, "node_id": self.info["node_id"],
            "provenance": provenance(trial.config_json(), data_hash=self.study.get("prepared", {}).get("data_hash"),
                                     trial_id=trial.trial_id, study=self.study.get("name")),
        }


def final_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """The last Tune report of a trial: its numeric metrics plus status, error and timings."""
    out: dict[str, Any] = {k: v for k, v in result.get("metrics", {}).items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool)}
    out.update(status=result["status"], error=result.get("error") or "", phase="done", progress=1.0,
               trial_key=result["trial_id"], runtime_s=result.get("runtime_s") or 0.0,
               stage_time_s=float(sum((result.get("stage_times") or {}).values())))
    return out


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
