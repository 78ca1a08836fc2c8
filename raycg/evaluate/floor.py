"""The noise floor: what a perfect model scores under the same sampling protocol.

:func:`noise_floor` cuts segments of the reference's own trajectories in the trials' protocol (replicas,
frames per replica, frame spacing, starts), scores them with :func:`score` ``n_repeats`` times, and
reads every metric as value, floor and excess (:meth:`NoiseFloor.excess`). With a
:class:`ReferenceSplit` (:func:`split_reference`) the floor's segments come only from held-out
trajectories; without one the floor is in-sample. How segments are cut: docs/architecture.md
("raycg.evaluate.floor").
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raycg.cv.tica import ReferenceTICA
from raycg.errors import InputError
from raycg.evaluate.config import EvalConfig
from raycg.evaluate.convergence import Convergence
from raycg.evaluate.metric_table import floor_metrics
from raycg.evaluate.projection import project
from raycg.evaluate.reference import ReferenceSummary, prepare_reference, tica_fingerprint
from raycg.evaluate.samples import ModelSamples
from raycg.utils.io import atomic_write_json, read_record

if TYPE_CHECKING:
    from raycg.data.format import CGDataset

FLOOR_FORMAT = "raycg-noise-floor"
FLOOR_VERSION = 1
START_METHODS = ("equilibrium", "kcenters", "stratified", "random")
SPLIT_FORMAT = "raycg-reference-split"
SPLIT_VERSION = 1
FLOOR_METHODS = ("in-sample", "held-out")
#: mixed into the split's seed so that it draws independently of other uses of the same seed
_SPLIT_KEY = 0x5EED_F100


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
            raise InputError(f"unknown start method {self.start_method!r}",
                             hint=f"use one of {', '.join(START_METHODS)}")
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
class ReferenceSplit:
    """A reference's trajectories split into the scoring reference and the held-out floor trajectories.

    ``scoring`` and ``holdout`` are sorted trajectory indices of the full dataset; ``holdout`` empty
    means in-sample (the scoring reference is the whole dataset and floor segments come from it)."""

    scoring: list[int]
    holdout: list[int]
    fraction: float
    seed: int
    dataset_hash: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def method(self) -> str:
        return "held-out" if self.holdout else "in-sample"

    def scoring_reference(self, dataset: CGDataset) -> CGDataset:
        """The dataset every trial and the floor are scored against (``dataset`` itself when in-sample)."""
        return dataset.subset(self.scoring) if self.holdout else dataset

    def floor_reference(self, dataset: CGDataset) -> CGDataset:
        """The dataset the floor's segments are cut from (``dataset`` itself when in-sample)."""
        return dataset.subset(self.holdout) if self.holdout else dataset

    def scoring_tica(self, tica: ReferenceTICA, scoring: CGDataset) -> ReferenceTICA:
        """The whole dataset's ``tica`` as the TICA of the ``scoring`` reference (a subset of it): a copy
        whose ``dataset_hash`` is the scoring reference's (the fitted dataset's hash is kept in
        ``extra["fitted_dataset_hash"]``); same projection and fingerprint. ``tica`` unchanged when in-sample,
        already the scoring reference's, or fitted on another dataset (scoring then refuses it)."""
        h = scoring.content_hash
        if not self.holdout or not tica.dataset_hash or tica.dataset_hash == h:
            return tica
        if self.dataset_hash and tica.dataset_hash != self.dataset_hash:
            return tica
        return dataclasses.replace(tica, dataset_hash=h,
                                   extra={**tica.extra, "fitted_dataset_hash": tica.dataset_hash})

    def to_dict(self) -> dict[str, Any]:
        return {"format": SPLIT_FORMAT, "version": SPLIT_VERSION, "method": self.method,
                "holdout_fraction": self.fraction, "seed": self.seed, "dataset_hash": self.dataset_hash,
                "n_scoring": len(self.scoring), "n_holdout": len(self.holdout),
                "scoring_trajectories": list(self.scoring), "holdout_trajectories": list(self.holdout),
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReferenceSplit:
        return cls([int(t) for t in d["scoring_trajectories"]], [int(t) for t in d["holdout_trajectories"]],
                   float(d["holdout_fraction"]), int(d["seed"]), str(d.get("dataset_hash", "")),
                   list(d.get("notes", [])))

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReferenceSplit:
        d = read_record(path, SPLIT_FORMAT, SPLIT_VERSION, "reference split",
                        "make it with raycg.evaluate.split_reference")
        return cls.from_dict(d)


def split_reference(reference: CGDataset | int, fraction: float = 1 / 3, seed: int = 0) -> ReferenceSplit:
    """Hold out ``round(fraction × trajectories)`` whole trajectories of ``reference`` (a dataset, or a
    trajectory count) for the floor, at least one and leaving at least one to score against; random,
    deterministic for ``seed``. ``fraction`` 0, or a reference of one trajectory, gives the in-sample
    split (nothing held out; the latter says so in ``notes``)."""
    if not (math.isfinite(fraction) and 0.0 <= fraction < 1.0):
        raise InputError(f"the floor's holdout fraction must be in [0, 1), got {fraction}")
    n = int(reference) if isinstance(reference, (int, np.integer)) else int(reference.n_trajectories)
    data_hash = "" if isinstance(reference, (int, np.integer)) else str(reference.content_hash)
    everything = list(range(n))
    if fraction == 0.0:
        return ReferenceSplit(everything, [], 0.0, int(seed), data_hash)
    if n < 2:
        return ReferenceSplit(everything, [], float(fraction), int(seed), data_hash,
                              [f"the reference has {n} trajectory: nothing can be held out, the floor is in-sample"])
    n_hold = min(n - 1, max(1, int(round(fraction * n))))
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), _SPLIT_KEY]))
    hold = sorted(int(t) for t in rng.permutation(n)[:n_hold])
    keep = sorted(set(everything) - set(hold))
    return ReferenceSplit(keep, hold, float(fraction), int(seed), data_hash)


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
    method: str = "in-sample"                                      # "held-out" or "in-sample"
    split: dict[str, Any] = field(default_factory=dict)            # ReferenceSplit.to_dict() ({} : none given)
    in_sample: dict[str, Any] | None = None   # held-out floors: the in-sample floor's summary, for comparison

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
            "method": self.method, "split": self.split, "in_sample": self.in_sample,
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the floor as JSON (atomic; NaN as null)."""
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> NoiseFloor:
        path = Path(path)
        d = read_record(path, FLOOR_FORMAT, FLOOR_VERSION, "noise floor",
                        "compute it again with raycg.evaluate.noise_floor")

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
                   convergence=[Convergence.from_dict(c) for c in d.get("convergence", [])],
                   method=str(d.get("method", "in-sample")), split=dict(d.get("split") or {}),
                   in_sample=d.get("in_sample"))


# ----------------------------------------------------------------------------------------------
# drawing reference segments


@dataclass
class _Plan:
    stride: int
    frames: int            # frames per segment
    whole: bool            # replicas longer than every reference trajectory: whole trajectories
    notes: list[str]


def _plan(ref, protocol: SamplingProtocol) -> _Plan:
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


@dataclass
class SegmentSource:
    """What cutting segments reads of the dataset they are cut from: frame spacing, trajectory offsets,
    the TIC projection (start strata: its first two columns) and frame weights. A
    :class:`ReferenceSummary` has the same fields."""

    dt_frame_ps: float
    traj_offsets: np.ndarray
    y: np.ndarray
    weights: np.ndarray | None


def segment_source(dataset, tica: ReferenceTICA, config: EvalConfig | None = None) -> SegmentSource:
    """``dataset`` projected on ``tica`` (``config.n_components`` TICs, row by row as the scoring projects)."""
    config = config or EvalConfig()
    where = str(dataset.path) if getattr(dataset, "path", None) else dataset.meta.name
    y = project(tica, dataset.coords, config.n_components, where=where)
    w = None if dataset.weights is None else np.asarray(dataset.weights, np.float64)
    return SegmentSource(float(dataset.meta.dt_frame_ps), np.asarray(dataset.traj_offsets, np.int64), y, w)


def _start_frames(reference, ref, protocol: SamplingProtocol, seed: int) -> np.ndarray:
    from raycg.sim.starts import select_start_frames

    feat = ref.y[:, :2] if protocol.start_method in ("equilibrium", "stratified") else None
    return select_start_frames(reference, protocol.n_replicas, method=protocol.start_method, seed=seed,
                               features=feat, weights=ref.weights)


def _disjoint_segments(reference, ref, protocol: SamplingProtocol, seed: int, offsets: np.ndarray, span: int,
                       stride: int, kinds: dict[str, int]) -> tuple[list[np.ndarray], np.ndarray]:
    """Segments from start frames drawn as ``protocol`` says (``DISJOINT_CANDIDATES`` × more, in their
    random order), skipping a start whose segment overlaps one already taken; when too few fit, the
    skipped ones fill up (counted as ``overlapping``)."""
    n = protocol.n_replicas
    cand = _start_frames(reference, ref, dataclasses.replace(protocol, n_replicas=n * DISJOINT_CANDIDATES), seed)
    taken = np.zeros(int(offsets[-1]), bool)
    segs, trajs, skipped = [], [], []
    for f in cand:
        t = int(np.searchsorted(offsets, f, side="right") - 1)
        idx, kind = _segment(int(f), int(offsets[t]), int(offsets[t + 1]), span, stride)
        lo, hi = int(idx.min()), int(idx.max()) + 1
        if taken[lo:hi].any():
            skipped.append((idx, kind, t))
            continue
        taken[lo:hi] = True
        segs.append(idx)
        trajs.append(t)
        kinds[kind] = kinds.get(kind, 0) + 1
        if len(segs) == n:
            break
    for idx, _kind, t in skipped[: n - len(segs)]:
        segs.append(idx)
        trajs.append(t)
        kinds["overlapping"] = kinds.get("overlapping", 0) + 1
    return segs, np.asarray(trajs, np.int64)


#: disjoint segments: start candidates drawn per replica
DISJOINT_CANDIDATES = 4


def draw_reference_samples(reference: CGDataset, ref: ReferenceSummary | SegmentSource, protocol: SamplingProtocol,
                           seed: int = 0, *, disjoint: bool = False) -> tuple[ModelSamples, dict[str, Any]]:
    """One perfect-model sample under ``protocol``: segments of ``reference`` (module docstring), and a
    record of how they were cut (stride, frames, how many forward / reversed / window / short segments,
    fraction of distinct frames, the trajectories of ``reference`` they came from). ``ref`` is the
    :class:`ReferenceSummary` or :class:`SegmentSource` of ``reference``. ``disjoint``: no two segments
    share a frame where the reference allows (:func:`_disjoint_segments`): replicas are independent,
    so overlapping segments would make the sample look smaller than a trial's."""
    plan = _plan(ref, protocol)
    offsets = np.asarray(ref.traj_offsets, np.int64)
    rng = np.random.default_rng(seed)
    kinds: dict[str, int] = {}
    if plan.whole:
        n_traj = len(offsets) - 1
        pick = rng.choice(n_traj, size=protocol.n_replicas, replace=protocol.n_replicas > n_traj)
        segs = [np.arange(offsets[t], offsets[t + 1], plan.stride) for t in pick]
        kinds["whole"] = len(segs)
        used = pick
    elif disjoint:
        span = (plan.frames - 1) * plan.stride + 1
        segs, used = _disjoint_segments(reference, ref, protocol, seed, offsets, span, plan.stride, kinds)
    else:
        span = (plan.frames - 1) * plan.stride + 1
        starts = _start_frames(reference, ref, protocol, seed)
        traj = np.searchsorted(offsets, starts, side="right") - 1
        segs = []
        for f, t in zip(starts, traj):
            idx, kind = _segment(int(f), int(offsets[t]), int(offsets[t + 1]), span, plan.stride)
            segs.append(idx)
            kinds[kind] = kinds.get(kind, 0) + 1
        used = traj
    coords = reference.coords
    reps = []
    for s in segs:
        x = np.asarray(coords[np.sort(s)], np.float32)   # increasing indices (memory-mapped / HDF5 friendly)
        reps.append(x if s[0] <= s[-1] else x[::-1])
    allidx = np.concatenate(segs)
    record = {"stride": plan.stride, "frames_per_segment": plan.frames, "whole_trajectories": plan.whole,
              "segments": kinds, "distinct_frame_fraction": float(len(np.unique(allidx)) / len(allidx)),
              "frame_interval_ps": plan.stride * ref.dt_frame_ps,
              "trajectories": sorted(int(t) for t in np.unique(used)), "disjoint": bool(disjoint)}
    samples = ModelSamples.from_arrays(reps, dt_frame_ps=plan.stride * ref.dt_frame_ps, source="reference segments")
    return samples, {**record, "notes": plan.notes}


