"""Batched Langevin (BAOAB) and Brownian simulation of CG models (Å, ps, amu, kcal/mol, K).

Public API (see docs/architecture.md)::

    from raycg.sim import SimulationConfig, simulate, load_simulation, select_start_frames
    frames = select_start_frames(ds, 32, method="kcenters", seed=0)
    cfg = SimulationConfig(dt_ps=0.002, friction_per_ps=1.0, temperature_K=ds.temperature,
                           n_steps=100_000, save_every=100, blowup_max_bond_A=max_bond_from_data(ds))
    res = simulate(model, ds.masses, ds.coords[frames], cfg, out_dir="sim", topology=ds.topology())
    res.alive, res.blown_up            # which replicas died, when (step, time_ps) and why
    load_simulation("sim")             # read a finished output directory back

- :func:`simulate` runs the engine ``config.engine`` names: ``raycg`` (this package's batched torch
  engine, :func:`raycg.sim.engine.simulate`) or ``openmm`` (one OpenMM Context per replica,
  :func:`raycg.sim.openmm_engine.simulate_openmm`); the same arguments, result and output files.
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
    "REASONS": "raycg.sim.integrators",
    "internal_mass": "raycg.sim.integrators", "kinetic_temperature": "raycg.sim.integrators",
    "maxwell_boltzmann": "raycg.sim.integrators", "SimulationResult": "raycg.sim.output",
    "load_simulation": "raycg.sim.output", "read_replica": "raycg.sim.output",
    "max_bond_from_data": "raycg.sim.starts", "select_start_frames": "raycg.sim.starts",
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

#: keyword arguments only the openmm engine takes
OPENMM_ONLY = ("platform", "workers")


def simulate(potential, masses, start_positions, config=None, **kwargs):
    """Simulate replicas ``start_positions`` [R, B, 3] (Å) of beads with ``masses`` [B] (amu) with
    the engine ``config.engine`` names (a :class:`SimulationConfig`, a dict, or None: defaults).

    ``engine: raycg``: :func:`raycg.sim.engine.simulate` (its keyword arguments: ``out_dir``,
    ``topology``, ``bonds``, ``progress``, ``velocities``, ``overwrite``, ``keep_positions``,
    ``on_checkpoint``); ``engine: openmm``: :func:`raycg.sim.openmm_engine.simulate_openmm` (the
    same, plus ``platform`` and ``workers``, which the raycg engine refuses). A potential with
    ``n_beads`` (raycg's models and priors) must have one bead per start position bead. Returns a
    :class:`~raycg.sim.output.SimulationResult`; bad input raises :class:`raycg.errors.InputError`.
    """
    from raycg.errors import InputError

    cfg = make_config(config)
    n_beads = getattr(potential, "n_beads", None)
    shape = getattr(start_positions, "shape", None)
    if isinstance(n_beads, int) and shape is not None and len(shape) >= 2 and int(shape[-2]) != n_beads:
        raise InputError(f"the model has {n_beads} beads but the start positions have {int(shape[-2])}",
                         where="simulate", hint="use the dataset (topology) the model was trained on")
    if cfg.engine == "openmm":
        from raycg.sim.openmm_engine import simulate_openmm

        return simulate_openmm(potential, masses, start_positions, cfg, **kwargs)
    given = sorted(k for k in OPENMM_ONLY if kwargs.get(k) is not None)
    if given:
        raise InputError(f"{', '.join(given)} apply to engine openmm only; this config's engine is raycg",
                         where="simulate", hint="set engine: openmm, or leave them out")
    from raycg.sim.engine import simulate as simulate_raycg

    return simulate_raycg(potential, masses, start_positions, cfg,
                          **{k: v for k, v in kwargs.items() if k not in OPENMM_ONLY})


__all__ = [
    "REASONS", "SimulationConfig", "SimulationResult", "internal_mass", "kinetic_temperature",
    "load_simulation", "make_config", "max_bond_from_data", "maxwell_boltzmann", "read_replica",
    "select_start_frames", "simulate",
]
