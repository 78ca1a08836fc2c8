"""How often the trial-level convergence gate catches an unconverged run: the gate's power, measured.

:func:`gate_power` scores perfect-model samples cut as the noise floor cuts them, but ``multiple × τ``
long (τ: the reference TICA's slowest implied timescale, ps), and counts per multiple the repeats the
gate marks unconverged: ``caught_fraction`` (any check), ``caught_by_data_fraction`` (all but the time
check), ``caught_by`` (each check) and ``assessable``. Each trial's checks alone, not the study's
Holm-adjusted gate. Details: docs/architecture.md ("raycg.evaluate.gate_power").
"""

from __future__ import annotations

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
from raycg.evaluate.floor import (
    ReferenceSplit,
    SamplingProtocol,
    draw_reference_samples,
    scoring_side,
    segment_source,
)
from raycg.evaluate.reference import ReferenceSummary, tica_fingerprint
from raycg.utils.io import atomic_write_json, read_record

if TYPE_CHECKING:
    from raycg.data.format import CGDataset

GATE_POWER_FORMAT = "raycg-gate-power"
GATE_POWER_VERSION = 1
DEFAULT_MULTIPLES = (0.2, 1.0, 3.0)
#: the checks counted alone, in order; all but "time" are data-driven
CHECKS = ("time", "crossings", "drift", "start_basins")
DATA_CHECKS = ("crossings", "drift", "start_basins")
TESTS = ("drift", "start_basins")


