"""Prepare a CGSchNet study once: priors, reference TICA, start frames, energy targets, noise floor,
the convergence gate's power.

The reference's trajectories are split once (``reference_split.json``, ``raycg.evaluate.floor.
split_reference``: ``evaluation.floor_holdout_fraction`` of them, drawn from ``simulation.start_seed``,
held out). Trials and the floor are scored against the scoring trajectories, trial starts are drawn
from them; priors, the reference TICA and energy targets use the whole dataset. The noise floor
(``noise_floor.json``, ``raycg.evaluate.noise_floor``) scores segments of the held-out trajectories
sampled like the trials (:func:`sampling_protocol`: replicas, saved frames per replica, frame interval,
start method), ``evaluation.noise_floor_repeats`` times, and the in-sample floor
(:data:`IN_SAMPLE_REPEATS` repeats) for comparison. The gate power (``gate_power.json``,
``raycg.evaluate.gate_power``) scores such segments at 0.2, 1 and 3 × the slowest TICA timescale,
``evaluation.gate_power_repeats`` times each. Nothing is held out when neither is computed.

A ``fes-corrected`` energy target with ``base_model: priors`` (the spec's, or one arm's) adds the
prior-only base run (``correction_base.npz``/``.json``, :mod:`.correction`) and the corrected targets
computed from it.

Everything lands in ``STUDY/prepared`` with ``prepared.json``, keyed by the hash of what it
depends on (dataset content, prior settings, TICA settings, start frames; the correction settings only
for ``fes-corrected``), so an unchanged study reuses it and a resumed one skips it.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raycg.errors import ConfigError, InputError
from raycg.study import prepared
from raycg.study.keys import config_hash
from raycg.study.pipelines.cgschnet import correction
from raycg.utils.io import atomic_save_npy
from raycg.utils.provenance import provenance

if TYPE_CHECKING:
    from raycg.evaluate import SamplingProtocol
    from raycg.evaluate.floor import ReferenceSplit
    from raycg.study.spec import StudySpec
    from raycg.study.storage import Store


#: repeats of the in-sample floor computed next to a held-out one (its means, for comparison)
IN_SAMPLE_REPEATS = 30
#: run lengths of the gate power table, in multiples of the reference's slowest TICA timescale
GATE_POWER_MULTIPLES = (0.2, 1.0, 3.0)


def dataset_path(spec: StudySpec) -> Path:
    if spec.dataset == "embedded":
        from raycg.synth import embedded_dataset

        return Path(embedded_dataset())
    return Path(spec.dataset).expanduser().resolve()


def check_dataset(spec: StudySpec, *, source: str = "spec") -> None:
    """Fail early (one line) when the dataset is missing or not a raycg dataset."""
    if spec.dataset == "embedded":
        return
    p = Path(spec.dataset).expanduser()
    if not p.exists():
        raise ConfigError(f"{source}: dataset: {p} does not exist",
                          hint='give the path of a raycg CG dataset directory, or "embedded"')
    if not (p / "meta.json").is_file():
        raise ConfigError(f"{source}: dataset: {p} is not a raycg CG dataset (no meta.json)",
                          hint="convert it first with `raycg data import` or use \"embedded\"")


def sampling_protocol(spec: StudySpec) -> SamplingProtocol | None:
    """How every trial samples (replicas, saved frames, their spacing, starts); None: no saved frames."""
    from raycg.evaluate import SamplingProtocol

    sim = spec.simulation
    if sim.frames_per_replica < 1:
        return None
    return SamplingProtocol(n_replicas=sim.replicas, frames_per_replica=sim.frames_per_replica,
                            frame_interval_ps=sim.frame_interval_ps, start_method=sim.start_method)


def prepare_inputs(spec: StudySpec, data_hash: str) -> dict[str, Any]:
    """What the prepared artefacts depend on (its hash is the cache key)."""
    sim, ev = spec.simulation, spec.evaluation
    protocol = sampling_protocol(spec)
    inputs = {
        "pipeline": spec.pipeline,
        "dataset_hash": data_hash,
        "priors": spec.priors.model_dump(mode="json"),
        "tica": {"lag": ev.tica_lag, "dim": ev.tica_dim},
        "starts": {"n": sim.replicas, "method": sim.start_method, "seed": sim.start_seed},
        "noise_floor": {"repeats": ev.noise_floor_repeats, "protocol": protocol.to_dict() if protocol else None,
                        "evaluation": ev.eval_config().model_dump(mode="json"), "in_sample_repeats": IN_SAMPLE_REPEATS},
        "reference_split": {"holdout_fraction": ev.floor_holdout_fraction, "seed": sim.start_seed},
        "gate_power": {"repeats": ev.gate_power_repeats, "multiples": list(GATE_POWER_MULTIPLES)},
    }
    corrected = spec if correction.uses_correction(spec) else correction.priors_base_config(spec)
    if corrected is not None:
        inputs["correction"] = correction.prepare_key(corrected)
    return inputs


def prepare(spec: StudySpec, store: Store, *, log) -> dict[str, Any]:
    """Build (or reuse) ``STUDY/prepared``; return the contents of ``prepared.json``."""
    from raycg.data.validate import require_valid

    t0 = time.perf_counter()
    ds_path = dataset_path(spec)
    ds = require_valid(ds_path, "full", command="study prepare")  # before anything is written
    inputs = prepare_inputs(spec, ds.content_hash)
    key = config_hash(inputs)
    old = prepared.cached(store, key)
    if old:
        log(f"prepare: cached ({key}) in {store.uri(prepared.PREPARED)}")
        return old
    tmp = Path(tempfile.mkdtemp(prefix="raycg-prepare-"))
    try:
        info = {"hash": key, "inputs": inputs, **_build(spec, ds, tmp)}
        info["dataset_rel"] = None
        if store.remote:  # nodes cannot see the driver's disk: ship the dataset with the study
            shutil.copytree(ds_path, tmp / "dataset")
            info["dataset_rel"] = "dataset"
        info.update(dataset_path=str(ds_path), provenance=provenance(inputs, data_hash=ds.content_hash))
        prepared.publish(store, tmp, info)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    split = info["reference_split"]
    floor = (f", {split['method']} noise floor ({info['noise_floor']['repeats']} repeats; {split['n_holdout']} of "
             f"{split['n_holdout'] + split['n_scoring']} trajectories held out)") if info["noise_floor"] else ""
    if info.get("gate_power"):
        floor += f", gate power ({info['gate_power']['repeats']} repeats per run length)"
    targets = info.get("energy_targets") or {}
    base_info = targets if targets.get("base_file") else (targets.get("arm") or {})
    if base_info.get("base_file"):
        floor += f", fes-corrected prior-only base run ({base_info['base_wall_s']:.1f} s)"
    log(f"prepare: dataset {ds_path.name} ({ds.n_frames} frames, {ds.n_beads} beads, {ds.temperature:g} K), "
        f"priors, TICA (lag {spec.evaluation.tica_lag}), {spec.simulation.replicas} {spec.simulation.start_method} "
        f"starts{floor} in {time.perf_counter() - t0:.1f} s")
    return info


def _build(spec: StudySpec, ds, out: Path) -> dict[str, Any]:
    """Compute every artefact into ``out``; return the fields of ``prepared.json`` that describe them."""
    from raycg.cv import fit_reference_tica
    from raycg.priors import fit_priors

    times: dict[str, float] = {}
    t = time.perf_counter()
    fit_priors(ds, spec.priors).save(out / "priors.json")
    times["priors"] = time.perf_counter() - t

    t = time.perf_counter()
    tica = fit_reference_tica(ds, lag=spec.evaluation.tica_lag, dim=spec.evaluation.tica_dim)
    tica.save(out / "tica.npz")
    times["tica"] = time.perf_counter() - t

    split = reference_split(spec, ds)
    split.save(out / "reference_split.json")
    scoring = split.scoring_reference(ds)

    t = time.perf_counter()
    starts = _start_frames(spec, ds, tica, split, scoring)
    atomic_save_npy(out / "starts.npy", starts)
    atomic_save_npy(out / "start_positions.npy", np.asarray(ds.coords[starts], dtype=np.float32))
    times["starts"] = time.perf_counter() - t

    base, corrected = None, correction.priors_base_config(spec)
    if corrected is not None:
        t = time.perf_counter()
        base = _priors_base(corrected, ds, tica, out)
        times["correction_base"] = time.perf_counter() - t

    t = time.perf_counter()
    targets = _energy_targets(spec, ds, tica, out, base if corrected is spec else None)
    if corrected is not None and corrected is not spec:  # an arm's fes-corrected target on the prepared base
        targets = {**(targets or {}), "arm": _energy_targets(corrected, ds, tica, out, base)}
    if targets is not None:
        times["energy_targets"] = time.perf_counter() - t

    summary = _ScoringSummary(spec, split, scoring, tica)
    t = time.perf_counter()
    floor = _noise_floor(spec, ds, tica, out, split, summary)
    if floor is not None:
        times["noise_floor"] = time.perf_counter() - t

    t = time.perf_counter()
    power = _gate_power(spec, ds, tica, out, split, summary)
    if power is not None:
        times["gate_power"] = time.perf_counter() - t
    d = split.to_dict()
    return {
        "data_hash": ds.content_hash, "n_frames": ds.n_frames, "n_beads": ds.n_beads,
        "n_trajectories": ds.n_trajectories,
        "temperature_K": float(ds.temperature),  # what trials simulate at unless simulation.temperature_K is set
        "files": sorted(p.name for p in out.iterdir()), "energy_targets": targets, "noise_floor": floor,
        "gate_power": power,
        "reference_split": {"file": "reference_split.json", "method": d["method"], "n_scoring": d["n_scoring"],
                            "n_holdout": d["n_holdout"], "scoring_hash": scoring.content_hash},
        "tica": _tica_summary(tica),
        "max_bond_A": _max_bond(ds), "times_s": times,
    }


def reference_split(spec: StudySpec, ds) -> ReferenceSplit:
    """The study's split of the reference trajectories: ``evaluation.floor_holdout_fraction`` held out,
    drawn from ``simulation.start_seed``; nothing held out when no floor and no gate power is computed."""
    from raycg.evaluate.floor import split_reference

    ev = spec.evaluation
    wanted = sampling_protocol(spec) is not None and (ev.noise_floor_repeats != 0 or ev.gate_power_repeats > 0)
    split = split_reference(ds, ev.floor_holdout_fraction if wanted else 0.0, seed=spec.simulation.start_seed)
    if not wanted and ev.floor_holdout_fraction > 0:
        split.notes.append("no noise floor and no gate power computed: nothing held out")
    return split


class _ScoringSummary:
    """The scoring reference's summary (``raycg.evaluate.prepare_reference``), computed once on first use."""

    def __init__(self, spec: StudySpec, split, scoring, tica) -> None:
        self.config, self.scoring, self.tica = spec.evaluation.eval_config(), scoring, split.scoring_tica(tica, scoring)
        self._summary = None

    def get(self):
        from raycg.evaluate import prepare_reference

        if self._summary is None:
            self._summary = prepare_reference(self.scoring, self.tica, self.config)
        return self._summary


