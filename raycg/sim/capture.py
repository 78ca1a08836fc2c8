"""Simulation steps captured in CUDA graphs and replayed between saves.

At tens to a thousand replicas a GPU step is a few hundred small kernels whose launch overhead,
not arithmetic, sets the speed (measured on one H100: a bare compiled step ran 41k replica-steps/s at 128
replicas uncaptured, 383k captured on an H100). :class:`CapturedSteps` records the *whole* step
once — noise drawn in the graph from the run's generator, the integrator update with its force
pass, blow-up masking, and (second graph) the frame write into the device buffers — over one
static replica state that the replays update in place.

The replays launch the same kernels with the same inputs as the uncaptured loop, and the
generator's graph-safe state advances by the same Philox offsets per step, so a captured run and
an uncaptured one give the same bits for the same seed where the kernels are deterministic (the
device policy turns deterministic scatter kernels on for CUDA simulations). Checkpoints read the
static state and the generator between replays.

Graphs are an execution detail: :class:`EagerGraphs` stands in for them on a CPU (tests run the
captured control flow — static state, in-graph noise, device-side frame slots — bit for bit
against the uncaptured loop there).

A captured step is trusted only after a check (:meth:`CapturedSteps.check`, run by
:func:`try_capture`): from the start state the captured steps and the uncaptured ones advance
:data:`CHECK_STEPS` steps with the same noise; if they disagree beyond round-off
(:func:`raycg.device.check_fast_path`), or capture or replay raises, one line says so and the run
goes on uncaptured. The start state and the run's random stream are left as they were.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import torch

from raycg.device import check_fast_path
from raycg.sim.frames import FrameBuffers
from raycg.sim.state import ReplicaState
from raycg.sim.stepper import Stepper

#: uncaptured warm-up steps before capturing (compilation, autotuning, allocator pools)
WARMUP_STEPS = 3
#: steps of the check before the run (the last one records a frame)
CHECK_STEPS = 3
#: ``capture_error`` of a captured step that failed its check
DISAGREES = "captured step disagrees with uncaptured"


class CudaGraphs:
    """Capture a function in a ``torch.cuda.CUDAGraph`` (the generator registered) and replay it."""

    name = "cuda_graph"

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.graphs: list[torch.cuda.CUDAGraph] = []

    def warm_up(self, fn: Callable[[], None], n: int) -> None:
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(n):
                fn()
        torch.cuda.current_stream(self.device).wait_stream(side)
        torch.cuda.synchronize(self.device)

    def capture(self, fn: Callable[[], None], generator: torch.Generator) -> Callable[[], None]:
        g = torch.cuda.CUDAGraph()
        g.register_generator_state(generator)
        with torch.cuda.graph(g, pool=self.graphs[0].pool() if self.graphs else None):
            fn()
        self.graphs.append(g)
        return g.replay


class EagerGraphs:
    """Stand-in for :class:`CudaGraphs` without a GPU: 'capturing' records the function, a replay
    calls it. The control flow of a captured run, without the graphs."""

    name = "eager_replay"

    def warm_up(self, fn: Callable[[], None], n: int) -> None:
        for _ in range(n):
            fn()

    def capture(self, fn: Callable[[], None], generator: torch.Generator) -> Callable[[], None]:
        return fn


class CapturedSteps:
    """Two replayable steps over one static state: :meth:`step` (one step) and :meth:`step`
    with ``record=True`` (one step, then the frame written into the next buffer slot).

    ``state`` becomes the static state (``self.state``); ``generator`` draws the noise inside
    the graphs. Warm-up runs on a clone of the state with a clone of the generator, so neither
    the state nor the random stream moves before the first replay.
    """

    def __init__(self, stepper: Stepper, state: ReplicaState, frames: FrameBuffers, generator: torch.Generator,
                 backend: CudaGraphs | EagerGraphs) -> None:
        if stepper.host_check:
            raise ValueError("a captured step cannot synchronise with the host (host_check must be off)")
        self.stepper, self.frames, self.generator = stepper, frames, generator
        self.state = state.clone()
        x = self.state.x
        self.shape, self.dtype, self.device = tuple(x.shape), x.dtype, x.device
        warm_gen = torch.Generator(device=self.device)
        warm_gen.set_state(generator.get_state())
        backend.warm_up(self._body(warm_gen, record=False), WARMUP_STEPS)
        backend.warm_up(self._body(warm_gen, record=True), 1)
        self.state.copy_(state)
        frames.slot.zero_()
        self._step = backend.capture(self._body(generator, record=False), generator)
        self._save = backend.capture(self._body(generator, record=True), generator)
        self.backend = backend.name

    def _body(self, generator: torch.Generator, record: bool) -> Callable[[], None]:
        def body() -> None:
            noise = self.stepper.noise(self.shape, generator, self.dtype, self.device)
            self.state.copy_(self.stepper(self.state, noise))
            if record:
                self.frames.record_at(self.state)

        return body

    def step(self, record: bool) -> None:
        (self._save if record else self._step)()

    def check(self, start: ReplicaState, n_steps: int = CHECK_STEPS) -> dict[str, Any]:
        """Replay ``n_steps`` captured steps from ``start`` (the last one recording a frame) and
        take as many uncaptured steps from a copy of ``start`` with the same noise (a generator
        copy); compare the states and the frame (:func:`raycg.device.check_fast_path`: one line
        when they disagree). The static state is ``start`` again, and the generator and the frame
        slot are as before. Returns ``{"steps", "difference", "tolerance", "agrees"}``."""
        rng, slot = self.generator.get_state(), self.frames.slot.clone()
        for k in range(n_steps):
            self.step(record=k == n_steps - 1)
        k = int(slot)
        got = [t.clone() for t in _tensors(self.state)]
        f = self.frames
        got += [b[k].clone() for b in (f.x, f.e, f.t, f.alive)]
        self.state.copy_(start)
        self.generator.set_state(rng)
        self.frames.slot.copy_(slot)
        ref_gen = torch.Generator(device=self.device)
        ref_gen.set_state(rng)
        s = start.clone()
        for _ in range(n_steps):
            s = self.stepper(s, self.stepper.noise(self.shape, ref_gen, self.dtype, self.device))
        ref = FrameBuffers(1, self.shape[0], self.shape[1], f.m_int, brownian=f.brownian,
                           dtype=self.dtype, device=self.device)
        ref.record(s)
        want = [*_tensors(s), ref.x[0], ref.e[0], ref.t[0], ref.alive[0]]
        out = check_fast_path(got, want, dtype=self.dtype, who="raycg.sim", what="captured step",
                              reference="uncaptured step",
                              quantities="the state or the saved frame", then="running uncaptured")
        return {"steps": n_steps, **out}


def _tensors(s: ReplicaState) -> list[torch.Tensor]:
    """The state's tensors in field order (x, v, f, e, alive, died, reason, step)."""
    return [getattr(s, f.name) for f in dataclasses.fields(s)]


