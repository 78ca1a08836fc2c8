"""CGSchNet's sizes and options (:class:`CGSchNetConfig`): plain pydantic, no torch, so that a
training config or a study spec validates without importing torch (:mod:`raycg.model.schnet`
builds the network from it and re-exports it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from raycg.config import StrictModel


class CGSchNetConfig(StrictModel):
    """Sizes and options of CGSchNet (anchor defaults: hidden/filters 128, ExpNormal, tanh)."""

    num_types: int = Field(
        32, ge=1, description="size of the bead-type embedding table (max type + 1 at least)")
    hidden_channels: int = Field(128, ge=1)
    num_filters: int = Field(128, ge=1)
    num_interactions: int = Field(3, ge=1)
    num_rbf: int = Field(50, ge=2, description="number of radial basis functions")
    rbf: Literal["expnormal", "gaussian"] = "expnormal"
    trainable_rbf: bool = False
    cutoff_lower: float = Field(0.0, ge=0.0, description="Å; filters vanish below it (when > 0)")
    cutoff_upper: float = Field(12.0, gt=0.0, description="Å; filters vanish beyond it")
    activation: Literal["tanh", "ssp", "silu"] = "tanh"
    output_hidden_channels: int | None = Field(None, ge=1,
                                               description="output MLP width (default hidden/2)")
    neighbour_method: Literal["auto", "dense", "blocked", "cell"] = "auto"
    dense_max_beads: int = Field(64, ge=2,
                                 description="auto: dense all-pairs path up to this many beads")

    @model_validator(mode="after")
    def _cutoffs(self) -> CGSchNetConfig:
        if self.cutoff_upper <= self.cutoff_lower:
            raise ValueError(f"cutoff_upper ({self.cutoff_upper}) must exceed cutoff_lower "
                             f"({self.cutoff_lower})")
        return self
