"""``StudySpec``: the whole YAML file, validated once; ``load_spec`` reads one.

Errors name the file, the line and the dotted field::

    studies/x.yaml:14: grid.energy_weights: List should have at least 1 item after validation
"""

from __future__ import annotations

import copy
import os
import re
from typing import Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from raycg.config import StrictModel, read_yaml, validate_config
from raycg.priors import PriorConfig
from raycg.study.pipelines.registry import pipeline_names
from raycg.study.spec.analysis import AnalysisSpec, check_sequential_grid
from raycg.study.spec.execution import ConcurrencySpec, GridSpec, ResourcesSpec, RetriesSpec
from raycg.study.spec.fields import SWEEPABLE_SECTIONS, get_field
from raycg.study.spec.precheck import not_a_mapping
from raycg.study.spec.sections import EvaluationSection, SimulationSection, ToySection
from raycg.train import TrainConfig


class StudySpec(StrictModel):
    """A whole study: what to train, simulate and score, over which grid, where, and how."""

    name: str = Field(min_length=1, max_length=100)
    description: str = ""
    dataset: str = Field("embedded", description='path of a raycg CG dataset, or "embedded"')
    pipeline: str = Field("cgschnet", description="cgschnet: train/simulate/score; toy: seconds-long stand-in "
                                                  "for testing Ray (raycg.study.pipelines)")
    priors: PriorConfig = Field(default_factory=PriorConfig)
    training: TrainConfig = Field(default_factory=TrainConfig)
    simulation: SimulationSection = Field(default_factory=SimulationSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    toy: ToySection = Field(default_factory=ToySection)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
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

    @field_validator("pipeline")
    @classmethod
    def _pipeline(cls, v: str) -> str:
        if v not in pipeline_names():
            raise ValueError(f"unknown pipeline {v!r}; use one of {', '.join(pipeline_names())}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _fill_training_tica(cls, data: Any) -> Any:
        """Energy targets use the study's reference TICA: fill ``training.tica`` from ``evaluation``."""
        if not isinstance(data, dict):
            return data
        grid = data.get("grid") if isinstance(data.get("grid"), dict) else {}
        arms = grid.get("arms") if isinstance(grid.get("arms"), dict) else {}
        by_arm = [a.get("training.loss.energy_target", "none") for a in arms.values() if isinstance(a, dict)]
        tr = data.get("training", {} if any(t != "none" for t in by_arm) else None)
        loss = tr.get("loss", {}) if isinstance(tr, dict) else None
        if isinstance(loss, dict) and tr.get("tica") is None \
                and any(t != "none" for t in [loss.get("energy_target", "none"), *by_arm]):
            ev = data.get("evaluation") if isinstance(data.get("evaluation"), dict) else {}
            data = dict(data)
            data["training"] = {**tr, "tica": {"lag": ev.get("tica_lag", 20), "dim": ev.get("tica_dim")}}
        return data

    @field_validator("grid")
    @classmethod
    def _sweep_fields_exist(cls, grid: GridSpec, info: ValidationInfo) -> GridSpec:
        sections = {name: info.data.get(name) for name in SWEEPABLE_SECTIONS}
        keys = [(f"sweep: {k!r}", k) for k in grid.sweep]
        keys += [(f"arms.{a}: {k!r}", k) for a, values in grid.arms.items() for k in values if k != "energy_weight"]
        for where, key in keys:
            try:
                get_field(sections, key)
            except KeyError:
                raise ValueError(f"{where} is not a field of this spec") from None
        return grid

    @model_validator(mode="after")
    def _sequential_fits_grid(self) -> StudySpec:
        """A sequential design (``analysis.design: sequential``) compares energy weights (not arms)
        at looks that fit the grid (:func:`raycg.study.spec.analysis.check_sequential_grid`)."""
        if self.analysis.design != "sequential":
            return self
        if self.grid.arms:
            raise ValueError("analysis.design: sequential compares energy weights; grid.arms are not supported "
                             "by the sequential design (use grid.energy_weights, or design: fixed)")
        check_sequential_grid(self.analysis, len(self.grid.seed_list()), len(self.grid.energy_weights or ()))
        return self


def load_spec(path: str | os.PathLike, **overrides: Any) -> StudySpec:
    """Read and validate a spec file. ``overrides`` (e.g. ``storage=..., name=...``) replace top-level keys."""
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise not_a_mapping(path)
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    return validate_config(StudySpec, data, source=str(path), lines=lines)


def spec_from_any(spec: StudySpec | dict | str | os.PathLike, **overrides: Any) -> StudySpec:
    """A :class:`StudySpec` from a spec, a mapping or a YAML path, with top-level ``overrides``."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(spec, StudySpec):
        if not overrides:
            return spec
        return validate_config(StudySpec, {**spec.model_dump(mode="json"), **overrides}, source="spec")
    if isinstance(spec, dict):
        return validate_config(StudySpec, {**copy.deepcopy(spec), **overrides}, source="spec")
    return load_spec(spec, **overrides)
