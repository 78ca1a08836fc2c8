"""The noise floor: what a perfect model scores under the same sampling protocol.

Every divergence between a finite model sample and the reference is positive even for a perfect
model, and how positive depends on the protocol (replicas, frames, frame spacing, how replicas
start). :func:`noise_floor` draws segments of the *reference's own trajectories* in the trial's
protocol (same number of replicas, same frames per replica at the same spacing, started the way
trials start) and scores them with the same :func:`score`, ``n_repeats`` times. A metric is then
read as value, floor (mean and spread) and excess over the floor (:meth:`NoiseFloor.excess`).

Segments: a replica started at reference frame ``f`` (trajectory ``t``) is the reference's own
continuation ``f, f+s, f+2s, …`` (``s`` = frame stride matching the protocol's frame interval);
when the trajectory ends too early, its time reverse ``f, f-s, …`` (an equally likely equilibrium
path); when neither fits, the window of the trajectory that holds ``f``. When the replicas are
longer than every reference trajectory, whole trajectories are used (said in ``notes``).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raycg.cv.tica import ReferenceTICA
from raycg.errors import InputError
from raycg.evaluate.config import EvalConfig
from raycg.evaluate.convergence import Convergence
from raycg.evaluate.metric_table import floor_metrics
from raycg.evaluate.reference import ReferenceSummary, prepare_reference, tica_fingerprint
from raycg.evaluate.samples import ModelSamples
from raycg.utils.io import atomic_write_json

FLOOR_FORMAT = "raycg-noise-floor"
FLOOR_VERSION = 1
START_METHODS = ("equilibrium", "kcenters", "stratified", "random")


@dataclass
class SamplingProtocol:
    """How a trial samples: replicas, saved frames per replica, their spacing, how replicas start."""

    n_replicas: int
    frames_per_replica: int
    frame_interval_ps: float
    start_method: str = "equilibrium"

    def __post_init__(self) -> None:
        if int(self.n_replicas) < 1 or int(self.frames_per_replica) < 1:
            raise InputError(f"sampling protocol needs n_replicas >= 1 and frames_per_replica >= 1, got "
                             f"{self.n_replicas} and {self.frames_per_replica}")
        if not (math.isfinite(self.frame_interval_ps) and self.frame_interval_ps > 0):
            raise InputError(f"sampling protocol frame_interval_ps must be > 0, got {self.frame_interval_ps}")
        if self.start_method not in START_METHODS:
            raise InputError(f"unknown start method {self.start_method!r}", hint=f"use one of {', '.join(START_METHODS)}")
        self.n_replicas, self.frames_per_replica = int(self.n_replicas), int(self.frames_per_replica)
        self.frame_interval_ps = float(self.frame_interval_ps)

    @property
    def replica_time_ps(self) -> float:
        return self.frames_per_replica * self.frame_interval_ps

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SamplingProtocol:
        return cls(int(d["n_replicas"]), int(d["frames_per_replica"]), float(d["frame_interval_ps"]),
                   str(d.get("start_method", "equilibrium")))


@dataclass
class FloorStat:
    """A metric over the floor's repeats: mean, standard deviation, 2.5% and 97.5% quantiles, finite count."""

    mean: float
    sd: float
    q025: float
    q975: float
    n: int

    @classmethod
    def of(cls, values: np.ndarray) -> FloorStat:
        v = np.asarray(values, np.float64)
        v = v[np.isfinite(v)]
        if len(v) == 0:
            return cls(math.nan, math.nan, math.nan, math.nan, 0)
        q = np.quantile(v, [0.025, 0.975])
        return cls(float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else math.nan, float(q[0]), float(q[1]),
                   int(len(v)))


