"""The grid: every trial's swept values (its point), its id, and its typed config.

A trial's config is the study's :class:`StudySpec` with the point's values set in place, each
validated like a value in the spec file (``raycg.study.spec.fields.set_field``): the energy weight
and the seed go where the pipeline says (``Pipeline.energy_weight_fields``/``seed_fields``), a
swept field to its dotted path. Values are set in the order: the arm's fields, weight, seed, sweeps.
A study with ``grid.arms`` has an ``arm`` in every point (its name); the arm's other values come
from the spec, so the point (and the trial id, ``<arm>_w<weight>_s<seed>``) stays short.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raycg.errors import ConfigError
from raycg.study.keys import config_hash, trial_id_for
from raycg.study.pipelines import get_pipeline
from raycg.study.spec import StudySpec, set_field

#: keys of a Tune config that are not grid values: the study's URI and (HPO) the phases to run
INTERNAL_KEYS = ("study", "phases")
#: the key under which a grid study's Tuner passes a trial's grid values
POINT_KEY = "point"
#: top-level spec fields that say how the study runs, not what a trial does
_NOT_TRIAL = {"grid", "storage", "retries", "concurrency", "description"}


def grid_points(spec: StudySpec) -> list[dict[str, Any]]:
    """Every trial's swept values, in a stable order: weights (or arms, ``grid.arm_order()``: the
    baseline first) outermost, then seeds, then sweeps. The one source of the trials."""
    grid = spec.grid
    combos: list[dict[str, Any]] = [{}]
    for key, values in grid.sweep.items():
        combos = [dict(c, **{key: v}) for c in combos for v in values]
    heads: list[dict[str, Any]]
    if grid.arms:
        heads = [{"arm": a, "energy_weight": float(grid.arms[a]["energy_weight"])} for a in grid.arm_order()]
    else:
        heads = [{"energy_weight": float(w)} for w in grid.energy_weights]
    return [{**h, "seed": int(s), **c} for h in heads for s in grid.seed_list() for c in combos]


def point_keys(spec: StudySpec) -> tuple[str, ...]:
    """The keys of every grid point of ``spec`` (``arm`` first when the grid has arms)."""
    return (*(("arm",) if spec.grid.arms else ()), "energy_weight", "seed", *spec.grid.sweep)


def baseline_point(spec: StudySpec, point: dict[str, Any]) -> dict[str, Any]:
    """The point of the trial ``point`` is compared with: the same seed and sweep values in the
    baseline arm, or at energy weight 0 without arms."""
    if spec.grid.arms:
        base = spec.grid.baseline_arm()
        return {**point, "arm": base, "energy_weight": float(spec.grid.arms[base]["energy_weight"])}
    return {**point, "energy_weight": 0.0}


def grid_point(tune_config: dict[str, Any]) -> dict[str, Any]:
    """The grid values of a Tune trial config: its ``point`` (a grid study's Tuner), else every
    key but the internal ones (a plain call, an HPO trial)."""
    if isinstance(tune_config.get(POINT_KEY), dict):
        return dict(tune_config[POINT_KEY])
    return {k: v for k, v in tune_config.items() if k not in INTERNAL_KEYS}


def trial_config(spec: StudySpec, point: dict[str, Any], *, source: str = "spec") -> StudySpec:
    """The spec with ``point``'s values set (a validated copy; ConfigError names a rejected value)."""
    pipeline = get_pipeline(spec.pipeline)
    config = spec.model_copy(deep=True)
    if "arm" in point:
        arm = spec.grid.arms.get(point["arm"])
        if arm is None:
            raise ConfigError(f"{source}: grid.arms: no arm {point['arm']!r} in this study")
        if float(arm["energy_weight"]) != float(point["energy_weight"]):
            raise ConfigError(f"{source}: grid.arms.{point['arm']}: energy_weight is {arm['energy_weight']:g}, "
                              f"the point says {point['energy_weight']:g}")
        for key, value in arm.items():
            if key != "energy_weight":
                set_field(config, key, value, source=source)
    for key in pipeline.energy_weight_fields:
        set_field(config, key, float(point["energy_weight"]), source=source)
    for key in pipeline.seed_fields:
        set_field(config, key, int(point["seed"]), source=source)
    for key, value in point.items():
        if key not in ("energy_weight", "seed", "arm"):
            set_field(config, key, value, source=source)
    return config


@dataclass(frozen=True)
class Trial:
    """One trial of a study: its id, grid values and typed config."""

    trial_id: str
    point: dict[str, Any]
    config: StudySpec

    def config_json(self) -> dict[str, Any]:
        """The trial's config as JSON (``trials/<id>/config.json``): the spec's trial sections + the point."""
        data = self.config.model_dump(mode="json", exclude=_NOT_TRIAL)
        arm = {"arm": self.point["arm"]} if "arm" in self.point else {}
        return {**data, **arm, "energy_weight": self.point["energy_weight"], "seed": self.point["seed"]}

    @property
    def config_hash(self) -> str:
        return config_hash(self.config_json())


def make_trial(spec: StudySpec, point: dict[str, Any], *, source: str = "spec") -> Trial:
    return Trial(trial_id_for(point), dict(point), trial_config(spec, point, source=source))


__all__ = ["INTERNAL_KEYS", "Trial", "baseline_point", "config_hash", "grid_point", "grid_points", "make_trial",
           "point_keys", "trial_config", "trial_id_for"]
