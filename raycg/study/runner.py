"""The driver: validate the spec, prepare once, run the grid on Ray Tune, aggregate.

``run_study`` starts a local Ray (or joins a cluster with ``address`` / ``RAY_ADDRESS`` / under
``ray job submit``), writes ``spec.yaml`` and ``study.json``, runs :func:`raycg.study.prepare`,
then a ``Tuner`` over the grid with per-trial resources, retries and concurrency; the Tune
experiment lives in ``STUDY/tune`` inside the study storage, so ``resume_study`` can restore it
(``Tuner.restore(..., resume_errored=True)``) after Ctrl-C, a killed driver or a lost head.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from raycg.config import dump_config
from raycg.errors import ConfigError
from raycg.study.spec import StudySpec, config_hash, grid_points, spec_from_any, trial_config, trial_id_for
from raycg.study.storage import Store, check_writable, is_remote, join, normalize
from raycg.utils.provenance import provenance

TUNE_DIR = "tune"
FINAL = ("ok", "failed")


# --- validation ---------------------------------------------------------------------------------
def validate_study(spec: StudySpec, *, source: str = "spec") -> None:
    """Everything that can be checked before anything starts (storage, dataset, stage configs)."""
    from raycg.study.prepare import check_dataset

    check_writable(spec.storage, where=f"{source}: storage")
    check_dataset(spec, source=source)
    if spec.pipeline == "toy":
        from raycg.study.pipelines import toy_settings

        for point in grid_points(spec)[:1]:
            toy_settings(trial_config(spec, point))
        return
    from raycg.study import adapters

    for point in grid_points(spec):  # every swept value must be valid for the stage configs
        adapters.check_trial_config(trial_config(spec, point), source=source)


def study_uri(spec: StudySpec) -> str:
    return join(normalize(spec.storage), spec.name)


# --- Ray ------------------------------------------------------------------------------------------
def _ensure_ray(address: str | None, *, log) -> bool:
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
    else:
        temp = os.environ.get("RAYCG_RAY_TEMP_DIR")
        if temp:
            kwargs["_temp_dir"] = temp
        num_cpus = os.environ.get("RAYCG_RAY_NUM_CPUS")
        if num_cpus:
            kwargs["num_cpus"] = int(num_cpus)
        log("ray: starting a local Ray instance (use --address or RAY_ADDRESS to join a cluster)")
        ray.init(address="local", object_store_memory=int(os.environ.get("RAYCG_RAY_OBJECT_STORE", 200 * 2**20)),
                 **kwargs)
    return True


def _resources(spec: StudySpec) -> dict[str, float]:
    res: dict[str, float] = {"cpu": float(spec.resources.cpus)}
    if spec.resources.gpu > 0:
        res["gpu"] = float(spec.resources.gpu)
    res.update(spec.resources.extra)
    return res


def _trainable(spec: StudySpec):
    from ray import tune

    from raycg.study.trial import run_trial

    return tune.with_resources(run_trial, _resources(spec))


def _param_space(spec: StudySpec, uri: str) -> dict[str, Any]:
    from ray import tune

    space: dict[str, Any] = {
        "study": uri,
        "energy_weight": tune.grid_search([float(w) for w in spec.grid.energy_weights]),
        "seed": tune.grid_search(spec.grid.seed_list()),
    }
    for key, values in spec.grid.sweep.items():
        space[key] = tune.grid_search(list(values))
    return space


def _dirname(trial) -> str:
    from raycg.study.trial import grid_point

    return trial_id_for(grid_point(trial.config))


def _run_config(spec: StudySpec, uri: str, callbacks: list):
    from ray import tune

    return tune.RunConfig(
        name=TUNE_DIR,
        storage_path=uri,
        failure_config=tune.FailureConfig(max_failures=spec.retries.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        verbose=0,
        callbacks=callbacks,
        log_to_file=False,  # with reused actors Tune would warn per line; output stays in worker logs
    )


# --- progress -----------------------------------------------------------------------------------
def _make_progress_callback(n_total: int, concurrency: int | None, log, interval_s: float = 15.0):
    return _new_progress(n_total, concurrency, log, interval_s)


def _build_progress_class():
    from ray import tune

    class _StudyProgress(tune.Callback):
        """One line per change (or every ``interval_s``): done / running / failed, and the ETA."""

        def __init__(self, n_total, concurrency, log, interval_s):
            self.n_total, self.concurrency, self.log, self.interval_s = n_total, concurrency, log, interval_s
            self.t0 = time.time()
            self.progress: dict[str, float] = {}
            self.final: dict[str, str] = {}
            self.started: dict[str, float] = {}
            self.durations: list[float] = []
            self.last_line: tuple = ()
            self.last_t = 0.0

        def __reduce__(self):  # saved with the Tune state; restored as a fresh printer
            return (_new_progress, (self.n_total, self.concurrency, None, self.interval_s))

        def _key(self, trial) -> str:
            return _dirname(trial)

        def on_trial_start(self, iteration, trials, trial, **info):
            self.started.setdefault(self._key(trial), time.time())
            self._print(trials)

        def on_trial_restore(self, iteration, trials, trial, **info):
            self._print(trials, note=f"{self._key(trial)} restored from its checkpoint")

        def on_trial_recover(self, iteration, trials, trial, **info):
            self._print(trials, note=f"{self._key(trial)} failed; retrying from its last checkpoint")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            key = self._key(trial)
            self.progress[key] = float(result.get("progress", 0.0) or 0.0)
            if result.get("phase") == "done":
                self.final[key] = str(result.get("status", "ok"))
                if key in self.started:
                    self.durations.append(time.time() - self.started[key])
            self._print(trials)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._print(trials)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.final[self._key(trial)] = "failed"
            self._print(trials, note=f"{self._key(trial)} errored (retries exhausted)")

        def on_step_end(self, iteration, trials, **info):
            if time.time() - self.last_t > self.interval_s:
                self._print(trials, force=True)

        def _print(self, trials, note: str = "", force: bool = False):
            keys = [self._key(t) for t in trials]
            for t, k in zip(trials, keys):
                last = getattr(t, "last_result", None) or {}
                if k not in self.final and t.status == "TERMINATED" and last.get("phase") == "done":
                    self.final[k] = str(last.get("status", "ok"))
                elif k not in self.final and t.status == "ERROR":
                    self.final[k] = "failed"
            done = sum(1 for k in keys if self.final.get(k) == "ok")
            failed = sum(1 for k in keys if self.final.get(k) == "failed")
            running = sum(1 for t in trials if t.status == "RUNNING" and self._key(t) not in self.final)
            pending = max(0, self.n_total - done - failed - running)
            eta = _eta(self.t0, self.n_total, {k: self.progress.get(k, 0.0) for k in keys}, self.final,
                       self.durations, running, self.concurrency)
            line = (f"trials: {done}/{self.n_total} done, {running} running, {failed} failed, {pending} pending"
                    f"; elapsed {_fmt_s(time.time() - self.t0)}; ETA {_fmt_s(eta)}")
            log = self.log or _print_err
            if note:
                log(f"  {note}")
            counts = (done, running, failed, pending)
            if counts != self.last_line or force:
                log(line)
                self.last_line, self.last_t = counts, time.time()

    return _StudyProgress


_PROGRESS_CLASS = None


def _new_progress(n_total, concurrency, log, interval_s):
    global _PROGRESS_CLASS
    if _PROGRESS_CLASS is None:
        _PROGRESS_CLASS = _build_progress_class()
    return _PROGRESS_CLASS(n_total, concurrency, log, interval_s)


def _eta(t0: float, n_total: int, progress: dict[str, float], final: dict[str, str], durations: list[float],
         running: int, concurrency: int | None) -> float:
    remaining = sum(1.0 - min(1.0, progress.get(k, 0.0)) for k in progress if k not in final)
    remaining += max(0, n_total - len(progress) - sum(1 for k in final if k not in progress))
    if remaining <= 0:
        return 0.0
    per_trial = sum(durations) / len(durations) if durations else None
    if per_trial is None:
        done_work = sum(min(1.0, p) for k, p in progress.items() if k not in final)
        elapsed = time.time() - t0
        if done_work <= 0.05:
            return float("nan")
        per_trial = elapsed * max(1, running) / done_work
    slots = max(1, running, concurrency or 0) if running else max(1, concurrency or 1)
    return remaining * per_trial / slots


def _fmt_s(s: float) -> str:
    if s is None or not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}h{(s % 3600) // 60:02d}m" if s >= 3600 else (f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s")


# --- study records ----------------------------------------------------------------------------------
def _study_record(spec: StudySpec, uri: str, prepared: dict[str, Any] | None) -> dict[str, Any]:
    points = grid_points(spec)
    return {
        "name": spec.name,
        "uri": uri,
        "spec": spec.model_dump(mode="json"),
        "spec_hash": config_hash(spec.model_dump(mode="json")),
        "n_trials": len(points),
        "trial_ids": [trial_id_for(p) for p in points],
        "grid": points,
        "prepared": {"hash": (prepared or {}).get("hash"), "data_hash": (prepared or {}).get("data_hash")},
        "provenance": provenance(spec, data_hash=(prepared or {}).get("data_hash")),
    }


def _fold_errors(store: Store, results, log) -> None:
    """Trials that Tune gave up on (retries exhausted) get a failed ``result.json`` with Tune's error."""
    if results is None:
        return
    from raycg.study.trial import grid_point
    from raycg.utils.provenance import provenance as prov

    for res in results:
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
                               "failed_phase": None, "config": point, "metrics": {}, "runtime_s": None,
                               "stage_times": {}, "provenance": prov(point)})
        log(f"  {tid}: failed ({reason[:120]})")