def _num(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


@dataclass
class NoiseFloor:
    """Scores of a perfect model (the reference's own trajectories) under a :class:`SamplingProtocol`."""

    protocol: SamplingProtocol
    metrics: dict[str, FloorStat]
    n_repeats: int
    seed: int
    values: dict[str, list[float]] = field(default_factory=dict)   # per repeat
    converged_fraction: float = math.nan    # repeats whose convergence diagnostics pass (each alone)
    convergence: list[Convergence] = field(default_factory=list)  # per repeat: the diagnostics' verdict
    realized: dict[str, Any] = field(default_factory=dict)         # stride, segment frames, reversed, ...
    notes: list[str] = field(default_factory=list)
    dataset_hash: str = ""
    tica_fingerprint: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    wall_s: float = math.nan

    def excess(self, metrics: dict[str, float]) -> dict[str, float]:
        """``value − floor mean`` for every metric with a floor present in ``metrics`` (NaN when either is
        not finite). Positive = further from the reference than a perfect model for "lower" metrics;
        for "higher" metrics (coverage) a worse model has a negative excess."""
        out = {}
        for name, st in self.metrics.items():
            if name in metrics:
                v = float(metrics[name]) if metrics[name] is not None else math.nan
                out[name] = v - st.mean if math.isfinite(v) and math.isfinite(st.mean) else math.nan
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FLOOR_FORMAT, "version": FLOOR_VERSION, "protocol": self.protocol.to_dict(),
            "metrics": {k: {f: _num(x) for f, x in asdict(v).items()} for k, v in self.metrics.items()},
            "n_repeats": self.n_repeats, "seed": self.seed, "converged_fraction": _num(self.converged_fraction),
            "realized": self.realized, "notes": self.notes, "dataset_hash": self.dataset_hash,
            "tica_fingerprint": self.tica_fingerprint, "config": self.config, "wall_s": _num(self.wall_s),
            "values": {k: [_num(float(x)) for x in v] for k, v in self.values.items()},
            "convergence": [c.to_dict() for c in self.convergence],
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the floor as JSON (atomic; NaN as null)."""
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> NoiseFloor:
        path = Path(path)
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable noise floor ({exc})") from None
        if not isinstance(d, dict) or d.get("format") != FLOOR_FORMAT:
            raise InputError(f"{path}: not a raycg noise floor", hint="compute it with raycg.evaluate.noise_floor")
        if d.get("version") != FLOOR_VERSION:
            raise InputError(f"{path}: noise floor version {d.get('version')}, this raycg reads {FLOOR_VERSION}",
                             hint="compute the floor again")

        def f(x: Any) -> float:
            return math.nan if x is None else float(x)

        stats = {k: FloorStat(f(v["mean"]), f(v["sd"]), f(v["q025"]), f(v["q975"]), int(v["n"]))
                 for k, v in d["metrics"].items()}
        return cls(protocol=SamplingProtocol.from_dict(d["protocol"]), metrics=stats, n_repeats=int(d["n_repeats"]),
                   seed=int(d["seed"]), values={k: [f(x) for x in v] for k, v in d.get("values", {}).items()},
                   converged_fraction=f(d.get("converged_fraction")), realized=d.get("realized", {}),
                   notes=list(d.get("notes", [])), dataset_hash=d.get("dataset_hash", ""),
                   tica_fingerprint=d.get("tica_fingerprint", ""), config=d.get("config", {}),
                   wall_s=f(d.get("wall_s")),
                   convergence=[Convergence.from_dict(c) for c in d.get("convergence", [])])


# ----------------------------------------------------------------------------------------------
# drawing reference segments


@dataclass
class _Plan:
    stride: int
    frames: int            # frames per segment
    whole: bool            # replicas longer than every reference trajectory: whole trajectories
    notes: list[str]


def _plan(ref: ReferenceSummary, protocol: SamplingProtocol) -> _Plan:
    notes = []
    ratio = protocol.frame_interval_ps / ref.dt_frame_ps
    stride = max(1, int(round(ratio)))
    frames = protocol.frames_per_replica
    if ratio < 0.5:   # frames finer than the reference's: cover the same time with the reference's frames
        frames = max(1, int(math.ceil(protocol.replica_time_ps / ref.dt_frame_ps)))
        notes.append(f"the protocol saves every {protocol.frame_interval_ps:g} ps, finer than the reference's "
                     f"{ref.dt_frame_ps:g} ps: segments cover the same {protocol.replica_time_ps:g} ps with "
                     f"{frames} frames")
    elif abs(stride * ref.dt_frame_ps - protocol.frame_interval_ps) > 0.01 * protocol.frame_interval_ps:
        notes.append(f"frame interval {protocol.frame_interval_ps:g} ps is not a multiple of the reference's "
                     f"{ref.dt_frame_ps:g} ps: segments use every {stride}th frame ({stride * ref.dt_frame_ps:g} ps)")
    span = (frames - 1) * stride + 1
    longest = int(np.diff(ref.traj_offsets).max())
    whole = span > longest
    if whole:
        notes.append(f"replicas ({protocol.replica_time_ps:g} ps) are longer than every reference trajectory "
                     f"(longest {longest * ref.dt_frame_ps:g} ps): the floor uses whole reference trajectories, "
                     "so it is the floor of a shorter protocol (an upper bound)")
    return _Plan(stride, frames, whole, notes)


def _segment(f: int, a: int, b: int, span: int, stride: int) -> tuple[np.ndarray, str]:
    """Frame indices of a segment started at ``f`` inside trajectory ``[a, b)``."""
    if f + span <= b:
        return np.arange(f, f + span, stride), "forward"
    if f - span + 1 >= a:
        return np.arange(f, f - span, -stride), "reversed"
    if b - a >= span:
        return np.arange(b - span, b, stride), "window"
    return np.arange(a, b, stride), "short"


def _start_frames(reference, ref: ReferenceSummary, protocol: SamplingProtocol, seed: int) -> np.ndarray:
    from raycg.sim.starts import select_start_frames

    feat = ref.y[:, :2] if protocol.start_method in ("equilibrium", "stratified") else None
    return select_start_frames(reference, protocol.n_replicas, method=protocol.start_method, seed=seed,
                               features=feat, weights=ref.weights)


def draw_reference_samples(reference, ref: ReferenceSummary, protocol: SamplingProtocol, seed: int = 0
                           ) -> tuple[ModelSamples, dict[str, Any]]:
    """One perfect-model sample under ``protocol``: reference segments (module docstring), and a record
    of how they were cut (stride, frames, how many forward / reversed / window / short segments,
    fraction of distinct frames)."""
    plan = _plan(ref, protocol)
    offsets = np.asarray(ref.traj_offsets, np.int64)
    rng = np.random.default_rng(seed)
    kinds: dict[str, int] = {}
    if plan.whole:
        n_traj = len(offsets) - 1
        pick = rng.choice(n_traj, size=protocol.n_replicas, replace=protocol.n_replicas > n_traj)
        segs = [np.arange(offsets[t], offsets[t + 1], plan.stride) for t in pick]
        kinds["whole"] = len(segs)
    else:
        span = (plan.frames - 1) * plan.stride + 1
        starts = _start_frames(reference, ref, protocol, seed)
        traj = np.searchsorted(offsets, starts, side="right") - 1
        segs = []
        for f, t in zip(starts, traj):
            idx, kind = _segment(int(f), int(offsets[t]), int(offsets[t + 1]), span, plan.stride)
            segs.append(idx)
            kinds[kind] = kinds.get(kind, 0) + 1
    coords = reference.coords
    reps = []
    for s in segs:
        x = np.asarray(coords[np.sort(s)], np.float32)   # increasing indices (memory-mapped / HDF5 friendly)
        reps.append(x if s[0] <= s[-1] else x[::-1])
    allidx = np.concatenate(segs)
    record = {"stride": plan.stride, "frames_per_segment": plan.frames, "whole_trajectories": plan.whole,
              "segments": kinds, "distinct_frame_fraction": float(len(np.unique(allidx)) / len(allidx)),
              "frame_interval_ps": plan.stride * ref.dt_frame_ps}
    samples = ModelSamples.from_arrays(reps, dt_frame_ps=plan.stride * ref.dt_frame_ps, source="reference segments")
    return samples, {**record, "notes": plan.notes}


def noise_floor(reference, tica: ReferenceTICA, config: EvalConfig | None, protocol: SamplingProtocol, *,
                n_repeats: int = 30, seed: int = 0, reference_summary: ReferenceSummary | None = None) -> NoiseFloor:
    """Score ``n_repeats`` perfect-model samples (:func:`draw_reference_samples`, seeds ``seed``,
    ``seed+1``, …) with :func:`score` and the same ``config`` (no bootstrap: the repeats are the spread)."""
    from raycg.evaluate.score import score

    if n_repeats < 2:
        raise InputError(f"a noise floor needs n_repeats >= 2, got {n_repeats}")
    config = config or EvalConfig()
    t0 = time.perf_counter()
    ref = reference_summary
    if ref is None:
        ref = prepare_reference(reference, tica, config)
    else:
        ref.check_matches(reference, tica, config)
    cfg = config.model_copy(update={"bootstrap_resamples": 0})
    names = floor_metrics()
    values: dict[str, list[float]] = {m: [] for m in names}
    verdicts: list[Convergence] = []
    kinds: dict[str, int] = {}
    distinct: list[float] = []
    record: dict[str, Any] = {}
    for i in range(n_repeats):
        samples, record = draw_reference_samples(reference, ref, protocol, seed + i)
        res = score(reference, tica, samples, cfg, reference_summary=ref)
        for m in names:
            values[m].append(float(res.metrics.get(m, math.nan)))
        verdicts.append(res.convergence)
        for k, c in record["segments"].items():
            kinds[k] = kinds.get(k, 0) + c
        distinct.append(record["distinct_frame_fraction"])
    notes = record.pop("notes", [])
    record.update(segments=kinds, distinct_frame_fraction=float(np.mean(distinct)))
    return NoiseFloor(
        protocol=protocol, metrics={m: FloorStat.of(np.asarray(v)) for m, v in values.items()},
        n_repeats=n_repeats, seed=seed, values=values, converged_fraction=float(np.mean([c.converged for c in verdicts])),
        convergence=verdicts,
        realized=record, notes=notes, dataset_hash=ref.dataset_hash, tica_fingerprint=tica_fingerprint(tica),
        config=config.model_dump(mode="json"), wall_s=time.perf_counter() - t0)