@dataclass
class _Repeats:
    values: dict[str, list[float]]
    verdicts: list[Convergence]
    record: dict[str, Any]
    notes: list[str]


def _score_repeats(source, src, scoring, ref: ReferenceSummary, tica: ReferenceTICA, cfg: EvalConfig,
                   protocol: SamplingProtocol, n_repeats: int, seed: int, source_ids: list[int] | None,
                   disjoint: bool = False) -> _Repeats:
    """Score ``n_repeats`` samples cut from ``source`` against ``scoring``; ``source_ids`` maps the source's
    trajectory indices to the full dataset's (None: the same)."""
    from raycg.evaluate.score import score

    names = floor_metrics()
    values: dict[str, list[float]] = {m: [] for m in names}
    verdicts: list[Convergence] = []
    kinds: dict[str, int] = {}
    distinct: list[float] = []
    used: set[int] = set()
    record: dict[str, Any] = {}
    for i in range(n_repeats):
        samples, record = draw_reference_samples(source, src, protocol, seed + i, disjoint=disjoint)
        res = score(scoring, tica, samples, cfg, reference_summary=ref)
        for m in names:
            values[m].append(float(res.metrics.get(m, math.nan)))
        verdicts.append(res.convergence)
        for k, c in record["segments"].items():
            kinds[k] = kinds.get(k, 0) + c
        distinct.append(record["distinct_frame_fraction"])
        used.update(record["trajectories"] if source_ids is None else [source_ids[t] for t in record["trajectories"]])
    notes = record.pop("notes", [])
    record.update(segments=kinds, distinct_frame_fraction=float(np.mean(distinct)), trajectories=sorted(used))
    return _Repeats(values, verdicts, record, notes)