# --- public API -----------------------------------------------------------------------------------
def run_study(spec_or_path: StudySpec | dict | str | os.PathLike, *, address: str | None = None,
              storage: str | None = None, name: str | None = None, log=None, aggregate_results: bool = True,
              shutdown: bool | None = None) -> pd.DataFrame:
    """Run (or continue) a study; return the trial table (one row per trial).

    ``spec_or_path``: a :class:`StudySpec`, a mapping, or a YAML path. ``storage`` / ``name``
    override the spec's. Starts a local Ray unless ``address`` (or ``RAY_ADDRESS``) names a cluster
    or Ray is already initialised. Re-running a study with an identical spec continues it.
    """
    log = log or _print_err
    source = str(spec_or_path) if isinstance(spec_or_path, (str, os.PathLike)) else "spec"
    spec = spec_from_any(spec_or_path, storage=storage, name=name)
    validate_study(spec, source=source)
    from raycg.study.preflight import preflight  # the cluster can run it: shared storage, resources

    preflight(spec, address=address, source=source, log=log)
    uri = study_uri(spec)
    store = Store(uri)
    existing = store.try_read_json("study.json")
    if existing is not None:
        if existing.get("spec_hash") != config_hash(spec.model_dump(mode="json")):
            raise ConfigError(f"{source}: a different study named {spec.name!r} already exists at {uri}",
                              hint="pick another --name, or `raycg study resume` the existing one")
        log(f"study {spec.name}: exists at {uri} with the same spec; continuing it")
        return resume_study(uri, address=address, log=log, aggregate_results=aggregate_results, shutdown=shutdown)

    store.write_text("spec.yaml", dump_config(spec))
    log(f"study {spec.name}: {spec.grid.n_trials()} trials ({len(spec.grid.energy_weights)} energy weights x "
        f"{len(spec.grid.seed_list())} seeds" + (f" x {len(spec.grid.sweep)} sweeps" if spec.grid.sweep else "")
        + f") -> {uri}")
    from raycg.study.prepare import prepare

    t0 = time.perf_counter()
    prepared = prepare(spec, uri, log=log)
    log(f"prepare: {time.perf_counter() - t0:.1f} s")
    store.write_json("study.json", _study_record(spec, uri, prepared))
    return _fit(spec, uri, address=address, restore=False, log=log, aggregate_results=aggregate_results,
                shutdown=shutdown)