def _start_frames(spec: StudySpec, ds, tica, split, scoring) -> np.ndarray:
    """Start frames of the replicas (the same for every trial; frame indices of ``ds``), drawn as
    ``simulation.start_method`` says from the scoring trajectories."""
    from raycg.sim.starts import select_start_frames

    sim = spec.simulation
    features = None
    if sim.start_method in ("stratified", "equilibrium"):  # strata over the leading TICs of the study's TICA
        features = tica.transform(scoring.coords, n_components=min(2, int(tica.dim)))
    idx = select_start_frames(scoring, sim.replicas, method=sim.start_method, seed=sim.start_seed, features=features)
    idx = np.asarray(idx, dtype=np.int64)
    return ds.frames_of(split.scoring)[idx] if split.holdout else idx


def _priors_base(spec: StudySpec, ds, tica, out: Path):
    """The prior-only base run of a ``fes-corrected`` target -> ``out/correction_base.npz`` (+ ``.json``)."""
    from raycg.priors import PriorSet
    from raycg.study.pipelines.cgschnet.inputs import device_for

    starts = np.load(out / "start_positions.npy")
    priors = PriorSet.load(out / "priors.json")  # what every trial loads
    base = correction.simulate_priors_base(spec, ds, priors, tica, starts, _max_bond(ds), device=device_for(spec))
    base.save(out)
    return base


