"""The driver: validate the spec, prepare once, run the grid on Ray Tune, aggregate.

``run_study`` starts a local Ray (or joins a cluster with ``address`` / ``RAY_ADDRESS`` / under
``ray job submit``), writes ``spec.yaml`` and ``study.json``, runs the pipeline's ``prepare``,
then the grid on Tune (``driver/tuner.py``); ``resume_study`` restores the Tune experiment in
``STUDY/tune`` after Ctrl-C, a killed driver or a lost head. Progress goes to ``log`` (default
stderr); the results (table, verdict, report path) to ``out`` (default: ``log`` if given, else stdout).
"""

from __future__ import annotations

import os
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
from raycg.study.spec import StudySpec, spec_from_any
from raycg.study.storage import Store, check_writable, join, normalize
from raycg.utils.provenance import provenance

Log = Callable[[str], None]


class StudyIncomplete(RuntimeError):
    """A study stopped with unfinished trials (Ctrl-C, or trials Tune could not finish); it is resumable."""

    def __init__(self, name: str, uri: str, unfinished: int, *, interrupted: bool):
        super().__init__(f"study {name}: stopped with {unfinished} unfinished trial(s); continue with "
                         f"`raycg study resume {uri}`")
        self.uri, self.unfinished, self.interrupted = uri, unfinished, interrupted


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
    """Write ``spec.yaml``, prepare, write ``study.json`` (no Ray); return the study record."""
    store = Store(uri)
    store.write_text("spec.yaml", dump_config(spec))
    record = study_record(spec, uri, prepare_study(spec, uri, log=log))
    store.write_json("study.json", record)
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
    log(f"study {spec.name}: {spec.grid.n_trials()} trials ({len(spec.grid.energy_weights)} energy weights x "
        f"{len(spec.grid.seed_list())} seeds{sweeps}) -> {uri}")
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
    spec = validate_config(StudySpec, Store(uri).read_json("study.json")["spec"], source=f"{uri}/study.json")
    preflight(spec, address=address, source=uri, log=log)  # the cluster may have changed since the run
    prepare_study(spec, uri, log=log)  # cached: returns at once unless the prepared files are missing
    return _run_grid(spec, uri, address=address, restore=True, log=log, out=out,
                     aggregate_results=aggregate_results, shutdown=shutdown)


def _run_grid(spec: StudySpec, uri: str, *, address: str | None, restore: bool, log: Log, out: Log,
              aggregate_results: bool, shutdown: bool | None) -> pd.DataFrame:
    status = study_status(uri)
    todo = status["n_trials"] - status["done"] - status["failed"]
    interrupted = False
    if todo > 0:
        if restore:
            log(f"study {spec.name}: resuming ({status['done']} done, {status['failed']} failed, {todo} to run)")
        interrupted = _tune_grid(spec, uri, status["n_trials"], address=address, restore=restore, log=log,
                                 shutdown=shutdown)
    status = study_status(uri)
    unfinished = status["n_trials"] - status["done"] - status["failed"]
    if interrupted or unfinished > 0:  # Tune stops gracefully on Ctrl-C and saves its state
        raise StudyIncomplete(spec.name, uri, unfinished, interrupted=interrupted)
    if not aggregate_results:
        return trial_table(uri)
    t0 = time.perf_counter()
    try:
        table = aggregate(uri, log=out)
    except InputError as exc:  # the trials are done; the analysis declined (e.g. nothing to compare)
        log(f"analysis: {exc}")
        return trial_table(uri)
    log(f"aggregate: {time.perf_counter() - t0:.1f} s")
    return table


def _tune_grid(spec: StudySpec, uri: str, n_trials: int, *, address: str | None, restore: bool, log: Log,
               shutdown: bool | None) -> bool:
    """Run the unfinished trials on Ray Tune; True if interrupted (Ctrl-C)."""
    from raycg.study.driver.progress import StudyProgress
    from raycg.study.driver.tuner import ensure_ray, fold_errors, grid_tuner

    t0 = time.perf_counter()
    started = ensure_ray(address, log=log)
    if started:
        log(f"ray: up in {time.perf_counter() - t0:.1f} s")
    progress = StudyProgress(n_trials, spec.concurrency.max_concurrent_trials, log)
    tuner = grid_tuner(spec, uri, [progress], restore=restore, log=log)
    results, interrupted = None, False
    t0 = time.perf_counter()
    try:
        results = tuner.fit()
    except KeyboardInterrupt:
        interrupted = True
    log(f"trials: {time.perf_counter() - t0:.1f} s on Ray Tune")
    fold_errors(Store(uri), results, log)
    if shutdown or (shutdown is None and started):
        import ray

        ray.shutdown()
    return interrupted
