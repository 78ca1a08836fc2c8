"""Running a search: each Optuna (TPE) suggestion is one ordinary raycg trial inside Ray Tune.

The trials use the replica study's trainable (same reporting, checkpoints, dashboard gauges and
retries); ASHA stops poor trials early on the per-epoch validation loss. With ``objective:
val_loss`` the trials only train; with a score metric they also run the (shortened:
``search.simulation``) simulation and score it, ASHA still judging the training epochs. The Tune
state lives next to the outputs, so running the same command again resumes an interrupted search.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

from ray import tune
from ray.tune.search.optuna import OptunaSearch

from raycg import ray_compat
from raycg.errors import ConfigError
from raycg.study.driver import study_record, validate_study
from raycg.study.driver.study import log_stderr, prepare_study
from raycg.study.driver.tuner import ensure_ray, local_ray_stopped, trainable
from raycg.study.grid import grid_point
from raycg.study.hpo.spec import (
    SearchSpec,
    hpo_from_mapping,
    hpo_study_spec,
    load_hpo_spec,
    objective_keys,
    search_uri,
)
from raycg.study.hpo.state import StateRecorder, has_state, verify_state
from raycg.study.hpo.summary import summarize
from raycg.study.keys import config_hash, trial_id_for
from raycg.study.pipelines import get_pipeline
from raycg.study.preflight import preflight
from raycg.study.spec import StudySpec
from raycg.study.storage import Store, join

TUNE_DIR = "tune"


class IntermediateOptunaSearch(OptunaSearch):
    """OptunaSearch that records the per-epoch value (so pruned trials show how far they got) and
    tolerates result rows without it (simulation and final rows)."""

    def __init__(self, *args: Any, intermediate: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._intermediate = intermediate

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        v = result.get(self._intermediate)
        ot_trial = ray_compat.optuna_trial(self, trial_id)
        if ot_trial is None or v is None or not math.isfinite(float(v)):
            return
        ot_trial.report(float(v), int(result.get("training_iteration", 0)))


class HPOProgress(tune.Callback):
    """One line per finished trial: how many are done, how many ASHA stopped, the best so far."""

    def __init__(self, log: Callable[[str], None] | None, n_total: int, final_key: str, mode: str):
        self.log, self.n_total, self.final_key, self.mode = log, n_total, final_key, mode
        self.done: dict[str, str] = {}
        self.best: tuple[float, str] | None = None

    def __getstate__(self) -> dict:  # saved with the Tune state; the printer is not worth keeping
        return {**self.__dict__, "log": None}

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        kind = ("ok" if last.get("status") == "ok" else "failed") if last.get("phase") == "done" else "stopped early"
        self.done[trial.trial_id] = kind
        v = last.get(self.final_key)
        name = trial_name(trial)
        if kind == "ok" and v is not None and math.isfinite(float(v)):
            if self.best is None or (float(v) < self.best[0] if self.mode == "min" else float(v) > self.best[0]):
                self.best = (float(v), name)
        n_stopped = sum(1 for k in self.done.values() if k == "stopped early")
        best = f"; best {self.final_key} {self.best[0]:.4g} ({self.best[1]})" if self.best else ""
        (self.log or log_stderr)(f"hpo: {len(self.done)}/{self.n_total} trials finished ({n_stopped} stopped "
                                 f"early by ASHA): {name} {kind}{best}")

    def on_trial_error(self, iteration, trials, trial, **info):
        self.done[trial.trial_id] = "errored"
        (self.log or log_stderr)(f"hpo: {trial_name(trial)} errored (retries exhausted)")


class StateDigests(tune.Callback):
    """Drives a :class:`~raycg.study.hpo.state.StateRecorder` from Tune's loop (driver side)."""

    def __init__(self, recorder: StateRecorder | None):
        self.recorder = recorder

    def __getstate__(self) -> dict:  # saved inside tuner.pkl: nothing (a resume attaches a new one)
        return {"recorder": None}

    def _record(self, force: bool = False) -> None:
        if self.recorder is not None:
            self.recorder.record(force=force)

    def on_step_end(self, iteration, trials, **info):
        self._record()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record()

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record()

    def on_experiment_end(self, trials, **info):
        self._record(force=True)


def trial_name(trial) -> str:
    return trial_id_for(grid_point(trial.config))


def _trial_dirname(trial) -> str:
    return f"{trial_name(trial)[:70]}_{trial.trial_id.split('_')[-1]}"


def _new_tuner(base: StudySpec, search: SearchSpec, uri: str, callbacks: list, log) -> tune.Tuner:
    import optuna
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    per_epoch, final_key = objective_keys(base, search)
    sampler = optuna.samplers.TPESampler(seed=search.sampler_seed,
                                         n_startup_trials=min(search.n_startup_trials, search.num_samples))
    searcher = IntermediateOptunaSearch(metric=final_key, mode=search.mode, sampler=sampler, intermediate=per_epoch)
    scheduler = FIFOScheduler()
    if search.asha.enabled:
        scheduler = ASHAScheduler(time_attr="training_iteration", metric=per_epoch, mode=search.mode,
                                  max_t=search.asha.max_t or get_pipeline(base.pipeline).epochs(base),
                                  grace_period=search.asha.grace_period,
                                  reduction_factor=search.asha.reduction_factor, stop_last_trials=False)
    space: dict[str, Any] = {"study": uri, "energy_weight": base.grid.energy_weights[0],
                             "seed": base.grid.seed_list()[0]}
    if search.trains_only:
        space["phases"] = ["train"]
    space.update({k: p.tune_domain() for k, p in search.params.items()})
    log(f"hpo {base.name}: {search.num_samples} trials, TPE (seed {search.sampler_seed}) over "
        f"{len(search.params)} parameter(s), objective {final_key} ({search.mode}), "
        f"{'ASHA on ' + per_epoch if search.asha.enabled else 'no early stopping'}, "
        f"at most {search.max_concurrent_trials} at once -> {uri}")
    return tune.Tuner(
        trainable(base), param_space=space,
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=search.num_samples,
                                    max_concurrent_trials=search.max_concurrent_trials, reuse_actors=True,
                                    trial_name_creator=trial_name, trial_dirname_creator=_trial_dirname),
        run_config=tune.RunConfig(name=TUNE_DIR, storage_path=uri, verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=base.retries.max_failures),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=2), callbacks=callbacks),
    )


