"""The driver: validate the spec, prepare once, run the unfinished grid on Ray Tune, aggregate.

``run_study`` starts a local Ray (or joins a cluster with ``address`` / ``RAY_ADDRESS`` / under
``ray job submit``), runs the pipeline's ``prepare``, writes ``spec.yaml`` and ``study.json``,
then runs the grid on Tune (``driver/tuner.py``). The study storage is the only state: a trial's
folder ``trials/<id>/`` holds its result, attempts and checkpoints, so ``resume_study`` (after
Ctrl-C, a killed driver, a lost head, a full disk) is the same run again: a fresh Tuner over the
grid points without a final result, each trial continuing from its newest complete checkpoint.
Progress goes to ``log`` (default stderr); the results (table, verdict, report path) to ``out``
(default: ``log`` if given, else stdout).

Faults: the storage gets a real write and a free-space check before anything starts, and a study
that fails while being created (bad dataset, full disk) leaves no directory behind. While Tune
runs, the driver keeps ``driver.json`` fresh, stops with a resume hint when the storage is full
(``driver/watch.py``), and a driver that started its own Ray leaves a reaper that ends Ray's
leftovers however the driver exits (``raycg.cluster.processes``). ``resume_study`` refuses to run
next to a live driver of the same study.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

from raycg.config import dump_config, validate_config
from raycg.errors import ConfigError, InputError
from raycg.study.grid import grid_points, make_trial
from raycg.study.keys import config_hash, trial_id_for
from raycg.study.pipelines import get_pipeline
from raycg.study.preflight import preflight
from raycg.study.results import aggregate, resolve_study, study_status, trial_table
from raycg.study.results.status import driver_state
from raycg.study.spec import StudySpec, spec_from_any
from raycg.study.storage import Store, check_writable, is_storage_full, join, normalize
from raycg.study.trial.run import FINAL
from raycg.utils.provenance import provenance

Log = Callable[[str], None]


class StudyIncomplete(RuntimeError):
    """A study stopped with unfinished trials (Ctrl-C, or trials Tune could not finish); it is resumable."""

    def __init__(self, name: str, uri: str, unfinished: int, *, interrupted: bool, reason: str | None = None):
        why = f"{reason}; " if reason else ""
        super().__init__(f"study {name}: {why}stopped with {unfinished} unfinished trial(s); continue with "
                         f"`raycg study resume {uri}`")
        self.uri, self.unfinished, self.interrupted, self.reason = uri, unfinished, interrupted, reason


def log_stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def validate_study(spec: StudySpec, *, source: str = "spec") -> None:
    """Everything that can be checked before anything starts: storage, the pipeline's checks, every trial."""
    check_writable(spec.storage, where=f"{source}: storage")
    pipeline = get_pipeline(spec.pipeline)
    pipeline.validate(spec, source=source)
    for point in grid_points(spec):  # every swept value must be valid where it lands
        pipeline.check_trial(make_trial(spec, point, source=source).config, source=source)


def study_uri(spec: StudySpec) -> str:
    return join(normalize(spec.storage), spec.name)


def study_record(spec: StudySpec, uri: str, prepared: dict[str, Any] | None) -> dict[str, Any]:
    """The contents of ``study.json``: the resolved spec, its grid and trial ids, provenance."""
    points = grid_points(spec)
    data_hash = (prepared or {}).get("data_hash")
    return {
        "name": spec.name, "uri": uri,
        "spec": spec.model_dump(mode="json"), "spec_hash": config_hash(spec.model_dump(mode="json")),
        "n_trials": len(points), "trial_ids": [trial_id_for(p) for p in points], "grid": points,
        "prepared": {"hash": (prepared or {}).get("hash"), "data_hash": data_hash},
        "provenance": provenance(spec, data_hash=data_hash),
    }


def prepare_study(spec: StudySpec, uri: str, *, log: Log) -> dict[str, Any]:
    """The pipeline's ``prepare`` (cached in ``STUDY/prepared``), timed."""
    t0 = time.perf_counter()
    prepared = get_pipeline(spec.pipeline).prepare(spec, Store(uri), log=log)
    log(f"prepare: {time.perf_counter() - t0:.1f} s")
    return prepared


