"""Training configuration (validated early; errors name the field)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_serializer, model_validator

from raycg.config import StrictModel
from raycg.model.config import CGSchNetConfig
from raycg.priors.config import PriorConfig


def __getattr__(name: str):
    """``COMPILE_AUTO_MIN_STEPS``: ``compile: auto`` compiles trainings of at least this many
    optimiser steps (epochs x batches) on a CPU. Decided per device in ``raycg.device`` (the one
    place, torch), read from there on first use: validating a config does not import torch."""
    if name == "COMPILE_AUTO_MIN_STEPS":
        from raycg.device import TRAIN_COMPILE_AUTO_MIN_STEPS

        return TRAIN_COMPILE_AUTO_MIN_STEPS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class OptimConfig(StrictModel):
    """AdamW, learning-rate schedule and gradient clipping."""

    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    #: Clip the global gradient norm to this (None: no clipping).
    grad_clip_norm: float | None = Field(10.0, gt=0)
    schedule: Literal["plateau", "exponential", "none"] = "plateau"
    #: plateau: multiply the lr by ``plateau_factor`` after ``plateau_patience`` epochs without
    #: validation improvement.
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(3, ge=0)
    #: exponential: lr *= gamma every epoch.
    gamma: float = Field(0.95, gt=0, le=1)
    min_lr: float = Field(1e-6, ge=0)


class LossConfig(StrictModel):
    """Loss = force_weight · MSE(forces) + energy_weight · MSE(energies)."""

    force_weight: float = Field(1.0, ge=0)
    energy_weight: float = Field(0.0, ge=0)
    #: ``tica-marginal``: −k_BT Σ_c ln p_c(y_c) (the published form); ``tica-joint``: −k_BT ln p(y_1..y_k).
    #: Both count the entropy orthogonal to the TICs twice (docs/energy_target.md). ``fes-corrected``:
    #: U₀(x) + F_ref(y(x)) − F₀(y(x)) on a base model U₀ (``base_model``) whose simulated marginal is
    #: F₀ (raycg.train.correction; needs the base model's simulated TICA samples).
    energy_target: Literal["none", "tica-marginal", "tica-joint", "fes-corrected"] = "none"
    #: Loss on batch-centred energies (a free energy is defined up to a constant).
    offset_invariant: bool = False
    density: Literal["histogram", "kde"] = "histogram"
    #: TICA components the energy target uses. ``slow`` (default): the components whose implied
    #: timescale exceeds the TICA lag (eigenvalue > 1/e), at most 2 for ``tica-joint``: the fast modes,
    #: with eigenvalues near 0 or negative, only add noise to the target (on the embedded reference,
    #: summing all 45 components spreads the target ~10x wider). ``all``: every component of the
    #: reference TICA, the published form. An integer: the first n components.
    n_components: int | Literal["slow", "all"] = "slow"
    #: Histogram bins per TICA component.
    bins: int = Field(50, ge=2, le=100_000)
    #: KDE bandwidth (scipy bw_method: a number, "scott" or "silverman"; None = scott).
    kde_bandwidth: float | Literal["scott", "silverman"] | None = None
    #: ``fes-corrected``: σ (in bins) of the Gaussian that smooths both histograms (F_ref and F₀) before
    #: their free energies are taken; 0: no smoothing.
    smooth_bins: float = Field(1.0, ge=0, allow_inf_nan=False)
    #: ``fes-corrected``: the base model U₀ the correction is added to. ``priors``: the prior energy
    #: alone (simulated once per dataset; the network then learns F_ref − F₀). ``force-matched``: a model
    #: trained with energy_weight 0 (priors + force-matched network), simulated; its energies at the
    #: reference frames are part of the correction inputs.
    base_model: Literal["priors", "force-matched"] = "priors"
    #: ``fes-corrected``: at most this many correction steps (train, simulate, correct again with the
    #: trained model as the base); stops earlier when the JS divergence between the model's simulated
    #: TICA marginal and the reference falls below ``correction_tolerance`` or stops decreasing.
    correction_iterations: int = Field(1, ge=1, le=20)
    #: JS divergence (nats, on the target's grid) below which the iteration stops.
    correction_tolerance: float = Field(0.01, gt=0, le=0.6931471805599453)
    #: ``fes-corrected`` in a study, ``base_model: priors``: integration steps of the prior-only base
    #: simulation run at prepare (None: ``simulation.n_steps``).
    base_steps: int | None = Field(None, ge=1)
    #: ``fes-corrected`` in a study, ``base_model: force-matched``: seconds a trial waits for its base
    #: trial (energy weight 0, same seed) to finish before it fails.
    base_wait_s: float = Field(3600.0, gt=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _consistent(self) -> LossConfig:
        if isinstance(self.n_components, int) and self.n_components < 1:
            raise ValueError(f"n_components must be >= 1, 'slow' or 'all' (got {self.n_components})")
        if self.energy_weight > 0 and self.energy_target == "none":
            raise ValueError("energy_weight > 0 needs an energy_target (tica-marginal, tica-joint or fes-corrected)")
        if self.energy_target == "fes-corrected":
            if self.density != "histogram":
                raise ValueError(f"density={self.density!r}: energy_target 'fes-corrected' uses histograms "
                                 "(set density: histogram)")
            if self.n_components == "all" or (isinstance(self.n_components, int) and self.n_components > 2):
                raise ValueError(f"n_components={self.n_components!r}: energy_target 'fes-corrected' uses "
                                 "1 or 2 TICA components ('slow', 1 or 2)")
        elif self.correction_iterations > 1:
            raise ValueError(f"correction_iterations={self.correction_iterations} needs "
                             "energy_target: fes-corrected")
        if self.force_weight == 0 and self.energy_weight == 0:
            raise ValueError("force_weight and energy_weight are both 0: nothing to train")
        return self


class TicaSettings(StrictModel):
    """The reference TICA used for energy targets (fitted once per dataset if not given)."""

    lag: int = Field(20, ge=1, description="frames")
    dim: int | None = Field(None, ge=1)
    features: Literal["pair_distances", "pair_distances+pseudo_dihedrals"] = "pair_distances"
    #: A saved ReferenceTICA (``.npz``) to use instead of fitting one.
    path: str | None = None


class TrainConfig(StrictModel):
    """One training run: model, optimiser, loss, data handling, stopping."""

    seed: int = 0
    model: CGSchNetConfig = Field(default_factory=CGSchNetConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    tica: TicaSettings | None = None
    epochs: int = Field(50, ge=1)
    batch_size: int = Field(256, ge=1)
    #: Fraction of *trajectories* held out for validation (trajectory-level split).
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    split_seed: int | None = Field(None, description="seed of the split (None: same as seed)")
    #: Stop after this many epochs without validation improvement (None: never).
    early_stopping_patience: int | None = Field(10, ge=1)
    #: An epoch improves when the monitored loss falls by more than this (its units).
    early_stopping_min_delta: float = Field(0.0, ge=0.0)
    #: The validation loss that picks the model kept, steps the plateau schedule and stops training:
    #: ``val_loss`` (the loss trained on, w_F·force + w_E·energy) or ``val_force_loss`` (the force
    #: term alone: the same rule for models with and without an energy term). Without validation
    #: frames, the training loss.
    early_stopping_monitor: Literal["val_loss", "val_force_loss"] = "val_loss"
    #: Use every n-th frame of the training trajectories.
    frame_stride: int = Field(1, ge=1)
    #: At most this many validation frames (evenly spaced) are evaluated per epoch.
    max_val_frames: int | None = Field(None, ge=1)
    dtype: Literal["float32", "float64"] = "float32"
    #: bfloat16 autocast of the network on CUDA only (forces are checked in float32 on validation).
    amp: bool = False
    #: ``torch.compile`` the fused energy+forces pass for training (dense path): ~1.2× the eager
    #: frames/s on a 2-core CPU (benchmarks/bench_train.py) for a one-off compilation of seconds
    #: (cached) to about a minute (cold). ``auto``: compile runs of at least
    #: COMPILE_AUTO_MIN_STEPS optimiser steps.
    compile: bool | Literal["auto"] = "auto"
    progress: bool = True

    @model_serializer(mode="wrap")
    def _omit_default_monitor(self, handler: Any) -> dict[str, Any]:
        """The default monitor is left out of dumps, so configs (and hashes) from before it exist read
        the same."""
        data = handler(self)
        if isinstance(data, dict) and data.get("early_stopping_monitor") == "val_loss":
            data.pop("early_stopping_monitor")
        return data

    def use_compile(self, batches_per_epoch: int, device: str = "cpu") -> bool:
        """Whether training compiles the fused pass (resolves ``compile: auto`` by the device policy)."""
        from raycg.device import policy_for

        return policy_for(device).use_compile(self.compile, self.epochs * batches_per_epoch, training=True)

    @model_validator(mode="after")
    def _need_tica(self) -> TrainConfig:
        if self.loss.energy_target != "none" and self.tica is None:
            raise ValueError(f"loss.energy_target={self.loss.energy_target!r} needs TICA settings: add a "
                             "'tica:' section (lag, dim, features or path)")
        return self


class TrainRunConfig(TrainConfig):
    """``raycg train CONFIG``: a TrainConfig plus where the inputs and outputs are."""

    dataset: str = Field(description="path of a raycg CG dataset directory")
    #: A PriorSet JSON, "fit" (fit priors on the dataset with ``prior_config``) or "none".
    priors: str = "fit"
    prior_config: PriorConfig | None = None
    out: str = Field(description="output directory")
    device: str = "cpu"
    resume: bool = True