def resolve_study(name_or_path: str, storage: str | None = None) -> str:
    """A study's URI from a path/URI or a name (looked up under ``storage`` or ``./runs``, ``./results``)."""
    cands = []
    if is_remote(name_or_path) or os.sep in name_or_path or Path(name_or_path).exists():
        cands.append(normalize(name_or_path))
    bases = [storage] if storage else [os.environ.get("RAYCG_STORAGE") or "", "./runs", "./results"]
    for base in bases:
        if base:
            cands.append(join(normalize(base), name_or_path))
    for c in cands:
        if Store(c).exists("study.json"):
            return c
    raise ConfigError(f"study {name_or_path!r} not found (looked in: {', '.join(cands)})",
                      hint="give the study directory, or --storage where it lives")


def resume_study(name_or_path: str, *, address: str | None = None, storage: str | None = None, log=None,
                 aggregate_results: bool = True, shutdown: bool | None = None) -> pd.DataFrame:
    """Finish what is unfinished in an existing study (errored trials are retried from their checkpoints)."""
    log = log or _print_err
    uri = resolve_study(name_or_path, storage)
    store = Store(uri)
    study = store.read_json("study.json")
    spec = StudySpec.model_validate(study["spec"])
    from raycg.study.preflight import preflight
    from raycg.study.prepare import prepare

    preflight(spec, address=address, source=uri, log=log)  # the cluster may have changed since the run
    prepare(spec, uri, log=log)  # cached: returns at once unless the prepared files are missing
    return _fit(spec, uri, address=address, restore=True, log=log, aggregate_results=aggregate_results,
                shutdown=shutdown)


