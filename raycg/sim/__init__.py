"""Batched Langevin (BAOAB) and Brownian simulation of CG models (Å, ps, amu, kcal/mol, K).

Public API (see ARCHITECTURE.md)::

    from raycg.sim import SimulationConfig, simulate, load_simulation, select_start_frames
    frames = select_start_frames(ds, 32, method="kcenters", seed=0)
    cfg = SimulationConfig(dt_ps=0.002, friction_per_ps=1.0, temperature_K=ds.temperature,
                           n_steps=100_000, save_every=100, blowup_max_bond_A=max_bond_from_data(ds))
    res = simulate(model, ds.masses, ds.coords[frames], cfg, out_dir="sim", topology=ds.topology())
    res.alive, res.blown_up            # which replicas died, when (step, time_ps) and why
    load_simulation("sim")             # read a finished output directory back

- Replicas advance together as one ``[R, B, 3]`` tensor; one force evaluation per step.
- A replica whose positions/forces/energy/velocities become non-finite, or whose bonded distance
  exceeds ``blowup_max_bond_A``, is frozen at its last good state and reported; the others go on.
  Its trajectory file keeps only frames saved before its death; thermo arrays are NaN after it.
- Re-running with the same ``out_dir`` resumes from ``checkpoint.pt`` bit for bit.
- ``compile`` (default ``auto``: runs of 10,000+ steps) compiles the potential with
  ``torch.compile`` (static shapes).
- On CUDA, ``capture`` (default ``auto``: 32-1,024 replicas) replays each step — noise, forces,
  integrator, blow-up masking, frame writes — from a CUDA graph (:mod:`raycg.sim.capture`; the same
  numbers as uncaptured). What runs how on which device: :mod:`raycg.device`.
"""

from raycg.sim.config import SimulationConfig, make_config
from raycg.utils.lazy import lazy_exports

#: imported on first use: ``SimulationConfig`` (a spec's ``simulation:``) validates without torch
_LAZY = {
    "simulate": "raycg.sim.engine", "REASONS": "raycg.sim.integrators",
    "internal_mass": "raycg.sim.integrators", "kinetic_temperature": "raycg.sim.integrators",
    "maxwell_boltzmann": "raycg.sim.integrators", "SimulationResult": "raycg.sim.output",
    "load_simulation": "raycg.sim.output", "read_replica": "raycg.sim.output",
    "max_bond_from_data": "raycg.sim.starts", "select_start_frames": "raycg.sim.starts",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)


__all__ = [
    "REASONS", "SimulationConfig", "SimulationResult", "internal_mass", "kinetic_temperature",
    "load_simulation", "make_config", "max_bond_from_data", "maxwell_boltzmann", "read_replica",
    "select_start_frames", "simulate",
]
