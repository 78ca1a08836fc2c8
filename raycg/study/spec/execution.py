"""How a study runs: the grid of trials, each trial's resources, retries and concurrency."""

from __future__ import annotations

import math
from typing import Any

from pydantic import Field, field_validator, model_validator

from raycg.config import StrictModel
from raycg.study.spec.fields import SWEEPABLE_SECTIONS

#: the most trials one study may have (energy weights x seeds x every sweep)
MAX_TRIALS = 100_000


class GridSpec(StrictModel):
    """What varies between trials."""

    energy_weights: list[float] = Field(min_length=1)
    seeds: int | list[int] = 3
    sweep: dict[str, list[Any]] = Field(default_factory=dict,
                                        description="any other dotted config field, e.g. training.lr: [1e-3, 3e-4]")

    @field_validator("energy_weights")
    @classmethod
    def _weights(cls, v: list[float]) -> list[float]:
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

    @model_validator(mode="after")
    def _not_too_many_trials(self) -> GridSpec:
        if self.n_trials() > MAX_TRIALS:
            raise ValueError(f"the grid has {self.n_trials()} trials (energy weights x seeds x sweeps), more than "
                             f"{MAX_TRIALS}; split it into several studies or sweep fewer values")
        return self

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def n_trials(self) -> int:
        n = len(self.energy_weights) * (self.seeds if isinstance(self.seeds, int) else len(self.seeds))
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