def create_study(spec: StudySpec, uri: str, *, log: Log = log_stderr) -> dict[str, Any]:
    """Prepare, write ``spec.yaml`` and ``study.json`` (no Ray); return the study record.

    A new study directory is removed again if this fails (a rejected dataset, a full disk, Ctrl-C):
    nothing is left that looks like a study.
    """
    store = Store(uri)
    fresh = not store.exists("")
    try:
        prepared = prepare_study(spec, uri, log=log)
        store.write_text("spec.yaml", dump_config(spec))
        record = study_record(spec, uri, prepared)
        store.write_json("study.json", record)
    except BaseException as exc:
        if fresh:
            store.delete("")
        if isinstance(exc, OSError) and is_storage_full(exc):
            raise ConfigError(f"{uri}: the disk filled up while creating the study ({exc.strerror or exc})",
                              hint="free some space and run it again") from None
        raise
    return record


def run_study(spec_or_path: StudySpec | dict | str | os.PathLike, *, address: str | None = None,
              storage: str | None = None, name: str | None = None, log: Log | None = None, out: Log | None = None,
              aggregate_results: bool = True, shutdown: bool | None = None) -> pd.DataFrame:
    """Run (or continue) a study; return the trial table (one row per trial).

    ``spec_or_path``: a :class:`StudySpec`, a mapping, or a YAML path. ``storage`` / ``name``
    override the spec's. Starts a local Ray unless ``address`` (or ``RAY_ADDRESS``) names a cluster
    or Ray is already initialised. Re-running a study with an identical spec continues it.
    Raises :class:`StudyIncomplete` when trials are left unfinished.
    """
    out = out or log or print
    log = log or log_stderr
    source = str(spec_or_path) if isinstance(spec_or_path, (str, os.PathLike)) else "spec"
    spec = spec_from_any(spec_or_path, storage=storage, name=name)
    validate_study(spec, source=source)
    preflight(spec, address=address, source=source, log=log)  # the cluster can run it: storage, resources
    uri = study_uri(spec)
    existing = Store(uri).try_read_json("study.json")
    if existing is not None:
        if existing.get("spec_hash") != config_hash(spec.model_dump(mode="json")):
            raise ConfigError(f"{source}: a different study named {spec.name!r} already exists at {uri}",
                              hint="pick another --name, or `raycg study resume` the existing one")
        log(f"study {spec.name}: exists at {uri} with the same spec; continuing it")
        return resume_study(uri, address=address, log=log, out=out, aggregate_results=aggregate_results,
                            shutdown=shutdown)
    sweeps = f" x {len(spec.grid.sweep)} sweeps" if spec.grid.sweep else ""
    groups = f"{len(spec.grid.arms)} arms" if spec.grid.arms else f"{len(spec.grid.energy_weights)} energy weights"
    log(f"study {spec.name}: {spec.grid.n_trials()} trials ({groups} x {len(spec.grid.seed_list())} seeds{sweeps})"
        f" -> {uri}")
    create_study(spec, uri, log=log)
    return _run_grid(spec, uri, address=address, restore=False, log=log, out=out,
                     aggregate_results=aggregate_results, shutdown=shutdown)


def resume_study(name_or_path: str, *, address: str | None = None, storage: str | None = None,
                 log: Log | None = None, out: Log | None = None, aggregate_results: bool = True,
                 shutdown: bool | None = None) -> pd.DataFrame:
    """Finish what is unfinished in an existing study (errored trials are retried from their checkpoints)."""
    out = out or log or print
    log = log or log_stderr
    uri = resolve_study(name_or_path, storage)
    store = Store(uri)
    record = store.read_json("study.json")
    spec = validate_config(StudySpec, record["spec"], source=f"{uri}/study.json")
    refuse_live_driver(store, spec.name)
    preflight(spec, address=address, source=uri, log=log)  # the cluster may have changed since the run
    prepare_study(spec, uri, log=log)  # cached: returns at once unless the prepared files are missing
    return _run_grid(spec, uri, address=address, restore=True, log=log, out=out,
                     aggregate_results=aggregate_results, shutdown=shutdown)


def refuse_live_driver(store: Store, name: str) -> None:
    """ConfigError when another live driver is running this study (two drivers would fight over it)."""
    d = driver_state(store)
    if d and d["alive"] and not (d.get("pid") == os.getpid() and d.get("host") == socket.gethostname()):
        raise ConfigError(f"study {name} is being run by the driver pid {d['pid']} on {d.get('host')} (last heartbeat "
                          f"{d['heartbeat_age_s']:.0f} s ago)", hint="let it finish or stop it (Ctrl-C) first; "
                          "`raycg study status` shows its progress")


