"""``prepare``: the per-study work every trial shares, done once and cached by content hash.

Loads and validates the dataset (``embedded`` -> :func:`raycg.synth.embedded_dataset`), fits the
priors, fits the reference TICA, precomputes energy targets when the training package offers
it, and picks the simulation start structures. Everything lands in ``STUDY/prepared/`` with
``prepared.json`` (the content hash of its inputs, written last). A second ``prepare`` with the
same inputs returns at once.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from raycg.errors import ConfigError
from raycg.study.spec import StudySpec, config_hash
from raycg.study.storage import Store
from raycg.utils.io import atomic_save_npy, atomic_write_json
from raycg.utils.provenance import provenance

PREPARED = "prepared"


def resolve_dataset_path(spec: StudySpec) -> Path:
    """The dataset directory (generating the embedded reference on first use)."""
    if spec.dataset == "embedded":
        from raycg.synth import embedded_dataset

        return Path(embedded_dataset())
    return Path(spec.dataset).expanduser().resolve()


def check_dataset(spec: StudySpec, *, source: str = "spec") -> None:
    """Fail early (one line) when the dataset is missing or not a raycg dataset."""
    if spec.pipeline == "toy" or spec.dataset == "embedded":
        return
    p = Path(spec.dataset).expanduser()
    if not p.exists():
        raise ConfigError(f"{source}: dataset: {p} does not exist",
                          hint='give the path of a raycg CG dataset directory, or "embedded"')
    if not (p / "meta.json").is_file():
        raise ConfigError(f"{source}: dataset: {p} is not a raycg CG dataset (no meta.json)",
                          hint="convert it first with `raycg data import` or use \"embedded\"")


def prepare_inputs(spec: StudySpec, data_hash: str | None) -> dict[str, Any]:
    """What the prepared artefacts depend on (its hash is the cache key)."""
    if spec.pipeline == "toy":
        return {"pipeline": "toy"}
    sim = spec.simulation
    return {
        "pipeline": spec.pipeline,
        "dataset_hash": data_hash,
        "priors": spec.priors if isinstance(spec.priors, dict) else spec.priors.model_dump(mode="json"),
        "tica": {"lag": spec.evaluation.tica_lag, "dim": spec.evaluation.tica_dim},
        "starts": {"n": sim.replicas, "method": sim.start_method, "seed": sim.start_seed},
    }


def prepare(spec: StudySpec, study_dir: str, *, log=print) -> dict[str, Any]:
    """Build (or reuse) ``STUDY/prepared``; return the contents of ``prepared.json``."""
    store = Store(study_dir)
    if spec.pipeline == "toy":
        inputs = prepare_inputs(spec, None)
        key = config_hash(inputs)
        old = store.try_read_json(f"{PREPARED}/prepared.json")
        if old and old.get("hash") == key:
            return old
        info = {"hash": key, "inputs": inputs, "data_hash": None, "files": {},
                "provenance": provenance(inputs)}
        store.write_json(f"{PREPARED}/prepared.json", info)
        return info

    t0 = time.perf_counter()
    from raycg.data import format as dfmt

    ds_path = resolve_dataset_path(spec)
    check_dataset(spec)
    ds = dfmt.load(ds_path)
    data_hash = ds.content_hash
    inputs = prepare_inputs(spec, data_hash)
    key = config_hash(inputs)
    old = store.try_read_json(f"{PREPARED}/prepared.json")
    if old and old.get("hash") == key:
        log(f"prepare: cached ({key}) in {store.uri(PREPARED)}")
        return old

    from raycg.study import adapters

    tmp = Path(tempfile.mkdtemp(prefix="raycg-prepare-"))
    try:
        times: dict[str, float] = {}
        t = time.perf_counter()
        priors = adapters.fit_priors(ds, spec.priors)
        priors.save(tmp / "priors.json")
        times["priors"] = time.perf_counter() - t

        t = time.perf_counter()
        tica = adapters.fit_tica(ds, lag=spec.evaluation.tica_lag, dim=spec.evaluation.tica_dim)
        tica.save(tmp / "tica.npz")
        times["tica"] = time.perf_counter() - t

        t = time.perf_counter()
        starts = adapters.select_starts(ds, spec.simulation.replicas, spec.simulation.start_method,
                                        spec.simulation.start_seed)
        atomic_save_npy(tmp / "starts.npy", np.asarray(starts, dtype=np.int64))
        atomic_save_npy(tmp / "start_positions.npy", np.asarray(ds.coords[np.asarray(starts)], dtype=np.float32))
        times["starts"] = time.perf_counter() - t

        t = time.perf_counter()
        targets = adapters.precompute_targets(spec, ds, priors, tica, tmp)
        if targets is not None:
            times["energy_targets"] = time.perf_counter() - t

        files = sorted(p.name for p in tmp.iterdir())
        dataset_rel = None
        if store.remote:  # nodes cannot see the driver's disk: ship the dataset with the study
            shutil.copytree(ds_path, tmp / "dataset")
            dataset_rel = "dataset"
        info = {
            "hash": key,
            "inputs": inputs,
            "data_hash": data_hash,
            "dataset_path": str(ds_path),
            "dataset_rel": dataset_rel,
            "n_frames": ds.n_frames,
            "n_beads": ds.n_beads,
            "n_trajectories": ds.n_trajectories,
            "files": files,
            "energy_targets": targets,
            "tica": adapters.tica_summary(tica),
            "max_bond_A": adapters.max_bond(ds),
            "times_s": times,
            "provenance": provenance(inputs, data_hash=data_hash),
        }
        atomic_write_json(tmp / "prepared.json", info)
        store.upload_dir(tmp, PREPARED)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log(f"prepare: dataset {ds_path.name} ({ds.n_frames} frames, {ds.n_beads} beads), priors, TICA "
        f"(lag {spec.evaluation.tica_lag}), {spec.simulation.replicas} starts in {time.perf_counter() - t0:.1f} s")
    return info
