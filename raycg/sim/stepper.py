"""One step of all replicas: noise, integrator update (one force evaluation), blow-up masking."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from raycg.device import CompileFallback, check_fast_path, compile_private
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
                 host_check: bool, compile_step: bool = False,
                 on_fallback: Callable[[str], None] | None = None) -> None:
        self.integrate: Integrate = baoab_step if integrator == "baoab" else brownian_step
        self.coef = coef
        self.force_fn = force_fn
        self.guard = guard
        self.host_check = host_check
        self.eager = functools.partial(self.integrate, c=coef, force_fn=force_fn)
        self.on_fallback = on_fallback
        #: the compiled step's check (:meth:`compile_now`): difference, tolerance, agrees
        self.compile_check: dict | None = None
        self.update = self._update(compile_step)

    def _update(self, compile_step: bool) -> Callable[..., tuple[Tensor, Tensor, Tensor, Tensor]]:
        """``(x, v, f, noise) -> (x, v, f, E)``: the integrator with its force pass, compiled as one graph
        with ``compile_step`` (the device policy's step scope; the force pass must then be traceable),
        with a one-line eager fallback if compilation fails."""
        if not compile_step:
            return self.eager
        compiled = compile_private(self.eager, dynamic=False)

        def make_eager():
            if self.on_fallback is not None:
                self.on_fallback(guarded.error or "")
            return self.eager

        guarded = CompileFallback(compiled, make_eager, who="raycg.sim", then="running the step eagerly",
                                  detail=True)
        return guarded

    def compile_now(self, s: ReplicaState) -> None:
        """Compile the step now and check it: one throw-away step from ``s`` with zero noise, compiled
        and eager (``s`` and the random stream are untouched), so compilation is not counted as
        simulation time and a miscompiled step never runs. If the two disagree beyond round-off
        (a compiler bug: inductor once returned wrong forces when the step also reduced over them),
        one line on stderr and the step runs eagerly (:func:`raycg.device.check_fast_path`; the
        measured difference is kept in ``compile_check``)."""
        if not isinstance(self.update, CompileFallback):
            return
        noise = torch.zeros_like(s.x) if self.coef.stochastic else None
        with torch.no_grad():                           # as in the run loop: one graph
            got = self.update(s.x.clone(), s.v.clone(), s.f.clone(), noise)
            if self.update.error is not None:           # compilation failed: already eager
                return
            want = self.eager(s.x.clone(), s.v.clone(), s.f.clone(), noise)
        self.compile_check = check_fast_path(
            got, want, dtype=want[0].dtype, who="raycg.sim", what="compiled step",
            reference="eager step", quantities="x, v, F or E", then="running the step eagerly")
        if not self.compile_check["agrees"]:
            self.update.fn = self.eager
            self.update.error = "compiled step disagrees with eager"
            if self.on_fallback is not None:
                self.on_fallback(self.update.error)

    def noise(self, shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype,
              device: torch.device) -> Tensor | None:
        """This step's standard normal noise (None for friction-free BAOAB)."""
        if not self.coef.stochastic:
            return None
        return torch.randn(shape, generator=generator, dtype=dtype, device=device)

    def __call__(self, s: ReplicaState, noise: Tensor | None) -> ReplicaState:
        s.step += 1
        x, v, f, e = self.update(s.x, s.v, s.f, noise)
        if self.host_check and self.guard.all_healthy(x, v, f, e):
            return s.replace(x=x, v=v, f=f, e=e)
        out = self.guard.mask(s, x, v, f, e)
        self.host_check = self.host_check and bool(out.alive.all())
        return out