def _fit(spec: StudySpec, uri: str, *, address, restore: bool, log, aggregate_results: bool,
         shutdown: bool | None) -> pd.DataFrame:
    store = Store(uri)
    status = study_status(uri)
    todo = status["n_trials"] - status["done"] - status["failed"]
    started = False
    interrupted = False
    if todo > 0:
        t0 = time.perf_counter()
        started = _ensure_ray(address, log=log)
        if started:
            log(f"ray: up in {time.perf_counter() - t0:.1f} s")
        from ray import tune

        callback = _make_progress_callback(status["n_trials"], spec.concurrency.max_concurrent_trials, log)
        tune_path = join(uri, TUNE_DIR)
        tuner = None
        if restore and tune.Tuner.can_restore(tune_path):
            log(f"study {spec.name}: resuming ({status['done']} done, {status['failed']} failed, {todo} to run)")
            tuner = tune.Tuner.restore(tune_path, trainable=_trainable(spec), resume_unfinished=True,
                                       resume_errored=True)
            # callbacks are not part of the saved state: attach ours to the restored run config
            tuner._local_tuner._run_config.callbacks = [callback]
            tuner._local_tuner._run_config.verbose = 0
        else:
            if restore:
                log(f"study {spec.name}: no Tune state yet; starting the grid again (finished trials are skipped)")
                if store.exists(TUNE_DIR):
                    store.delete(TUNE_DIR)
            tuner = tune.Tuner(
                _trainable(spec),
                param_space=_param_space(spec, uri),
                tune_config=tune.TuneConfig(max_concurrent_trials=spec.concurrency.max_concurrent_trials,
                                            trial_dirname_creator=_dirname, trial_name_creator=_dirname,
                                            reuse_actors=True),
                run_config=_run_config(spec, uri, [callback]),
            )
        results = None
        t0 = time.perf_counter()
        try:
            results = tuner.fit()
        except KeyboardInterrupt:
            interrupted = True
        log(f"trials: {time.perf_counter() - t0:.1f} s on Ray Tune")
        _fold_errors(store, results, log)
        if shutdown or (shutdown is None and started):
            import ray

            ray.shutdown()
    status = study_status(uri)
    unfinished = status["n_trials"] - status["done"] - status["failed"]
    if interrupted or unfinished > 0:
        # Tune stops gracefully on Ctrl-C and saves its state: the study is resumable
        log(f"study {spec.name}: stopped with {unfinished} unfinished trial(s); continue with "
            f"`raycg study resume {uri}`")
        raise KeyboardInterrupt
    t0 = time.perf_counter()
    table = aggregate(uri, log=log) if aggregate_results and unfinished == 0 else trial_table(uri)
    log(f"aggregate: {time.perf_counter() - t0:.1f} s")
    return table


