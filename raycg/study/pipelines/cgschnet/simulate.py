"""Phase ``simulate``: the trained model from the study's start frames (raycg.sim).

The temperature is the dataset's (recorded in ``prepared.json``) unless the spec sets
``simulation.temperature_K``; ``replicas.json`` records what was run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from raycg.study.pipelines.base import PHASE_END, TrialFailed
from raycg.study.pipelines.cgschnet.inputs import device_for, trial_dataset

if TYPE_CHECKING:
    from raycg.sim import SimulationConfig
    from raycg.study.pipelines.base import TrialContext
    from raycg.study.spec import SimulationSection


def engine_config(sec: SimulationSection, prepared: dict[str, Any], *, device: str = "cpu") -> SimulationConfig:
    """The engine's config of a trial: the spec's section with what the study resolves filled in."""
    every = max(sec.save_every, (sec.n_steps // sec.chunks) // sec.save_every * sec.save_every)
    updates: dict[str, Any] = {"device": device}
    if sec.temperature_K is None:
        updates["temperature_K"] = float(prepared["temperature_K"])
    if sec.checkpoint_every is None:
        updates["checkpoint_every"] = every
    if sec.blowup_max_bond_A is None and prepared.get("max_bond_A"):
        updates["blowup_max_bond_A"] = float(prepared["max_bond_A"])
    return sec.engine_config(**updates)


def simulate_phase(ctx: TrialContext) -> None:
    from raycg.model.io import load_model
    from raycg.sim.openmm_engine import run_simulation as simulate  # simulation.engine: raycg | openmm

    ds = trial_dataset(ctx)
    device = device_for(ctx.config)
    sec = ctx.config.simulation
    cfg = engine_config(sec, ctx.prepared_info(), device=device)
    model = load_model(ctx.work / "train" / "model", device=device)
    starts = np.load(ctx.prepared_dir() / "start_positions.npy")
    done = [0]
    span = PHASE_END["simulate"] - PHASE_END["train"]

    def on_checkpoint(step: int, out_dir) -> None:  # after each intermediate checkpoint (files consistent)
        done[0] += 1
        ctx.report({"chunk": done[0]}, phase="simulate",
                   progress=PHASE_END["train"] + span * min(1.0, done[0] / sec.chunks))

    out = ctx.work / "sim"
    res = simulate(model, ds.masses, starts, cfg, out_dir=out, topology=ds.topology(), bonds=ds.bonds,
                   progress=False, on_checkpoint=on_checkpoint)
    alive = np.asarray(res.alive, dtype=bool)
    if not alive.any():
        first = (res.blown_up or [{}])[0]
        raise TrialFailed(f"simulation blew up: all {alive.size} replicas died (first: replica "
                          f"{first.get('replica')} at step {first.get('step')}: {first.get('reason')})", "simulate")
    ctx.upload(out, "sim")
    ctx.metrics.update({"n_replicas_blown_up": float((~alive).sum()),
                        "sim_replica_steps_per_s": float(res.steps_per_s) * alive.size})