def unfinished_points(spec: StudySpec, store: Store) -> list[dict[str, Any]]:
    """The grid points whose trial has no final result (``ok`` or ``failed``) in the storage."""
    out = []
    for point in grid_points(spec):
        result = store.try_read_json(f"trials/{trial_id_for(point)}/result.json")
        if not (isinstance(result, dict) and result.get("status") in FINAL):
            out.append(point)
    return out


def _run_grid(spec: StudySpec, uri: str, *, address: str | None, restore: bool, log: Log, out: Log,
              aggregate_results: bool, shutdown: bool | None) -> pd.DataFrame:
    if spec.analysis.design == "sequential":  # looks and waves instead of the whole grid at once
        from raycg.study.driver.sequential import run_sequential

        def wave(todo: list[dict[str, Any]]) -> tuple[bool, str | None]:
            return _tune_grid(spec, uri, todo, study_status(uri), address=address, log=log, shutdown=False)

        return run_sequential(spec, uri, wave, StudyIncomplete, address=address, restore=restore, log=log,
                              out=out, aggregate_results=aggregate_results, shutdown=shutdown)
    status = study_status(uri)
    todo = unfinished_points(spec, Store(uri))
    interrupted, reason = False, None
    if todo:
        if restore:
            log(f"study {spec.name}: resuming ({status['done']} done, {status['failed']} failed, "
                f"{len(todo)} to run)")
        interrupted, reason = _tune_grid(spec, uri, todo, status, address=address, log=log, shutdown=shutdown)
    status = study_status(uri)
    unfinished = status["n_trials"] - status["done"] - status["failed"]
    if todo and reason is None and unfinished > 0:
        # Tune catches Ctrl-C itself and returns normally; trials it gave up on are folded into failed
        # results, so only an interrupted run leaves unfinished ones (the CLI then exits 130)
        interrupted = True
    if interrupted or reason or unfinished > 0:  # Tune stops gracefully on Ctrl-C and saves its state
        raise StudyIncomplete(spec.name, uri, unfinished, interrupted=interrupted, reason=reason)
    if not aggregate_results:
        return trial_table(uri)
    t0 = time.perf_counter()
    try:
        table = aggregate(uri, log=out)
    except InputError as exc:  # the trials are done; the analysis declined (e.g. nothing to compare)
        log(f"analysis: {exc}")
        return trial_table(uri)
    except OSError as exc:  # the trials are done and stored; only the report could not be written
        if not is_storage_full(exc):
            raise
        log(f"analysis: the study storage is full ({exc.strerror or exc}); free some space, then "
            f"`raycg study analyze {uri}`")
        return trial_table(uri)
    log(f"aggregate: {time.perf_counter() - t0:.1f} s")
    return table


def _tune_grid(spec: StudySpec, uri: str, todo: list[dict[str, Any]], status: dict[str, Any], *,
               address: str | None, log: Log, shutdown: bool | None) -> tuple[bool, str | None]:
    """Run the ``todo`` grid points on Ray Tune; (interrupted by Ctrl-C, why it stopped early or None)."""
    from raycg.study.driver.progress import StudyProgress
    from raycg.study.driver.tuner import fold_errors, grid_tuner, start_ray
    from raycg.study.driver.watch import watch

    started = start_ray(address, log=log)
    store = Store(uri)
    heartbeat, guard = watch(store)
    progress = StudyProgress(status["n_trials"], spec.concurrency.max_concurrent_trials, log,
                             done_before=status["done"], failed_before=status["failed"])
    results, interrupted, reason, final = None, False, None, "failed"
    t0 = time.perf_counter()
    try:
        results = grid_tuner(spec, uri, todo, [progress, guard]).fit()
        final = "finished"
    except KeyboardInterrupt:
        interrupted, final = True, "interrupted"
    except Exception as exc:  # the guard's StorageFull, or Tune tripping over what a full disk truncated
        full = guard.full_after(exc)
        if full is None:
            raise
        reason, final = f"{full}; free some space", "storage full"
    finally:
        heartbeat.stop(final)
    log(f"trials: {time.perf_counter() - t0:.1f} s on Ray Tune")
    if reason is None:
        fold_errors(store, results, log)
    if shutdown or (shutdown is None and started):
        from raycg.study.driver.tuner import stop_ray

        stop_ray()
    return interrupted, reason
