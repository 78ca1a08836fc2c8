"""The study spec: one YAML file that says what to run, where, and how often.

A study is a grid of (energy weight x seed [x any other swept field]) trials. The spec reuses
the stage configs by composition (``training`` is the training package's ``TrainConfig``,
``simulation`` extends ``SimulationConfig`` with the replica count, ``evaluation`` extends
``EvalConfig`` with the reference-TICA settings, ``priors`` is ``PriorConfig``); while a stage
package is absent its section is kept as a plain mapping.

Errors name the file, the line and the dotted field::

    studies/x.yaml:14: grid.energy_weights: List should have at least 1 item after validation
"""

from __future__ import annotations

import copy
import math
import os
import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from raycg.config import StrictModel, read_yaml, validate_config
from raycg.errors import ConfigError
from raycg.study.grid import (  # noqa: F401 - re-exported
    ENERGY_WEIGHT_KEYS,
    SEED_KEYS,
    config_hash,
    get_dotted,
    set_dotted,
    trial_config_from_dict,
    trial_id_for,
)


def _optional(module: str, name: str) -> Any:
    try:
        mod = __import__(module, fromlist=[name])
        return getattr(mod, name)
    except (ImportError, AttributeError):
        return None


_PriorConfig = _optional("raycg.priors", "PriorConfig")
_TrainConfig = _optional("raycg.train", "TrainConfig")
_SimulationConfig = _optional("raycg.sim", "SimulationConfig")
_EvalConfig = _optional("raycg.evaluate", "EvalConfig")

PIPELINES = ("cgschnet", "toy")


class _FlexBase(StrictModel):
    """Base used when a stage config class is not installed: unknown keys pass through."""

    model_config = StrictModel.model_config | {"extra": "allow"}


_SimBase = _SimulationConfig or _FlexBase
_EvalBase = _EvalConfig or _FlexBase


class SimulationSection(_SimBase):  # type: ignore[misc, valid-type]
    """``SimulationConfig`` plus how many replicas each trial runs and how starts are chosen."""

    replicas: int = Field(16, ge=1, description="Langevin replicas per trial (one batched tensor)")
    start_method: Literal["kcenters", "stratified"] = "kcenters"
    start_seed: int = 0
    chunks: int = Field(4, ge=1, description="the simulation is reported/checkpointed this many times")


class EvaluationSection(_EvalBase):  # type: ignore[misc, valid-type]
    """``EvalConfig`` plus the reference TICA fitted once per study."""

    tica_lag: int = Field(20, ge=1, description="reference TICA lag, in saved frames")
    tica_dim: int | None = Field(None, ge=1)
    metrics: list[str] = Field(default_factory=list,
                               description="metrics the report leads with (empty: all of them)")


_TrainType: Any = _TrainConfig or dict[str, Any]
_PriorType: Any = _PriorConfig or dict[str, Any]


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

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def n_trials(self) -> int:
        n = len(self.energy_weights) * len(self.seed_list())
        for values in self.sweep.values():
            n *= len(values)
        return n


class ResourcesSpec(StrictModel):
    cpus: float = Field(1, gt=0, description="CPUs per trial (torch uses this many threads)")
    gpu: float = Field(0.0, ge=0, le=1, description="GPU fraction per trial; trials share a device")
    extra: dict[str, float] = Field(default_factory=dict, description="custom Ray resources per trial")


class RetriesSpec(StrictModel):
    max_failures: int = Field(2, ge=0, description="restarts of a crashed trial (from its last checkpoint)")


class ConcurrencySpec(StrictModel):
    max_concurrent_trials: int | None = Field(None, ge=1)


