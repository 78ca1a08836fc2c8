"""The Tune wiring of a replica study: Ray start-up, the trainable, the grid as a param space, the run.

One ``Tuner`` per study, its experiment in ``STUDY/tune`` inside the study storage (so a later
``resume_study`` restores it), ``grid_search`` over energy weights x seeds x sweeps, per-trial
resources, retries from checkpoints, actors reused between trials.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from ray import tune

from raycg.study import ray_compat
from raycg.study.driver.progress import trial_key
from raycg.study.grid import grid_point
from raycg.study.keys import trial_id_for
from raycg.study.spec import StudySpec
from raycg.study.storage import Store, join
from raycg.study.trial import run_trial
from raycg.study.trial.run import FINAL
from raycg.utils.provenance import provenance

TUNE_DIR = "tune"


def ensure_ray(address: str | None, *, log: Callable[[str], None]) -> bool:
    """Connect to / start Ray. Returns True if this call started it (and should shut it down)."""
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

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
    log("ray: starting a local Ray instance (use --address or RAY_ADDRESS to join a cluster)")
    ray.init(address="local", object_store_memory=int(os.environ.get("RAYCG_RAY_OBJECT_STORE", 200 * 2**20)),
             **kwargs)
    return True


def trainable(spec: StudySpec):
    """``run_trial`` with the spec's per-trial resources."""
    res: dict[str, float] = {"cpu": float(spec.resources.cpus)}
    if spec.resources.gpu > 0:
        res["gpu"] = float(spec.resources.gpu)
    res.update(spec.resources.extra)
    return tune.with_resources(run_trial, res)


def param_space(spec: StudySpec, uri: str) -> dict[str, Any]:
    space: dict[str, Any] = {
        "study": uri,
        "energy_weight": tune.grid_search([float(w) for w in spec.grid.energy_weights]),
        "seed": tune.grid_search(spec.grid.seed_list()),
    }
    space.update({key: tune.grid_search(list(values)) for key, values in spec.grid.sweep.items()})
    return space


def run_config(spec: StudySpec, uri: str, callbacks: list) -> tune.RunConfig:
    return tune.RunConfig(
        name=TUNE_DIR,
        storage_path=uri,
        failure_config=tune.FailureConfig(max_failures=spec.retries.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        verbose=0,
        callbacks=callbacks,
        log_to_file=False,  # with reused actors Tune would warn per line; output stays in worker logs
    )


def grid_tuner(spec: StudySpec, uri: str, callbacks: list, *, restore: bool,
               log: Callable[[str], None]) -> tune.Tuner:
    """The study's Tuner: restored from ``STUDY/tune`` when asked and possible, else a new grid."""
    tune_path = join(uri, TUNE_DIR)
    if restore and tune.Tuner.can_restore(tune_path):
        tuner = tune.Tuner.restore(tune_path, trainable=trainable(spec), resume_unfinished=True,
                                   resume_errored=True)
        ray_compat.attach_callbacks(tuner, callbacks)
        return tuner
    if restore:
        log(f"study {spec.name}: no Tune state yet; starting the grid again (finished trials are skipped)")
        store = Store(uri)
        if store.exists(TUNE_DIR):
            store.delete(TUNE_DIR)
    return tune.Tuner(
        trainable(spec),
        param_space=param_space(spec, uri),
        tune_config=tune.TuneConfig(max_concurrent_trials=spec.concurrency.max_concurrent_trials,
                                    trial_dirname_creator=trial_key, trial_name_creator=trial_key,
                                    reuse_actors=True),
        run_config=run_config(spec, uri, callbacks),
    )


def fold_errors(store: Store, results, log: Callable[[str], None]) -> None:
    """Trials that Tune gave up on (retries exhausted) get a failed ``result.json`` with Tune's error."""
    for res in results or []:
        if res.error is None or not res.config:
            continue
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