def try_capture(stepper: Stepper, state: ReplicaState, frames: FrameBuffers, generator: torch.Generator,
                backend: CudaGraphs | EagerGraphs) -> tuple[CapturedSteps | None, dict[str, Any]]:
    """Captured steps that passed their check (:meth:`CapturedSteps.check`), or None when capture
    or the check's replay raised (one line on stderr) or the check failed; and what the run report
    records (``capture_check``: the measured difference; ``capture_error`` when uncaptured). An
    uncaptured run goes on with the same numbers."""
    phase = "capture"
    try:
        captured = CapturedSteps(stepper, state, frames, generator, backend)
        phase = "check"
        check = captured.check(state)
    except Exception as exc:  # noqa: BLE001 - e.g. a host synchronisation inside the potential
        text = str(exc).splitlines()[0][:200] if str(exc) else ""
        print(f"raycg.sim: CUDA graph {phase} failed ({type(exc).__name__}: {text}); "
              "running uncaptured", file=sys.stderr, flush=True)
        if state.x.device.type == "cuda":
            torch.cuda.synchronize(state.x.device)
        return None, {"capture_error": type(exc).__name__}
    if not check["agrees"]:
        return None, {"capture_error": DISAGREES, "capture_check": check}
    return captured, {"capture_check": check}