def _energy_targets(spec: StudySpec, ds, tica, out: Path, base=None) -> dict[str, Any] | None:
    """Energy targets of the spec's loss settings into ``out/targets`` (the trainer's cache format).

    ``fes-corrected`` with ``base_model: force-matched``: none (each trial's base is another trial).
    """
    from raycg.train import compute_energy_targets

    loss = spec.training.loss
    if loss.energy_target == "none":
        return None
    if correction.uses_correction(spec) and base is None:
        return {"mode": loss.energy_target, "base_model": loss.base_model, "cache_dir": None}
    kwargs: dict[str, Any] = {}
    if base is not None:
        kwargs = {"correction": base.inputs, "smooth_bins": loss.smooth_bins}
    tg = compute_energy_targets(ds, tica, loss.energy_target, n_components=loss.n_components, density=loss.density,
                                bins=loss.bins, bandwidth=loss.kde_bandwidth, cache_dir=out / "targets", **kwargs)
    info: dict[str, Any] = {"mode": loss.energy_target, "cache_dir": "targets"}
    if base is not None:
        info.update(base_model="priors", base_file=correction.BASE_FILE, base_record=correction.BASE_RECORD,
                    base_wall_s=base.record["wall_s"], offset_kcal=tg.info.get("offset_kcal"),
                    n_floored_base=tg.info.get("n_floored_base"))
    return info


