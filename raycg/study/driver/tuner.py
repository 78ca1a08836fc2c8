"""The Tune wiring of a replica study: Ray start-up, the trainable, the unfinished grid points, the run.

Every run (``run_study`` and ``resume_study`` alike) builds a fresh ``Tuner`` over the grid points
that have no final result in the study storage; each trial restores itself from its own folder
(``trials/<id>/``). Tune schedules, places, retries (``retries.max_failures``) and feeds the
dashboard; its experiment (``STUDY/tune/run-<time>``) is disposable: deleting it loses nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from ray import tune

from raycg import ray_compat
from raycg.study.driver.progress import trial_key
from raycg.study.grid import POINT_KEY, grid_point
from raycg.study.keys import trial_id_for
from raycg.study.spec import StudySpec
from raycg.study.storage import Store, is_storage_full, join
from raycg.study.trial import run_trial
from raycg.study.trial.run import FINAL
from raycg.utils.provenance import provenance

TUNE_DIR = "tune"
_UNDO_LOOPBACK = None  # set while a local Ray started here listens on the loopback interface only


def ensure_ray(address: str | None, *, log: Callable[[str], None]) -> bool:
    """Connect to / start Ray. Returns True if this call started it (and should shut it down)."""
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    ray_compat.require_min_ray()  # InputError: one line, before any Ray starts
    if ray.is_initialized():
        return False
    addr = address or os.environ.get("RAY_ADDRESS")
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True,
                              "configure_logging": True, "logging_level": "WARNING"}
    if addr:
        log(f"ray: joining the cluster at {addr}")
        ray.init(address=addr, **kwargs)
        return True
    if os.environ.get("RAYCG_RAY_TEMP_DIR"):
        kwargs["_temp_dir"] = os.environ["RAYCG_RAY_TEMP_DIR"]
    if os.environ.get("RAYCG_RAY_NUM_CPUS"):
        kwargs["num_cpus"] = int(os.environ["RAYCG_RAY_NUM_CPUS"])
    global _UNDO_LOOPBACK
    if os.environ.get("RAYCG_RAY_LOCAL_ONLY", "1") != "0":  # listen on 127.0.0.1 alone
        _UNDO_LOOPBACK = ray_compat.loopback_only()
    log("ray: starting a local Ray instance (use --address or RAY_ADDRESS to join a cluster)")
    ray.init(address="local", object_store_memory=int(os.environ.get("RAYCG_RAY_OBJECT_STORE", 200 * 2**20)),
             **kwargs)
    return True


_REAPER = None  # the reaper of the Ray this process started (kept referenced: its pipe must stay open)


def start_ray(address: str | None, *, log: Callable[[str], None]) -> bool:
    """:func:`ensure_ray` with its start-up time logged; for a local Ray this process started, a reaper
    (raycg.cluster.processes) that ends what Ray leaves once :func:`stop_ray` closes it. Returns
    whether this call started Ray."""
    global _REAPER
    t0 = time.perf_counter()
    own = not (address or os.environ.get("RAY_ADDRESS"))
    started = ensure_ray(address, log=log)
    if started:
        log(f"ray: up in {time.perf_counter() - t0:.1f} s")
        if own and _REAPER is None:
            from raycg.cluster.processes import Reaper

            _REAPER = Reaper.start()
    return started


def stop_ray() -> None:
    """``ray.shutdown()``, the loopback switch undone, and the reaper (if any) closed."""
    global _REAPER
    import ray

    ray.shutdown()
    local_ray_stopped()
    if _REAPER is not None:
        _REAPER.close()
        _REAPER = None


def local_ray_stopped() -> None:
    """After ``ray.shutdown()`` of a Ray that :func:`ensure_ray` started: undo its loopback switch."""
    global _UNDO_LOOPBACK
    if _UNDO_LOOPBACK is not None:
        _UNDO_LOOPBACK()
        _UNDO_LOOPBACK = None


def trainable(spec: StudySpec):
    """``run_trial`` with the spec's per-trial resources."""
    res: dict[str, float] = {"cpu": float(spec.resources.cpus)}
    if spec.resources.gpu > 0:
        res["gpu"] = float(spec.resources.gpu)
    res.update(spec.resources.extra)
    return tune.with_resources(run_trial, res)


def param_space(uri: str, points: list[dict[str, Any]]) -> dict[str, Any]:
    """One Tune trial per grid point (the point's values under ``point``, the study's URI)."""
    return {"study": uri, POINT_KEY: tune.grid_search([dict(p) for p in points])}


def run_config(spec: StudySpec, uri: str, callbacks: list) -> tune.RunConfig:
    return tune.RunConfig(
        name=f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
        storage_path=join(uri, TUNE_DIR),
        failure_config=tune.FailureConfig(max_failures=spec.retries.max_failures),
        verbose=0,
        callbacks=callbacks,
        log_to_file=False,  # with reused actors Tune would warn per line; output stays in worker logs
    )


def grid_tuner(spec: StudySpec, uri: str, points: list[dict[str, Any]], callbacks: list) -> tune.Tuner:
    """A fresh Tuner over ``points`` (the grid points still to run)."""
    return tune.Tuner(
        trainable(spec),
        param_space=param_space(uri, points),
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.concurrency.max_concurrent_trials,
                                    trial_dirname_creator=trial_key, trial_name_creator=trial_key,
                                    reuse_actors=True),
        run_config=run_config(spec, uri, callbacks),
    )


def fold_errors(store: Store, results, log: Callable[[str], None]) -> None:
    """Trials that Tune gave up on (retries exhausted) get a failed ``result.json`` with Tune's error."""
    for res in results or []:
        if res.error is None or not res.config or is_storage_full(str(res.error)):
            continue  # a full storage is not the trial's fault: it stays unfinished and runs on resume
        point = grid_point(res.config)
        tid = trial_id_for(point)
        rel = f"trials/{tid}/result.json"
        old = store.try_read_json(rel)
        if old and old.get("status") in FINAL:
            continue
        msg = str(res.error).strip().splitlines()
        reason = next((ln for ln in reversed(msg) if ln.strip()), "trial errored")
        store.write_json(rel, {"trial_id": tid, "status": "failed", "error": f"errored after retries: {reason}"[:2000],
                               "failed_phase": None, "config": point, "metrics": {}, "convergence": None,
                               "runtime_s": None, "stage_times": {}, "provenance": provenance(point)})
        log(f"  {tid}: failed ({reason[:120]})")
