"""The ``search:`` section of an HPO spec, and the study spec its trials run.

``raycg study tune SPEC`` reads a study spec with an extra ``search:`` section::

    search:
      objective: val_loss          # or a score metric (kl_ref_model, fes_mse, ...): short simulation + score
      mode: min
      num_samples: 30              # Optuna trials
      max_concurrent_trials: 4     # pending trials an autoscaler can see
      sampler_seed: 0              # TPE is seeded: the same search suggests the same configs
      energy_weight: 0.0           # the arm the search runs at (default: the grid's first weight)
      asha: {grace_period: 2, reduction_factor: 3}
      params:
        training.optim.lr: {loguniform: [1.0e-4, 3.0e-3]}
        training.model.hidden_channels: {choice: [32, 64, 128]}
        training.model.num_interactions: {int: [1, 3]}
"""

from __future__ import annotations

import builtins
import copy
import os
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from raycg.config import StrictModel, read_yaml, validate_config
from raycg.errors import ConfigError
from raycg.study.grid import make_trial
from raycg.study.pipelines import get_pipeline
from raycg.study.spec import SWEEPABLE_SECTIONS, StudySpec, get_field
from raycg.study.storage import join, normalize


class ParamSpec(StrictModel):
    """One searched field: exactly one of uniform, loguniform, int, logint (bounds inclusive), choice."""

    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    int: tuple[builtins.int, builtins.int] | None = None  # (the field shadows the builtin here)
    logint: tuple[builtins.int, builtins.int] | None = None
    choice: list[Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> ParamSpec:
        given = [k for k in ("uniform", "loguniform", "int", "logint", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of uniform, loguniform, int, logint, choice "
                             f"(got {', '.join(given) or 'none'})")
        kind = given[0]
        if kind == "choice":
            if not self.choice:
                raise ValueError("choice needs at least one value")
            return self
        lo, hi = getattr(self, kind)
        if not lo < hi:
            raise ValueError(f"{kind}: low ({lo}) must be below high ({hi})")
        if kind in ("loguniform", "logint") and lo <= 0:
            raise ValueError(f"{kind}: low must be > 0")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("uniform", "loguniform", "int", "logint", "choice") if getattr(self, k) is not None)

    def values_to_check(self) -> list[Any]:
        return list(self.choice) if self.kind == "choice" else list(getattr(self, self.kind))

    def tune_domain(self):
        from ray import tune

        k = self.kind
        if k == "choice":
            return tune.choice(list(self.choice))
        lo, hi = getattr(self, k)
        return {"uniform": lambda: tune.uniform(lo, hi), "loguniform": lambda: tune.loguniform(lo, hi),
                "int": lambda: tune.randint(lo, hi + 1), "logint": lambda: tune.lograndint(lo, hi + 1)}[k]()

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        k = self.kind
        if k == "choice":
            return CategoricalDistribution(list(self.choice))
        lo, hi = getattr(self, k)
        if k in ("int", "logint"):
            return IntDistribution(int(lo), int(hi), log=k == "logint")
        return FloatDistribution(float(lo), float(hi), log=k == "loguniform")


class AshaSpec(StrictModel):
    enabled: bool = True
    grace_period: int = Field(1, ge=1, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(3.0, gt=1)
    max_t: int | None = Field(None, ge=1, description="epochs (default: training.epochs)")


class SearchSpec(StrictModel):
    params: dict[str, ParamSpec] = Field(min_length=1)
    objective: str = Field("val_loss", description="val_loss, or a score metric (runs a short simulation)")
    mode: Literal["min", "max"] = "min"
    num_samples: int = Field(20, ge=1)
    max_concurrent_trials: int = Field(2, ge=1)
    sampler_seed: int = 0
    n_startup_trials: int = Field(10, ge=1, description="random trials before TPE models the results")
    energy_weight: float | None = Field(None, ge=0)
    seed: int | None = None
    asha: AshaSpec = Field(default_factory=AshaSpec)
    simulation: dict[str, Any] = Field(default_factory=dict,
                                       description="overrides of the simulation section for a score objective")
    export_name: str | None = Field(None, description="name of the exported replica study (default NAME_best)")

    @field_validator("params")
    @classmethod
    def _keys(cls, v: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for key in v:
            if key.split(".")[0] not in SWEEPABLE_SECTIONS - {"priors"}:
                raise ValueError(f"cannot search {key!r}: searched fields live under training. (model, optimiser, "
                                 "loss), or simulation./evaluation. with a score objective")
        return v

    @property
    def trains_only(self) -> bool:
        return self.objective == "val_loss"


class _SearchSection(StrictModel):
    """Validates ``search:`` so that errors name ``search.<field>`` and its YAML line."""

    search: SearchSpec


def load_hpo_spec(path: str | os.PathLike, **overrides: Any) -> tuple[StudySpec, SearchSpec, dict[str, Any]]:
    """Read a study spec with a ``search:`` section: (study spec, search, the raw study mapping)."""
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a spec must be a mapping of sections (name, dataset, grid, search, ...)")
    return hpo_from_mapping(data, source=str(path), lines=lines, **overrides)


def hpo_from_mapping(data: dict[str, Any], *, source: str = "spec", lines: dict | None = None,
                     **overrides: Any) -> tuple[StudySpec, SearchSpec, dict[str, Any]]:
    data = copy.deepcopy(data)
    search_raw = data.pop("search", None)
    if search_raw is None:
        raise ConfigError(f"{source}: search: required field is missing",
                          hint="add a search: section with params to tune (see studies/hpo_quickstart.yaml), "
                               "or use `raycg study run` for a plain study")
    data.update({k: v for k, v in overrides.items() if v is not None})
    spec = validate_config(StudySpec, data, source=source, lines=lines)
    search = validate_config(_SearchSection, {"search": search_raw}, source=source, lines=lines).search
    check_search(spec, search, source=source, lines=lines)
    return spec, search, data


def check_search(spec: StudySpec, search: SearchSpec, *, source: str = "spec", lines: dict | None = None) -> None:
    """Every searched field exists, means something for this objective, and its bounds are valid configs."""

    def _where(key: str) -> str:
        line = (lines or {}).get(("search", "params", key))
        return f"{source}{f':{line}' if line else ''}: search.params.{key}"

    for key in search.params:
        try:
            get_field(spec, key)
        except KeyError:
            raise ConfigError(f"{_where(key)}: not a field of this spec",
                              hint="use the dotted path of an existing field, e.g. training.optim.lr") from None
        if search.trains_only and key.split(".")[0] in ("simulation", "evaluation"):
            raise ConfigError(f"{_where(key)}: with objective val_loss the trials only train, so "
                              f"{key.split('.')[0]} settings have no effect",
                              hint="search training.* fields, or set search.objective to a score metric")
    base = hpo_study_spec(spec, search, source=source)
    pipeline = get_pipeline(spec.pipeline)
    for key, p in search.params.items():
        for value in p.values_to_check():
            point = {"energy_weight": base.grid.energy_weights[0], "seed": base.grid.seed_list()[0], key: value}
            where = f"{source}: search.params.{key}={value!r}"
            pipeline.check_trial(make_trial(base, point, source=where).config, source=where)


def hpo_study_spec(spec: StudySpec, search: SearchSpec, *, source: str = "spec") -> StudySpec:
    """The spec the search trials run: one energy weight, one seed, the simulation overrides applied."""
    data = spec.model_dump(mode="json")
    w = search.energy_weight if search.energy_weight is not None else spec.grid.energy_weights[0]
    s = search.seed if search.seed is not None else spec.grid.seed_list()[0]
    data["grid"] = {"energy_weights": [float(w)], "seeds": [int(s)], "sweep": {}}
    data["concurrency"] = {"max_concurrent_trials": search.max_concurrent_trials}
    data["simulation"] = {**data["simulation"], **search.simulation}
    return validate_config(StudySpec, data, source=f"{source} (search trials)")


def search_uri(spec: StudySpec) -> str:
    return join(normalize(spec.storage), spec.name)


def objective_keys(spec: StudySpec, search: SearchSpec) -> tuple[str, str]:
    """(per-epoch key ASHA judges, key of the trial's final result that is the objective)."""
    objective = get_pipeline(spec.pipeline).objective
    return objective.per_epoch, (objective.final if search.trains_only else search.objective)
