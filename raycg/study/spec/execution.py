"""How a study runs: the grid of trials, each trial's resources, retries and concurrency."""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_serializer, model_validator

from raycg.config import StrictModel
from raycg.study.spec.fields import SWEEPABLE_SECTIONS

#: the most trials one study may have (energy weights x seeds x every sweep)
MAX_TRIALS = 100_000


#: what an arm's name may be (it starts the trial ids: ``<arm>_w<weight>_s<seed>``)
ARM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,39}")


class GridSpec(StrictModel):
    """What varies between trials: energy weights (or arms) x seeds x sweeps.

    ``arms`` replaces ``energy_weights`` when the conditions compared differ in more than the weight:
    each arm is a name and the values it sets (``energy_weight``, required, and dotted spec fields,
    e.g. ``training.loss.energy_target``). Every arm runs every seed; ``baseline`` (required) is the
    arm each other arm is compared with, seed by seed; ``order`` lists the other arms in the order
    they are compared (default: by name; a mapping's order does not survive JSON). ``multiplicity``
    says how those comparisons share α: ``holm`` (Holm across them) or ``fixed-sequence`` (each at
    the full α in ``order``, which must then be given, up to the first that is not significant).
    With arms, ``energy_weights`` is derived: the arms' distinct weights, ascending.
    """

    energy_weights: Annotated[list[float], Field(min_length=1)] | None = Field(
        None, description="energy weights to sweep (derived from arms when arms are given)")
    seeds: int | list[int] = 3
    sweep: dict[str, list[Any]] = Field(default_factory=dict,
                                        description="any other dotted config field, e.g. training.lr: [1e-3, 3e-4]")
    arms: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="named conditions: {name: {energy_weight: w, dotted.field: value}}")
    baseline: str | None = Field(None, description="the arm the others are compared with (required with arms)")
    order: list[str] | None = Field(None, description="the other arms, in the order they are compared (and, "
                                                      "for fixed-sequence, tested) with the baseline")
    multiplicity: Literal["holm", "fixed-sequence"] = Field(
        "holm", description="holm: Holm across the comparisons; fixed-sequence: in order, each at the full "
                            "alpha until the first non-significant one")

    @field_validator("energy_weights")
    @classmethod
    def _weights(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if any((not math.isfinite(w)) or w < 0 for w in v):
            raise ValueError("energy weights must be finite and >= 0")
        if len(set(v)) != len(v):
            raise ValueError("energy weights must be distinct")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: int | list[int]) -> int | list[int]:
        if isinstance(v, int) and v < 1:
            raise ValueError("seeds must be a count >= 1 or a non-empty list")
        if isinstance(v, list):
            if not v:
                raise ValueError("seeds list is empty")
            if len(set(v)) != len(v):
                raise ValueError("seeds must be distinct")
        return v

    @field_validator("sweep")
    @classmethod
    def _sweep(cls, v: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in v.items():
            if not values:
                raise ValueError(f"sweep of {key!r} has no values")
            if key.split(".")[0] not in SWEEPABLE_SECTIONS:
                raise ValueError(f"cannot sweep {key!r}: the first part must be one of {sorted(SWEEPABLE_SECTIONS)}")
        return v

    @field_validator("arms")
    @classmethod
    def _arms(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not v:
            return v
        if len(v) < 2:
            raise ValueError("give at least 2 arms (a baseline and one to compare with it)")
        seen: dict[str, str] = {}
        for name, values in v.items():
            if not ARM_NAME.fullmatch(name):
                raise ValueError(f"arm name {name!r}: use letters, digits, '_', '-', '.', '+' (at most 40; "
                                 "it names the trials)")
            w = values.get("energy_weight")
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                raise ValueError(f"arm {name!r}: energy_weight must be set to a finite number >= 0 (got {w!r})")
            for key in values:
                if key != "energy_weight" and key.split(".")[0] not in SWEEPABLE_SECTIONS:
                    raise ValueError(f"arm {name!r}: cannot set {key!r}: the first part must be energy_weight "
                                     f"or one of {sorted(SWEEPABLE_SECTIONS)}")
            key = json.dumps({**values, "energy_weight": float(w)}, sort_keys=True, default=str)
            if key in seen:
                raise ValueError(f"arms {seen[key]!r} and {name!r} set the same values")
            seen[key] = name
        return {name: {**values, "energy_weight": float(values["energy_weight"])} for name, values in v.items()}

    @model_validator(mode="after")
    def _arms_or_weights(self) -> GridSpec:
        if not self.arms:
            if self.energy_weights is None:
                raise ValueError("give energy_weights (or arms)")
            if self.baseline is not None or self.order is not None:
                raise ValueError("baseline and order name arms; without arms the analysis' baseline is the weight 0")
            if self.multiplicity != "holm":
                raise ValueError("multiplicity fixed-sequence tests arms in their declared order: it needs arms")
        else:
            derived = sorted({a["energy_weight"] for a in self.arms.values()})
            if self.energy_weights is not None and self.energy_weights != derived:
                raise ValueError(f"energy_weights: with arms each arm sets its weight (here {derived}); "
                                 "leave energy_weights out")
            names = ", ".join(self.arms)
            if self.baseline not in self.arms:
                raise ValueError(f"baseline: name the arm the others are compared with (one of {names}; "
                                 f"got {self.baseline!r})")
            others = sorted(set(self.arms) - {self.baseline})
            if self.order is not None and sorted(self.order) != others:
                raise ValueError(f"order: list every arm but the baseline once ({', '.join(others)}; "
                                 f"got {', '.join(self.order) or 'none'})")
            if self.multiplicity == "fixed-sequence" and self.order is None:
                raise ValueError("multiplicity fixed-sequence: give order, the pre-declared testing order")
            overlap = sorted({k for a in self.arms.values() for k in a} & set(self.sweep))
            if overlap:
                raise ValueError(f"{', '.join(overlap)}: set by an arm and swept; do one or the other")
            object.__setattr__(self, "energy_weights", derived)  # derived, without re-validation
        if self.n_trials() > MAX_TRIALS:
            raise ValueError(f"the grid has {self.n_trials()} trials (energy weights x seeds x sweeps), more than "
                             f"{MAX_TRIALS}; split it into several studies or sweep fewer values")
        return self

    @model_serializer(mode="wrap")
    def _omit_unused(self, handler: Any) -> dict[str, Any]:
        """Without arms the dump is what it was before arms existed (so is the spec's hash)."""
        data = handler(self)
        if not self.arms:
            for key in ("arms", "baseline", "order", "multiplicity"):
                data.pop(key, None)
        return data

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def baseline_arm(self) -> str | None:
        """The arm every other arm is compared with (None without arms)."""
        return self.baseline if self.arms else None

    def arm_order(self) -> list[str]:
        """The arms: the baseline first, then the others in ``order`` (default: by name)."""
        if not self.arms:
            return []
        return [self.baseline, *(self.order or sorted(set(self.arms) - {self.baseline}))]

    def n_trials(self) -> int:
        n = len(self.arms) if self.arms else len(self.energy_weights or ())
        n *= self.seeds if isinstance(self.seeds, int) else len(self.seeds)
        for values in self.sweep.values():
            n *= len(values)
        return n


class ResourcesSpec(StrictModel):
    cpus: float = Field(1, gt=0, description="CPUs per trial (torch uses this many threads)")
    gpu: float = Field(0.0, ge=0, le=1, description="GPU fraction per trial; trials share a device")
    extra: dict[str, float] = Field(default_factory=dict, description="custom Ray resources per trial")

    def ray_request(self) -> dict[str, float]:
        """Ray's names for one trial's request: CPU, GPU, custom resources."""
        req: dict[str, float] = {"CPU": float(self.cpus)}
        if self.gpu > 0:
            req["GPU"] = float(self.gpu)
        req.update({k: float(v) for k, v in self.extra.items()})
        return req


class RetriesSpec(StrictModel):
    max_failures: int = Field(2, ge=0, description="restarts of a crashed trial (from its last checkpoint)")


class ConcurrencySpec(StrictModel):
    max_concurrent_trials: int | None = Field(None, ge=1)
