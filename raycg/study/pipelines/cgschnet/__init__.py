"""The CGSchNet pipeline: prepare (priors, TICA, starts, targets) -> train -> simulate -> score.

One module per phase; this class only says which function runs each phase and what the
pipeline's grid mapping, objective and metrics are.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raycg.errors import ConfigError
from raycg.study.pipelines.base import Objective, Pipeline, TrialContext
from raycg.study.pipelines.cgschnet import prepare as _prepare
from raycg.study.pipelines.cgschnet.correction import check_trial_correction
from raycg.study.pipelines.cgschnet.score import score_phase
from raycg.study.pipelines.cgschnet.simulate import simulate_phase
from raycg.study.pipelines.cgschnet.train import train_phase

if TYPE_CHECKING:
    from raycg.study.spec import StudySpec
    from raycg.study.storage import Store

_TRAIN_METRICS = ("train_best_val_loss", "train_best_epoch", "train_epochs", "train_prior_only_val_force_loss")
_SIM_METRICS = ("n_replicas_blown_up", "sim_replica_steps_per_s")


class CGSchNetPipeline(Pipeline):
    name = "cgschnet"
    energy_weight_fields = ("training.loss.energy_weight",)
    seed_fields = ("training.seed", "simulation.seed")
    objective = Objective(per_epoch="best_val_loss", final="train_best_val_loss")

    def validate(self, spec: StudySpec, *, source: str) -> None:
        super().validate(spec, source=source)
        _prepare.check_dataset(spec, source=source)
        loss = spec.training.loss
        if not spec.grid.arms and max(spec.grid.energy_weights) > 0 and loss.energy_target == "none":
            raise ConfigError(f"{source}: grid.energy_weights: energy weights > 0 need "
                              "training.loss.energy_target (tica-marginal, tica-joint or fes-corrected)")
        if not spec.grid.arms:
            check_trial_correction(spec, source=source)

    def check_trial(self, config: StudySpec, *, source: str) -> None:
        check_trial_correction(config, source=source)
        sec = config.simulation
        if isinstance(sec.temperature_K, list) and len(sec.temperature_K) not in (1, sec.replicas):
            raise ConfigError(f"{source}: simulation.temperature_K: has {len(sec.temperature_K)} values for "
                              f"{sec.replicas} replicas", hint="give one value, or one per replica")

    def prepare(self, spec: StudySpec, store: Store, *, log) -> dict[str, Any]:
        return _prepare.prepare(spec, store, log=log)

    def metric_names(self) -> list[str]:
        from raycg.evaluate.metric_table import METRICS

        return [*_TRAIN_METRICS, *_SIM_METRICS, *METRICS]

    def epochs(self, config: StudySpec) -> int:
        return config.training.epochs

    def simulation_steps(self, config: StudySpec) -> tuple[int, int]:
        return config.simulation.n_steps, config.simulation.chunks

    def train(self, ctx: TrialContext) -> None:
        train_phase(ctx)

    def simulate(self, ctx: TrialContext) -> None:
        simulate_phase(ctx)

    def score(self, ctx: TrialContext) -> None:
        score_phase(ctx)
