"""Batched Langevin (BAOAB) and Brownian simulation of CG models (Å, ps, amu, kcal/mol, K).

Public API (see ARCHITECTURE.md):
``SimulationConfig``, ``simulate``, ``SimulationResult``, ``load_simulation``,
``select_start_frames``, ``maxwell_boltzmann``, ``kinetic_temperature``.
"""

from raycg.sim.config import SimulationConfig, make_config
from raycg.sim.engine import simulate
from raycg.sim.integrators import REASONS, internal_mass, kinetic_temperature, maxwell_boltzmann
from raycg.sim.output import SimulationResult, load_simulation, read_replica

__all__ = [
    "REASONS", "SimulationConfig", "SimulationResult", "internal_mass", "kinetic_temperature",
    "load_simulation", "make_config", "maxwell_boltzmann", "read_replica", "simulate",
]
