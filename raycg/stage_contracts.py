"""The stage chain with its types, for the type checker only (``mypy``, run by scripts/test.sh).

data → priors → TICA → train → model → simulate → load → score: each function below passes one
stage's output to the next, so a changed stage signature that breaks the chain fails the check.
The protocol checks say that raycg's own potentials satisfy :mod:`raycg.model.protocols`.
Nothing here runs: the module body is under ``TYPE_CHECKING``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    # from the defining modules: a package's lazily exported names are Any to a type checker
    from raycg.cv.tica import ReferenceTICA, fit_reference_tica
    from raycg.data.format import CGDataset, load
    from raycg.evaluate.config import EvalConfig
    from raycg.evaluate.samples import load_model_trajectories
    from raycg.evaluate.score import TrialScore, score
    from raycg.model.energy import EnergyModel
    from raycg.model.io import load_model
    from raycg.model.protocols import ForceSource, Potential, SimulationPotential
    from raycg.priors.config import PriorConfig
    from raycg.priors.fit import fit_priors
    from raycg.priors.prior_set import PriorSet
    from raycg.sim.config import SimulationConfig
    from raycg.sim.engine import simulate
    from raycg.sim.output import SimulationResult
    from raycg.sim.starts import select_start_frames
    from raycg.train.config import TrainConfig
    from raycg.train.trainer import TrainResult, train

    def energy_model_is_a_potential(model: EnergyModel) -> tuple[SimulationPotential, ForceSource, Potential]:
        return model, model, model

    def fit_stage(path: Path, prior_config: PriorConfig) -> tuple[CGDataset, PriorSet, ReferenceTICA]:
        dataset = load(path)
        return dataset, fit_priors(dataset, prior_config), fit_reference_tica(dataset, lag=20)

    def train_stage(config: TrainConfig, dataset: CGDataset, priors: PriorSet, tica: ReferenceTICA,
                    out: Path) -> EnergyModel:
        result: TrainResult = train(config, dataset, priors, tica, out)
        return load_model(result.model_dir)

    def simulate_stage(model: EnergyModel, dataset: CGDataset, config: SimulationConfig,
                       out: Path) -> SimulationResult:
        frames = select_start_frames(dataset, 8, method="kcenters", seed=0)
        return simulate(model, dataset.masses, dataset.coords[frames], config, out_dir=out,
                        topology=dataset.topology())

    def score_stage(dataset: CGDataset, tica: ReferenceTICA, sim_dir: Path, config: EvalConfig) -> TrialScore:
        samples = load_model_trajectories(sim_dir, dataset)
        return score(dataset, tica, samples, config)
