"""One step of all replicas: noise, integrator update (one force evaluation), blow-up masking."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from raycg.sim.integrators import ForceFn, StepCoefficients, baoab_step, brownian_step
from raycg.sim.state import BlowupGuard, ReplicaState

Integrate = Callable[..., tuple[Tensor, Tensor, Tensor, Tensor]]


class Stepper:
    """``stepper(state, noise) -> state`` advances every replica by one step.

    ``host_check``: while every replica is alive, check health with one host synchronisation and
    skip the masking when all are healthy (the masked update of an all-healthy batch is the
    identity, so the bits are the same either way; a CPU choice). Without it the masked update
    always runs with no host synchronisation, so the step can be captured in a CUDA graph.
    """

    def __init__(self, integrator: str, coef: StepCoefficients, force_fn: ForceFn, guard: BlowupGuard, *,
                 host_check: bool) -> None:
        self.integrate: Integrate = baoab_step if integrator == "baoab" else brownian_step
        self.coef = coef
        self.force_fn = force_fn
        self.guard = guard
        self.host_check = host_check

    def noise(self, shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype,
              device: torch.device) -> Tensor | None:
        """This step's standard normal noise (None for friction-free BAOAB)."""
        if not self.coef.stochastic:
            return None
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)

    def __call__(self, s: ReplicaState, noise: Tensor | None) -> ReplicaState:
        s.step += 1
        x, v, f, e = self.integrate(s.x, s.v, s.f, noise, self.coef, self.force_fn)
        if self.host_check and self.guard.all_healthy(x, v, f, e):
            return s.replace(x=x, v=v, f=f, e=e)
        out = self.guard.mask(s, x, v, f, e)
        self.host_check = self.host_check and bool(out.alive.all())
        return out