def scoring_side(reference, tica: ReferenceTICA, config: EvalConfig, split: ReferenceSplit | None,
                 reference_summary: ReferenceSummary | None = None
                 ) -> tuple[bool, Any, ReferenceTICA, ReferenceSummary]:
    """(held out?, scoring reference, its TICA, its summary) of a perfect-model experiment: the scoring
    trajectories of ``split`` when it holds some out, else ``reference`` itself; a given
    ``reference_summary`` is checked against them."""
    held_out = split is not None and split.method == "held-out"
    scoring = split.scoring_reference(reference) if held_out else reference
    if held_out:
        tica = split.scoring_tica(tica, scoring)
    if reference_summary is None:
        return held_out, scoring, tica, prepare_reference(scoring, tica, config)
    reference_summary.check_matches(scoring, tica, config)
    return held_out, scoring, tica, reference_summary


def noise_floor(reference: CGDataset, tica: ReferenceTICA, config: EvalConfig | None, protocol: SamplingProtocol, *,
                n_repeats: int = 30, seed: int = 0, reference_summary: ReferenceSummary | None = None,
                split: ReferenceSplit | None = None, in_sample_repeats: int = 0) -> NoiseFloor:
    """Score ``n_repeats`` perfect-model samples (:func:`draw_reference_samples`, seeds ``seed``,
    ``seed+1``, …) with :func:`score` and the same ``config`` (no bootstrap: the repeats are the spread).

    ``split`` (of ``reference``, :func:`split_reference`) with held-out trajectories: samples are cut
    from them and scored against the scoring trajectories (``reference_summary``, if given, must be
    the scoring reference's); ``in_sample_repeats`` > 0 then also scores that many samples cut from
    the scoring trajectories themselves, summarised in ``NoiseFloor.in_sample``. Without a split, or
    with nothing held out, the floor is in-sample: cut from and scored against ``reference``."""
    if n_repeats < 2:
        raise InputError(f"a noise floor needs n_repeats >= 2, got {n_repeats}")
    config = config or EvalConfig()
    t0 = time.perf_counter()
    held_out, scoring, tica, ref = scoring_side(reference, tica, config, split, reference_summary)
    cfg = config.model_copy(update={"bootstrap_resamples": 0})
    if held_out:
        source = split.floor_reference(reference)
        run = _score_repeats(source, segment_source(source, tica, config), scoring, ref, tica, cfg, protocol,
                             n_repeats, seed, split.holdout, disjoint=True)
    else:
        run = _score_repeats(reference, ref, reference, ref, tica, cfg, protocol, n_repeats, seed, None)
    in_sample = None
    if held_out and in_sample_repeats > 0:
        t1 = time.perf_counter()
        ins = _score_repeats(scoring, ref, scoring, ref, tica, cfg, protocol, int(in_sample_repeats), seed,
                             split.scoring)
        in_sample = {
            "method": "in-sample", "reference": "the scoring trajectories (segments cut from the reference "
                                                "they are scored against)",
            "n_repeats": int(in_sample_repeats), "seed": seed,
            "metrics": {m: {f: _num(x) for f, x in asdict(FloorStat.of(np.asarray(v))).items()}
                        for m, v in ins.values.items()},
            "converged_fraction": float(np.mean([c.converged for c in ins.verdicts])),
            "distinct_frame_fraction": ins.record["distinct_frame_fraction"], "wall_s": time.perf_counter() - t1}
    notes = list(run.notes) + (list(split.notes) if split is not None else [])
    if held_out and len(split.holdout) < protocol.n_replicas:
        notes.append(f"{len(split.holdout)} held-out trajectories for {protocol.n_replicas} replicas: segments share "
                     f"trajectories (distinct frame fraction {run.record['distinct_frame_fraction']:.2f}), so the "
                     "floor's replicas are less independent than a trial's and the floor is pessimistic (an upper "
                     "bound; the in-sample floor is optimistic)")
    return NoiseFloor(
        protocol=protocol, metrics={m: FloorStat.of(np.asarray(v)) for m, v in run.values.items()},
        n_repeats=n_repeats, seed=seed, values=run.values,
        converged_fraction=float(np.mean([c.converged for c in run.verdicts])), convergence=run.verdicts,
        realized=run.record, notes=notes, dataset_hash=ref.dataset_hash, tica_fingerprint=tica_fingerprint(tica),
        config=config.model_dump(mode="json"), wall_s=time.perf_counter() - t0,
        method="held-out" if held_out else "in-sample", split=split.to_dict() if split is not None else {},
        in_sample=in_sample)