# --- status -----------------------------------------------------------------------------------------
def study_status(name_or_path: str, *, storage: str | None = None, stale_s: float = 300.0) -> dict[str, Any]:
    """Counts (done / failed / running / pending) and an ETA, read from the study storage alone."""
    uri = resolve_study(name_or_path, storage) if not Store(normalize(name_or_path)).exists("study.json") \
        else normalize(name_or_path)
    store = Store(uri)
    study = store.read_json("study.json")
    spec = study["spec"]
    now = time.time()
    trials = []
    runtimes = []
    for tid in study["trial_ids"]:
        res = store.try_read_json(f"trials/{tid}/result.json")
        st = store.try_read_json(f"trials/{tid}/status.json") or {}
        if res and res.get("status") in FINAL:
            state = "done" if res["status"] == "ok" else "failed"
            if res.get("runtime_s"):
                runtimes.append(float(res["runtime_s"]))
            trials.append({"trial_id": tid, "state": state, "progress": 1.0, "error": res.get("error")})
        elif st and now - float(st.get("updated_unix", 0)) < stale_s:
            trials.append({"trial_id": tid, "state": "running", "progress": float(st.get("progress", 0.0)),
                           "phase": st.get("phase"), "error": None})
        else:
            trials.append({"trial_id": tid, "state": "pending" if not st else "stalled",
                           "progress": float(st.get("progress", 0.0)) if st else 0.0, "error": None})
    counts = {s: sum(1 for t in trials if t["state"] == s) for s in ("done", "failed", "running", "pending", "stalled")}
    conc = (spec.get("concurrency") or {}).get("max_concurrent_trials") or max(1, counts["running"])
    remaining = sum(1.0 - t["progress"] for t in trials if t["state"] not in ("done", "failed"))
    eta = (remaining * (sum(runtimes) / len(runtimes)) / max(1, conc)) if runtimes else float("nan")
    if remaining == 0:
        eta = 0.0
    return {"name": study["name"], "uri": uri, "n_trials": study["n_trials"], **counts, "eta_s": eta,
            "trials": trials, "report": join(uri, "results", "report.md")
            if store.exists("results/report.md") else None}


def format_status(st: dict[str, Any]) -> str:
    lines = [f"study {st['name']} ({st['uri']})",
             f"trials: {st['done']}/{st['n_trials']} done, {st['running']} running, {st['failed']} failed, "
             f"{st['pending'] + st['stalled']} pending; ETA {_fmt_s(st['eta_s'])}"]
    for t in st["trials"]:
        extra = f" ({t.get('phase')}, {100 * t['progress']:.0f}%)" if t["state"] == "running" else ""
        err = f": {t['error']}" if t.get("error") else ""
        lines.append(f"  {t['trial_id']:<28} {t['state']}{extra}{err}")
    if st.get("report"):
        lines.append(f"report: {st['report']}")
    return "\n".join(lines)


# --- aggregation --------------------------------------------------------------------------------------
def trial_table(name_or_path: str) -> pd.DataFrame:
    """One row per trial from the ``result.json`` files (config columns, status, error, metrics)."""
    uri = normalize(name_or_path) if Store(normalize(name_or_path)).exists("study.json") else resolve_study(name_or_path)
    local = _local_copy(uri)
    try:
        from raycg.report import trial_table as report_table

        return report_table(local)
    except ImportError:
        return _own_trial_table(Store(uri))