def _load(spec_or_path, *, storage, name, num_samples) -> tuple[StudySpec, SearchSpec, dict[str, Any], str]:
    source = str(spec_or_path) if not isinstance(spec_or_path, dict) else "spec"
    if isinstance(spec_or_path, dict):
        spec, search, raw = hpo_from_mapping(spec_or_path, source=source, storage=storage, name=name)
    else:
        spec, search, raw = load_hpo_spec(spec_or_path, storage=storage, name=name)
    if num_samples is not None:
        search = search.model_copy(update={"num_samples": int(num_samples)})
    return spec, search, raw, source


def run_hpo(spec_or_path: str | os.PathLike | dict, *, address: str | None = None, storage: str | None = None,
            name: str | None = None, num_samples: int | None = None, export: str | None = None, log=None,
            callbacks: list | None = None, shutdown: bool | None = None) -> dict[str, Any]:
    """Run (or resume) a search; return the summary (also written to ``NAME/hpo/summary.json``).

    An interrupted search returns a summary with ``complete: false``; run it again to continue.
    Saved Tune state that raycg did not record (:mod:`raycg.study.hpo.state`) is refused (one
    ConfigError line) before anything is started or written.
    """
    log = log or log_stderr
    spec, search, raw, source = _load(spec_or_path, storage=storage, name=name, num_samples=num_samples)
    state = Store(search_uri(spec))  # checked before anything runs or is written
    trusted = verify_state(state) if has_state(state) else None
    base = hpo_study_spec(spec, search, source=source)
    validate_study(base, source=source)
    preflight(base, address=address, source=source, log=log)
    uri = search_uri(spec)
    store = Store(uri)
    key = config_hash({"spec": spec.model_dump(mode="json"),
                       "search": search.model_dump(mode="json", exclude={"num_samples"})})
    old = store.try_read_json("study.json")
    if old is not None and (old.get("kind") != "hpo" or old.get("search_hash") != key):
        raise ConfigError(f"{source}: a different study or search named {spec.name!r} already exists at {uri}",
                          hint="pick another --name, or delete the old directory")
    record = study_record(base, uri, prepare_study(base, uri, log=log))
    record.update(kind="hpo", search_hash=key, search=search.model_dump(mode="json"), source_spec=raw,
                  trial_ids=[], n_trials=search.num_samples)
    store.write_json("study.json", record)

    started = ensure_ray(address, log=log)
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"  # train/sim/final rows carry different keys
    tune_path = join(uri, TUNE_DIR)
    progress = HPOProgress(log, search.num_samples, objective_keys(base, search)[1], search.mode)
    recorder = StateRecorder(uri, trusted=trusted)
    own = [progress, StateDigests(recorder), *(callbacks or [])]
    t0 = time.time()
    try:
        if tune.Tuner.can_restore(tune_path):
            log(f"hpo {spec.name}: resuming the search in {tune_path}")
            verify_state(store)  # again, right before Tune unpickles it
            tuner = tune.Tuner.restore(tune_path, trainable=trainable(base), resume_unfinished=True,
                                       resume_errored=True)
            ray_compat.attach_callbacks(tuner, own)
        else:
            tuner = _new_tuner(base, search, uri, own, log)
            recorder.record(force=True)  # tuner.pkl, written by the Tuner
        try:
            results = tuner.fit()
        except KeyboardInterrupt:
            recorder.record(force=True)
            verify_state(store)
            results = tune.Tuner.restore(tune_path, trainable=trainable(base)).get_results()
        recorder.record(force=True)
    finally:
        if shutdown or (shutdown is None and started):
            import ray

            ray.shutdown()
            local_ray_stopped()  # the loopback-only switch of a Ray ensure_ray started
    summary = summarize(uri, spec, search, raw, results, export=export, log=log, elapsed_s=time.time() - t0)
    if not summary["complete"]:
        log(f"hpo {spec.name}: interrupted with {summary['n_finished']}/{search.num_samples} trials finished; run "
            "the same command again to continue the search")
    return summary


def summarize_existing(spec_path: str | os.PathLike, *, storage: str | None = None, name: str | None = None,
                       export: str | None = None, log=None) -> dict[str, Any]:
    """Rewrite the summary of a search from its saved Tune state (no trials run), once
    :func:`~raycg.study.hpo.state.verify_state` accepted it."""
    spec, search, raw = load_hpo_spec(spec_path, storage=storage, name=name)
    uri = search_uri(spec)
    tune_path = join(uri, TUNE_DIR)
    state = Store(uri)
    if has_state(state):
        verify_state(state)
    if not tune.Tuner.can_restore(tune_path):
        raise ConfigError(f"{spec_path}: no search state at {tune_path}", hint="run `raycg study tune SPEC` first")
    results = tune.Tuner.restore(tune_path, trainable=trainable(hpo_study_spec(spec, search))).get_results()
    return summarize(uri, spec, search, raw, results, export=export, log=log)