def _noise_floor(spec: StudySpec, ds, tica, out: Path, split, summary: _ScoringSummary) -> dict[str, Any] | None:
    """What a perfect model scores under the trials' protocol -> ``out/noise_floor.json`` (raycg.evaluate)."""
    from raycg.evaluate import noise_floor

    protocol = sampling_protocol(spec)
    repeats = spec.evaluation.noise_floor_repeats
    if protocol is None or repeats == 0:
        return None
    kwargs = {} if repeats is None else {"n_repeats": repeats}
    floor = noise_floor(ds, tica, summary.config, protocol, seed=spec.simulation.start_seed, split=split,
                        reference_summary=summary.get(),
                        in_sample_repeats=min(IN_SAMPLE_REPEATS, repeats or IN_SAMPLE_REPEATS), **kwargs)
    floor.save(out / "noise_floor.json")
    return {"file": "noise_floor.json", "repeats": floor.n_repeats, "protocol": protocol.to_dict(),
            "method": floor.method, "in_sample_repeats": floor.in_sample["n_repeats"] if floor.in_sample else 0}


def _gate_power(spec: StudySpec, ds, tica, out: Path, split, summary: _ScoringSummary) -> dict[str, Any] | None:
    """The convergence gate's catch rates on too-short perfect-model runs -> ``out/gate_power.json``."""
    from raycg.evaluate.gate_power import gate_power

    protocol = sampling_protocol(spec)
    repeats = spec.evaluation.gate_power_repeats
    if protocol is None or repeats == 0:
        return None
    power = gate_power(ds, tica, summary.config, protocol, GATE_POWER_MULTIPLES, n_repeats=repeats,
                       seed=spec.simulation.start_seed, split=split, reference_summary=summary.get())
    power.save(out / "gate_power.json")
    return {"file": "gate_power.json", "repeats": repeats, "multiples": list(GATE_POWER_MULTIPLES),
            "method": power.method, "slowest_timescale_ps": power.slowest_timescale_ps}


def _tica_summary(tica) -> dict[str, Any]:
    return {"lag": int(tica.lag), "dim": int(tica.dim),
            "timescales_ps": [float(t) for t in np.asarray(tica.timescales_ps)[:5]]}


def _max_bond(ds) -> float | None:
    from raycg.sim.starts import max_bond_from_data

    try:
        return float(max_bond_from_data(ds))
    except InputError:
        return None
