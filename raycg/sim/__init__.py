"""Batched Langevin (BAOAB) and Brownian simulation of CG models (Å, ps, amu, kcal/mol, K).

Public API (see ARCHITECTURE.md):
``SimulationConfig``, ``simulate``, ``SimulationResult``, ``load_simulation``,
``select_start_frames``, ``maxwell_boltzmann``, ``kinetic_temperature``.
"""

from raycg.sim.config import SimulationConfig, make_config
from raycg.sim.engine import simulate
from raycg.sim.integrators import REASONS, internal_mass, kinetic_temperature, maxwell_boltzmann
from raycg.sim.output import SimulationResult, load_simulation, read_replica
from raycg.sim.starts import max_bond_from_data, select_start_frames

__all__ = [
    "REASONS", "SimulationConfig", "SimulationResult", "internal_mass", "kinetic_temperature",
    "load_simulation", "make_config", "max_bond_from_data", "maxwell_boltzmann", "read_replica",
    "select_start_frames", "simulate",
]
