"""Configuration of a simulation (:class:`SimulationConfig`).

Units: time ps, friction 1/ps, temperature K, lengths Å.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from raycg.config import StrictModel
from raycg.errors import ConfigError

_DEVICE_RE = re.compile(r"^(cpu|cuda(:\d+)?|mps)$")


def __getattr__(name: str):
    """``COMPILE_AUTO_MIN_STEPS``: ``compile: auto`` compiles simulations of at least this many
    steps (shorter ones run eagerly); the device policy's value, read from raycg.device (torch) on
    first use so that validating a config does not import torch."""
    if name == "COMPILE_AUTO_MIN_STEPS":
        from raycg.device import SIM_COMPILE_AUTO_MIN_STEPS

        return SIM_COMPILE_AUTO_MIN_STEPS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SimulationConfig(StrictModel):
    """Settings of one batched Langevin / Brownian simulation.

    Constructing it with a bad value raises :class:`raycg.errors.ConfigError` naming the field.
    """

    integrator: Literal["baoab", "brownian"] = "baoab"
    #: time step in ps (2-4 fs = 0.002-0.004 ps for CG proteins)
    dt_ps: float = Field(0.002, gt=0, allow_inf_nan=False)
    #: Langevin friction (collision rate) in 1/ps; 0 gives velocity Verlet (NVE) for baoab
    friction_per_ps: float = Field(1.0, ge=0, allow_inf_nan=False)
    #: temperature in K: one value for all replicas or one per replica
    temperature_K: float | list[float] = 300.0
    #: number of integration steps
    n_steps: int = Field(1000, ge=0)
    #: save a frame every this many steps (frames at steps k, 2k, ...; not step 0)
    save_every: int = Field(10, ge=1)
    seed: int = 0
    dtype: Literal["float32", "float64"] = "float32"
    #: torch device: "cpu", "cuda", "cuda:N"
    device: str = "cpu"
    #: a replica with any bonded distance above this (Å) is frozen and reported as blown up
    blowup_max_bond_A: float | None = Field(None, gt=0, allow_inf_nan=False)
    #: frames held in memory before they are written out (memory bound)
    chunk_frames: int = Field(100, ge=1)
    #: write a resumable checkpoint every this many steps (only with an output directory); None: at the end
    checkpoint_every: int | None = Field(None, ge=1)
    #: torch.compile the potential (static shapes: R, B fixed). raycg's EnergyModel compiles its fused
    #: network pass and its prior: ~2.5× the eager replica-steps/s at 100+ replicas on a 2-core CPU
    #: (benchmarks/bench_sim.py), for a one-off compilation of seconds (cached) to a minute (cold).
    #: ``auto``: as the device policy says (raycg.device: runs of at least COMPILE_AUTO_MIN_STEPS steps).
    compile: bool | Literal["auto"] = "auto"
    #: CUDA only: capture each step (noise, forces, integrator, blow-up masking, frame writes) in a
    #: CUDA graph and replay it (same numbers; launch overhead gone). ``auto``: as the device policy
    #: says (32-1,024 replicas). Only potentials without host synchronisation are captured
    #: (raycg's EnergyModel on its dense path); a CPU never captures.
    capture: bool | Literal["auto"] = "auto"
    #: CGSchNet's filters read from a table with this grid spacing (Å) instead of evaluated per pair
    #: (raycg.model.FilterTable: cubic Hermite, force error ~1e-5 kcal/mol/Å at 0.005 Å, measured
    #: at build and reported in replicas.json). None: the exact filter networks.
    filter_table_spacing_A: float | None = Field(0.005, gt=0, allow_inf_nan=False)
    #: which engine runs it: ``raycg`` (raycg.sim.engine, batched torch) or ``openmm`` (one OpenMM
    #: Context per replica, LangevinMiddleIntegrator, the model as a PythonForce:
    #: raycg.sim.openmm_engine). raycg.sim.simulate dispatches on it.
    engine: Literal["raycg", "openmm"] = "raycg"

    def use_compile(self) -> bool:
        """Whether this run compiles the potential (resolves ``compile: auto`` by the device policy)."""
        from raycg.device import policy_for

        return policy_for(self.device).use_compile(self.compile, self.n_steps, training=False)

    def use_capture(self, n_replicas: int, capturable: bool) -> bool:
        """Whether this run captures its steps in CUDA graphs (resolves ``capture: auto``)."""
        from raycg.device import policy_for

        return policy_for(self.device).use_capture(self.capture, n_replicas, capturable)

    @field_validator("temperature_K")
    @classmethod
    def _check_temperature(cls, v):
        values = v if isinstance(v, list) else [v]
        if not values:
            raise ValueError("needs at least one temperature")
        for t in values:
            if not (math.isfinite(t) and t > 0):
                raise ValueError(f"temperatures must be finite and > 0 K, got {t}")
        return v

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        if not _DEVICE_RE.match(v):
            raise ValueError(f"unknown device {v!r}; use 'cpu', 'cuda' or 'cuda:N'")
        return v

    @model_validator(mode="after")
    def _check_combination(self):
        if self.integrator == "brownian" and self.friction_per_ps <= 0:
            raise ValueError("friction_per_ps must be > 0 for brownian dynamics")
        return self

    def temperatures(self, n_replicas: int) -> list[float]:
        """Per-replica temperatures (K) for ``n_replicas`` replicas."""
        t = self.temperature_K
        if isinstance(t, list):
            if len(t) == 1:
                return [float(t[0])] * n_replicas
            if len(t) != n_replicas:
                raise ConfigError(f"SimulationConfig: temperature_K: has {len(t)} values for {n_replicas} "
                                  f"replicas; give one value or one per replica")
            return [float(x) for x in t]
        return [float(t)] * n_replicas


def make_config(config: SimulationConfig | dict | None, **overrides) -> SimulationConfig:
    """A validated :class:`SimulationConfig` from a config, a dict, or None (defaults), plus overrides."""
    if config is None:
        data: dict = {}
    elif isinstance(config, SimulationConfig):
        data = config.model_dump()
    elif isinstance(config, dict):
        data = dict(config)
    else:
        raise ConfigError(f"simulation config must be a SimulationConfig or a dict, got {type(config).__name__}")
    data.update(overrides)
    return SimulationConfig(**data)