def _own_trial_table(store: Store) -> pd.DataFrame:
    study = store.read_json("study.json")
    rows = []
    for tid, point in zip(study["trial_ids"], study["grid"]):
        res = store.try_read_json(f"trials/{tid}/result.json") or {}
        row = {"trial_id": tid, **point, "status": res.get("status", "unfinished"), "error": res.get("error"),
               "runtime_s": res.get("runtime_s")}
        row.update(res.get("metrics", {}))
        rows.append(row)
    return pd.DataFrame(rows)


def _local_copy(uri: str) -> str:
    """A local directory with the study's files (the study itself when storage is local)."""
    if not is_remote(uri):
        return uri
    import hashlib

    from raycg.study.storage import node_cache_dir

    store = Store(uri)
    dest = node_cache_dir() / "studies" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    for rel in ("study.json", "spec.yaml"):
        if store.exists(rel):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(store.read_bytes(rel))
    for tid in store.listdir("trials"):
        for f in ("result.json", "config.json", "scores.json", "fes.npz"):
            rel = f"trials/{tid}/{f}"
            if store.exists(rel):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                (dest / rel).write_bytes(store.read_bytes(rel))
    return str(dest)


def aggregate(name_or_path: str, *, log=None) -> pd.DataFrame:
    """Run the statistics and the report over all finished trials; return the trial table.

    Writes ``STUDY/results/`` (trials.parquet, summary.csv, report.md, figures/) through
    :func:`raycg.report.analyze`, and prints the table, the verdict and the report path.
    """
    log = log or _print_err
    uri = normalize(name_or_path) if Store(normalize(name_or_path)).exists("study.json") else resolve_study(name_or_path)
    local = _local_copy(uri)
    table = trial_table(uri)
    try:
        from raycg.report.analyze import run_analysis
    except ImportError:
        run_analysis = None
    report_path, verdict = None, None
    study = Store(uri).try_read_json("study.json") or {}
    metrics = ((study.get("spec") or {}).get("evaluation") or {}).get("metrics") or None
    if metrics:
        metrics = [m for m in metrics if m in set(table.columns)] or None
    if run_analysis is not None:
        analysis = run_analysis(local, metrics)
        report_path, verdict = Path(analysis.report), analysis.verdict
        if is_remote(uri):
            Store(uri).upload_dir(Path(local) / "results", "results")
    else:
        from raycg.utils.io import atomic_path

        res_dir = Path(local) / "results"
        res_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(res_dir / "trials.parquet") as tmp:
            table.to_parquet(tmp)
        log("aggregate: raycg.report is not installed; wrote results/trials.parquet only")
    _print_table(table, log, metrics)
    if verdict:
        log("verdict:")
        log(verdict)
    if report_path is not None:
        log(f"report: {join(uri, 'results', Path(report_path).name) if is_remote(uri) else report_path}")
    return table


HEADLINE_METRICS = ("kl_ref_model", "js_divergence", "w1", "fes_mse", "folded_fraction_model",
                    "folding_transition_rate_log_ratio_abs")


def _print_table(table: pd.DataFrame, log, metrics: list[str] | None = None) -> None:
    if table.empty:
        return
    cols = [c for c in ("trial_id", "energy_weight", "seed", "status") if c in table.columns]
    wanted = list(metrics or []) + [m for m in HEADLINE_METRICS if m not in (metrics or [])]
    metric_cols = [c for c in wanted if c in table.columns][:6]
    if not metric_cols:
        metric_cols = [c for c in table.columns if c not in cols and pd.api.types.is_numeric_dtype(table[c])][:6]
    show = table[cols + metric_cols].copy()
    if "error" in table.columns and (table.get("status") == "failed").any():
        show["error"] = table["error"].fillna("").astype(str).str.slice(0, 60)
    with pd.option_context("display.width", 200, "display.max_columns", 14, "display.float_format", "{:.4g}".format):
        log(show.to_string(index=False))


def _print_err(msg: str) -> None:
    print(msg, file=sys.stdout, flush=True)