def _num(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _f(x: Any) -> float:
    return math.nan if x is None else float(x)


@dataclass
class GatePowerRow:
    """The gate on ``n_repeats`` perfect-model samples whose replicas are ``multiple × τ`` long.

    Fractions are of the repeats; ``caught_by[check]`` the share failing that check (whatever the
    others did); ``assessable[test]`` the share in which the permutation test could reach its α; the
    per-repeat lists hold the diagnostics the checks read (``time_over_timescale`` after burn-in)."""

    multiple: float
    replica_time_ps: float          # planned per replica (frames × frame spacing)
    frames_per_replica: int
    n_repeats: int
    caught_fraction: float
    caught_by_data_fraction: float
    caught_by: dict[str, float]
    assessable: dict[str, float]
    time_over_timescale: list[float] = field(default_factory=list)
    crossings_per_replica: list[float] = field(default_factory=list)
    drift_p: list[float] = field(default_factory=list)
    start_basins_p: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("time_over_timescale", "crossings_per_replica", "drift_p", "start_basins_p"):
            d[k] = [_num(float(x)) for x in d[k]]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GatePowerRow:
        return cls(float(d["multiple"]), float(d["replica_time_ps"]), int(d["frames_per_replica"]),
                   int(d["n_repeats"]), float(d["caught_fraction"]), float(d["caught_by_data_fraction"]),
                   {k: float(v) for k, v in d["caught_by"].items()}, {k: float(v) for k, v in d["assessable"].items()},
                   *[[_f(x) for x in d.get(k, [])] for k in ("time_over_timescale", "crossings_per_replica",
                                                                "drift_p", "start_basins_p")])


@dataclass
class GatePower:
    """The trial-level convergence gate's catch rates on too-short perfect-model runs, per multiple of τ."""

    protocol: SamplingProtocol           # the trials' protocol (replicas, spacing, starts); lengths vary per row
    slowest_timescale_ps: float
    min_time_over_timescale: float
    rows: list[GatePowerRow]
    n_repeats: int
    seed: int
    method: str = "in-sample"            # where the segments come from: "held-out" or "in-sample"
    split: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    dataset_hash: str = ""
    tica_fingerprint: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    wall_s: float = math.nan

    def row(self, multiple: float) -> GatePowerRow:
        for r in self.rows:
            if math.isclose(r.multiple, multiple, rel_tol=1e-9):
                return r
        raise KeyError(multiple)

    def to_dict(self) -> dict[str, Any]:
        return {"format": GATE_POWER_FORMAT, "version": GATE_POWER_VERSION, "protocol": self.protocol.to_dict(),
                "slowest_timescale_ps": self.slowest_timescale_ps,
                "min_time_over_timescale": self.min_time_over_timescale, "n_repeats": self.n_repeats,
                "seed": self.seed, "method": self.method, "checks": list(CHECKS), "data_checks": list(DATA_CHECKS),
                "rows": [r.to_dict() for r in self.rows], "split": self.split, "notes": self.notes,
                "dataset_hash": self.dataset_hash, "tica_fingerprint": self.tica_fingerprint,
                "config": self.config, "wall_s": _num(self.wall_s)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write as JSON (atomic; NaN as null)."""
        path = Path(path)
        atomic_write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> GatePower:
        d = read_record(path, GATE_POWER_FORMAT, GATE_POWER_VERSION, "gate power table",
                        "compute it again with raycg.evaluate.gate_power")
        return cls(SamplingProtocol.from_dict(d["protocol"]), _f(d["slowest_timescale_ps"]),
                   float(d["min_time_over_timescale"]), [GatePowerRow.from_dict(r) for r in d["rows"]],
                   int(d["n_repeats"]), int(d["seed"]), str(d.get("method", "in-sample")), dict(d.get("split") or {}),
                   list(d.get("notes", [])), str(d.get("dataset_hash", "")), str(d.get("tica_fingerprint", "")),
                   dict(d.get("config") or {}), _f(d.get("wall_s")))


def _verdict(conv, min_ratio: float) -> dict[str, bool]:
    """Which checks a repeat failed, from a verdict computed with the time threshold at 0 (so that
    ``failed_checks`` holds the crossing check only) and the time ratio against ``min_ratio``."""
    ratio = float(conv.diagnostics.get("time_over_timescale", math.nan))
    out = {"time": not (ratio >= min_ratio), "crossings": bool(conv.failed_checks)}
    for t in TESTS:
        out[t] = t in conv.tests and conv.tests[t].fails
    return out


def gate_power(reference: CGDataset, tica: ReferenceTICA, config: EvalConfig | None, protocol: SamplingProtocol,
               multiples: tuple[float, ...] = DEFAULT_MULTIPLES, *, n_repeats: int = 40, seed: int = 0,
               split: ReferenceSplit | None = None, reference_summary: ReferenceSummary | None = None) -> GatePower:
    """Catch rates of the trial-level convergence gate (module docstring) on ``n_repeats`` perfect-model
    samples per multiple of τ, seeds ``seed``, ``seed+1``, … (the same starts for every multiple).

    ``split`` with held-out trajectories: segments are cut from them and scored against the scoring
    trajectories (``reference_summary``, if given, is the scoring reference's), as the noise floor
    does; without one, cut from and scored against ``reference``. Scoring runs without bootstrap and
    with W1 on its coarsest grid (no check reads W1); the time check is evaluated from the scored
    ``time_over_timescale`` against ``config.min_time_over_timescale``."""
    from raycg.evaluate.score import score

    if n_repeats < 1:
        raise InputError(f"gate power needs n_repeats >= 1, got {n_repeats}")
    mults = tuple(float(m) for m in multiples)
    if not mults or not all(math.isfinite(m) and m > 0 for m in mults):
        raise InputError(f"gate power multiples must be positive numbers, got {list(multiples)}")
    config = config or EvalConfig()
    tau = float(tica.timescales_ps[0]) if len(tica.eigenvalues) else math.nan
    if not (math.isfinite(tau) and tau > 0):
        raise InputError(f"the reference TICA's slowest implied timescale is {tau}: no run length relates to it",
                         hint="fit the reference TICA at a lag where its slowest process decays")
    t0 = time.perf_counter()
    held_out, scoring, tica, ref = scoring_side(reference, tica, config, split, reference_summary)
    source = split.floor_reference(reference) if held_out else scoring
    src = segment_source(source, tica, config) if held_out else ref
    cfg = config.model_copy(update={"bootstrap_resamples": 0, "w1_bins": 4, "min_time_over_timescale": 0.0})
    rows: list[GatePowerRow] = []
    notes: list[str] = []
    for m in mults:
        frames = max(2, int(round(m * tau / protocol.frame_interval_ps)))
        prot = SamplingProtocol(protocol.n_replicas, frames, protocol.frame_interval_ps, protocol.start_method)
        fails = {c: [] for c in CHECKS}
        assessed = {t: [] for t in TESTS}
        diag: dict[str, list[float]] = {k: [] for k in ("time_over_timescale", "crossings_per_replica",
                                                        "halves_p", "start_gap_p")}
        for i in range(n_repeats):
            samples, record = draw_reference_samples(source, src, prot, seed + i, disjoint=held_out)
            conv = score(scoring, tica, samples, cfg, reference_summary=ref).convergence
            for c, v in _verdict(conv, config.min_time_over_timescale).items():
                fails[c].append(v)
            for t in TESTS:
                assessed[t].append(t in conv.tests)
            for k in diag:
                diag[k].append(float(conv.diagnostics.get(k, math.nan)))
        notes.extend(n for n in record["notes"] if n not in notes)
        any_fail = np.zeros(n_repeats, bool)
        data_fail = np.zeros(n_repeats, bool)
        for c in CHECKS:
            any_fail |= np.asarray(fails[c])
            if c in DATA_CHECKS:
                data_fail |= np.asarray(fails[c])
        rows.append(GatePowerRow(
            multiple=m, replica_time_ps=frames * protocol.frame_interval_ps, frames_per_replica=frames,
            n_repeats=n_repeats, caught_fraction=float(any_fail.mean()),
            caught_by_data_fraction=float(data_fail.mean()),
            caught_by={c: float(np.mean(fails[c])) for c in CHECKS},
            assessable={t: float(np.mean(assessed[t])) for t in TESTS},
            time_over_timescale=diag["time_over_timescale"], crossings_per_replica=diag["crossings_per_replica"],
            drift_p=diag["halves_p"], start_basins_p=diag["start_gap_p"]))
    return GatePower(protocol=protocol, slowest_timescale_ps=tau,
                     min_time_over_timescale=config.min_time_over_timescale,
                     rows=rows, n_repeats=n_repeats, seed=seed, method="held-out" if held_out else "in-sample",
                     split=split.to_dict() if split is not None else {}, notes=notes, dataset_hash=ref.dataset_hash,
                     tica_fingerprint=tica_fingerprint(tica), config=config.model_dump(mode="json"),
                     wall_s=time.perf_counter() - t0)
