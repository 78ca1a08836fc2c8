"""Spec sections built on the stage configs: each adds only what a study needs on top.

``simulation`` is ``raycg.sim.SimulationConfig`` plus replicas, start frames and reporting;
``evaluation`` is ``raycg.evaluate.EvalConfig`` plus the reference TICA fitted once per study;
``toy`` holds the settings of the toy pipeline. The study extracts a stage's config by the stage
class's own field list (``engine_config``/``eval_config``), so no field list is copied here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from raycg.config import StrictModel
from raycg.evaluate import EvalConfig
from raycg.sim import SimulationConfig


class SimulationSection(SimulationConfig):
    """``SimulationConfig`` plus how many replicas each trial runs and how starts are chosen."""

    temperature_K: float | list[float] | None = Field(
        None, description="K, one value or one per replica; default (null): the dataset's temperature")
    replicas: int = Field(16, ge=1, description="Langevin replicas per trial (one batched tensor)")
    start_method: Literal["equilibrium", "kcenters", "stratified", "random"] = Field(
        "equilibrium", description="how start frames are drawn from the reference (raycg.sim.starts)")
    start_seed: int = 0
    chunks: int = Field(4, ge=1, description="the simulation is reported/checkpointed this many times")

    @field_validator("temperature_K")
    @classmethod
    def _check_temperature(cls, v: Any) -> Any:
        return v if v is None else SimulationConfig._check_temperature(v)

    def engine_config(self, **updates: Any) -> SimulationConfig:
        """The engine's config: this section's ``SimulationConfig`` fields, with ``updates`` applied."""
        data = self.model_dump(include=set(SimulationConfig.model_fields))
        data.update(updates)
        if data.get("temperature_K") is None:
            raise ValueError("simulation.temperature_K is unresolved: pass the dataset's temperature")
        return SimulationConfig.model_validate(data)

    @property
    def frames_per_replica(self) -> int:
        return self.n_steps // self.save_every

    @property
    def frame_interval_ps(self) -> float:
        return self.save_every * self.dt_ps


class EvaluationSection(EvalConfig):
    """``EvalConfig`` plus the reference TICA fitted once per study."""

    tica_lag: int = Field(20, ge=1, description="reference TICA lag, in saved frames")
    tica_dim: int | None = Field(None, ge=1)
    metrics: list[str] = Field(default_factory=list,
                               description="metrics the printed table leads with (empty: the analysis section's)")
    noise_floor_repeats: int | None = Field(
        None, ge=0, description="perfect-model samples scored at prepare for the noise floor "
                                "(null: raycg.evaluate.noise_floor's default; 0: no floor)")
    floor_holdout_fraction: float = Field(
        1 / 3, ge=0.0, lt=1.0,
        description="fraction of the reference's trajectories held out (drawn from simulation.start_seed) for "
                    "the noise floor's segments; trials and the floor are scored against the rest, and trial "
                    "starts come from the rest (0: the in-sample floor, scored against the whole reference)")
    gate_power_repeats: int = Field(
        25, ge=0, description="perfect-model samples per run length (0.2, 1 and 3 × the slowest TICA timescale) "
                              "scored at prepare for the convergence gate's catch rates, prepared/gate_power.json "
                              "(0: none)")

    @field_validator("noise_floor_repeats")
    @classmethod
    def _repeats(cls, v: int | None) -> int | None:
        if v == 1:
            raise ValueError("a noise floor needs at least 2 repeats (0: none)")
        return v

    def eval_config(self) -> EvalConfig:
        return EvalConfig.model_validate(self.model_dump(include=set(EvalConfig.model_fields)))


class ToySection(StrictModel):
    """Settings of the toy pipeline (seconds-long trials that exercise the Ray machinery)."""

    epochs: int = Field(4, ge=1, description="training epochs (one report + checkpoint each)")
    epoch_s: float = Field(0.2, ge=0, description="wall time of one epoch (sleep + optional work)")
    chunks: int = Field(3, ge=1, description="simulation chunks (one report + checkpoint each)")
    chunk_s: float = Field(0.2, ge=0)
    lr: float = Field(0.05, ge=0, description="> 1 makes the toy training diverge (loss -> inf/nan)")
    dt_ps: float = Field(0.004, gt=0, description="> 0.05 makes every toy replica blow up")
    replicas: int = Field(8, ge=1)
    work: int = Field(0, ge=0, description="size of a CPU-bound matrix product per epoch/chunk (0: sleep only)")
    seed: int = 0
