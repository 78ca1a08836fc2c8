"""Configuration of all-atom reference MD (OpenMM)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from raycg.config import StrictModel


class AllAtomConfig(StrictModel):
    """All-atom replicas with OpenMM. Units: K, ps, ns, fs, amu."""

    forcefield: str = "amber14-all.xml"
    solvent: Literal["implicit-gbn2", "explicit-tip3pfb"] = "implicit-gbn2"
    temperature_K: float = Field(350.0, gt=0)
    friction_per_ps: float = Field(1.0, gt=0)
    # hydrogen-mass repartitioning (H mass 4 amu... see hydrogen_mass_amu)
    hmr: bool = True
    hydrogen_mass_amu: float = Field(3.024, gt=1.0)   # H mass with HMR (amber convention ~3 amu)
    timestep_fs: float | None = Field(None, gt=0)     # default: 4 fs with HMR, 2 fs without
    n_replicas: int = Field(4, ge=1)
    duration_ns: float = Field(10.0, gt=0)            # production per replica
    save_every_ps: float = Field(10.0, gt=0)          # positions+forces saved every ... ps
    segment_ps: float = Field(1000.0, gt=0)           # checkpoint after every segment
    minimise_iterations: int = Field(1000, ge=0)
    equilibration_ps: float = Field(100.0, ge=0)
    unfolded_fraction: float = Field(0.5, ge=0, le=1)  # share of replicas started from a hot (unfolded) run
    unfold_temperature_K: float = Field(700.0, gt=0)
    unfold_ps: float = Field(200.0, ge=0)
    platform: Literal["auto", "CUDA", "OpenCL", "CPU", "Reference"] = "auto"
    cpu_threads: int = Field(0, ge=0)                 # 0: OpenMM's default
    explicit_padding_nm: float = Field(1.0, gt=0)
    ionic_strength_molar: float = Field(0.0, ge=0)
    seed: int = 0

    @property
    def dt_fs(self) -> float:
        return self.timestep_fs if self.timestep_fs is not None else (4.0 if self.hmr else 2.0)

    def steps(self, ps: float) -> int:
        return int(round(ps * 1000.0 / self.dt_fs))

    @property
    def save_every_steps(self) -> int:
        return max(1, self.steps(self.save_every_ps))

    @property
    def frames_per_segment(self) -> int:
        return max(1, int(round(self.segment_ps / self.save_every_ps)))

    @property
    def n_frames(self) -> int:
        return max(1, int(round(self.duration_ns * 1000.0 / self.save_every_ps)))

    @property
    def n_segments(self) -> int:
        return -(-self.n_frames // self.frames_per_segment)

    @model_validator(mode="after")
    def _check(self) -> AllAtomConfig:
        if self.save_every_ps > self.duration_ns * 1000.0:
            raise ValueError("save_every_ps is longer than duration_ns: no frame would be saved")
        if self.dt_fs > 4.0 + 1e-9 and self.hmr:
            raise ValueError("timestep_fs above 4 fs is unstable even with HMR")
        if self.dt_fs > 2.0 + 1e-9 and not self.hmr:
            raise ValueError("timestep_fs above 2 fs needs hmr: true")
        return self