class StudySpec(StrictModel):
    """A whole study."""

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    dataset: str = Field("embedded", description='path of a raycg CG dataset, or "embedded"')
    pipeline: Literal["cgschnet", "toy"] = Field(
        "cgschnet", description="cgschnet: train/simulate/score; toy: seconds-long stand-in for testing Ray")
    priors: _PriorType = Field(default_factory=lambda: _PriorConfig() if _PriorConfig else {})
    training: _TrainType = Field(default_factory=lambda: _TrainConfig() if _TrainConfig else {})
    simulation: SimulationSection = Field(default_factory=SimulationSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    toy: dict[str, Any] = Field(default_factory=dict, description="settings of the toy pipeline")
    grid: GridSpec
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    storage: str = Field("./runs", description="local directory, shared path, s3://... or gs://...")
    retries: RetriesSpec = Field(default_factory=RetriesSpec)
    concurrency: ConcurrencySpec = Field(default_factory=ConcurrencySpec)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", v):
            raise ValueError("use letters, digits, '_', '-', '.' only (it names a directory)")
        return v

    @model_validator(mode="before")
    @classmethod
    def _fill_training_tica(cls, data: Any) -> Any:
        """Energy targets use the study's reference TICA: fill ``training.tica`` from ``evaluation``."""
        if not isinstance(data, dict) or _TrainConfig is None:
            return data
        tr = data.get("training")
        if isinstance(tr, dict) and isinstance(tr.get("loss"), dict) and tr.get("tica") is None \
                and tr["loss"].get("energy_target", "none") != "none":
            ev = data.get("evaluation") if isinstance(data.get("evaluation"), dict) else {}
            data = dict(data)
            data["training"] = {**tr, "tica": {"lag": ev.get("tica_lag", 20), "dim": ev.get("tica_dim")}}
        return data

    @field_validator("grid")
    @classmethod
    def _check_grid(cls, grid: GridSpec, info: ValidationInfo) -> GridSpec:
        if info.data.get("pipeline") != "toy":
            loss = getattr(info.data.get("training"), "loss", None)
            if loss is not None and max(grid.energy_weights) > 0 and loss.energy_target == "none":
                raise ValueError("energy weights > 0 need training.loss.energy_target (tica-marginal or tica-joint)")
        sections = {}
        for name in SWEEPABLE_SECTIONS:
            value = info.data.get(name)
            sections[name] = value.model_dump(mode="json") if hasattr(value, "model_dump") else (value or {})
        from raycg.study.pipelines import TOY_DEFAULTS

        sections["toy"] = {**TOY_DEFAULTS, **sections["toy"]}
        for key in grid.sweep:
            try:
                get_dotted(sections, key)
            except KeyError:
                raise ValueError(f"sweep: {key!r} is not a field of this spec") from None
        return grid


SWEEPABLE_SECTIONS = {"priors", "training", "simulation", "evaluation", "toy"}


# --- loading --------------------------------------------------------------------------------------
def load_spec(path: str | os.PathLike, **overrides: Any) -> StudySpec:
    """Read and validate a spec file. ``overrides`` (e.g. ``storage=..., name=...``) replace top-level keys."""
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a study spec must be a mapping of sections (name, dataset, grid, ...)")
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    return validate_config(StudySpec, data, source=str(path), lines=lines)


def spec_from_any(spec: StudySpec | dict | str | os.PathLike, **overrides: Any) -> StudySpec:
    if isinstance(spec, StudySpec):
        if any(v is not None for v in overrides.values()):
            data = spec.model_dump(mode="json")
            data.update({k: v for k, v in overrides.items() if v is not None})
            return validate_config(StudySpec, data, source="spec")
        return spec
    if isinstance(spec, dict):
        data = copy.deepcopy(spec)
        data.update({k: v for k, v in overrides.items() if v is not None})
        return validate_config(StudySpec, data, source="spec")
    return load_spec(spec, **overrides)


# --- the grid -------------------------------------------------------------------------------------
def grid_points(spec: StudySpec) -> list[dict[str, Any]]:
    """Every trial's swept values, in a stable order (weights outermost, then seeds, then sweeps)."""
    points: list[dict[str, Any]] = []
    sweeps = list(spec.grid.sweep.items())
    for w in spec.grid.energy_weights:
        for s in spec.grid.seed_list():
            combos: list[dict[str, Any]] = [{}]
            for key, values in sweeps:
                combos = [dict(c, **{key: v}) for c in combos for v in values]
            for c in combos:
                points.append({"energy_weight": float(w), "seed": int(s), **c})
    return points


def trial_config(spec: StudySpec, point: dict[str, Any]) -> dict[str, Any]:
    """The full per-trial config (the spec's sections with the grid point's values applied)."""
    return trial_config_from_dict(spec.model_dump(mode="json"), point)
