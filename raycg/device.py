"""One device policy: every hardware-dependent speed choice, per device type (CPU, CUDA, other).

:func:`policy_for` gives a :class:`DevicePolicy` (pair blocks, micro-batches, compile scope and
thresholds, CUDA-graph capture range, precision, deterministic kernels); simulation, training and the
benchmarks read it. A CPU choice is never applied to an accelerator unmeasured. A fast path runs only
after it agreed with its reference on the run's own inputs (:func:`check_fast_path`), else the run falls
back to the reference. Measurements behind each choice: docs/benchmarks.md ("Device policy measurements").
"""

from __future__ import annotations

import contextlib
import math
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

#: CPU: bead pairs per block when a simulation evaluates forces eagerly.
CPU_SIM_PAIR_BLOCK = 4096
#: CPU: bead pairs per training micro-batch.
CPU_TRAIN_PAIR_BLOCK = 8192
#: ``compile: auto`` compiles simulations of at least this many steps.
SIM_COMPILE_AUTO_MIN_STEPS = 10_000
#: ``compile: auto`` compiles trainings of at least this many optimiser steps.
TRAIN_COMPILE_AUTO_MIN_STEPS = 500


@dataclass(frozen=True)
class DevicePolicy:
    """The speed choices for one device type (see the module docstring for the measurements)."""

    kind: str
    #: eager simulation: bead pairs per block (None: whole batches, split only by free memory)
    sim_pair_block: int | None
    #: training: bead pairs per micro-batch (None: whole batches, split only by free memory)
    train_pair_block: int | None
    sim_compile_min_steps: int = SIM_COMPILE_AUTO_MIN_STEPS
    train_compile_min_steps: int = TRAIN_COMPILE_AUTO_MIN_STEPS
    #: what a compiled simulation compiles: "forces" (the network pass and the prior, each its own
    #: graph; the integrator eager) or "step" (the whole integrator step, forces inside, one graph)
    sim_compile_scope: str = "forces"
    #: one host-side health check per step; masking only once a replica is unhealthy (CPU)
    host_health_check: bool = False
    #: capture simulation steps in CUDA graphs at these replica counts (inclusive); None: never
    capture_replicas: tuple[int, int] | None = None
    #: deterministic (non-atomic) scatter kernels during simulation
    deterministic_sim: bool = False
    #: fused optimiser kernel (AdamW fused=True)
    fused_optimizer: bool = False
    #: TF32 matrix products (only where the measured force error stays below the data's noise)
    allow_tf32: bool = False
    #: at most this fraction of the free device memory per pass (whole-batch devices)
    memory_fraction: float = 0.5

    # -- compile -----------------------------------------------------------------------------
    def use_compile(self, setting: bool | str, n_steps: int, *, training: bool) -> bool:
        """Resolve ``compile`` (True / False / "auto") for a run of ``n_steps`` steps."""
        if setting == "auto":
            return n_steps >= (self.train_compile_min_steps if training else self.sim_compile_min_steps)
        return bool(setting)

    # -- CUDA graphs ---------------------------------------------------------------------------
    def use_capture(self, setting: bool | str, n_replicas: int, capturable: bool) -> bool:
        """Resolve ``capture`` (True / False / "auto"): never on a device that cannot capture or for a
        potential that is not capture-safe; ``auto`` within ``capture_replicas``."""
        if self.capture_replicas is None or not capturable or setting is False:
            return False
        if setting == "auto":
            lo, hi = self.capture_replicas
            return lo <= n_replicas <= hi
        return bool(setting)

    # -- blocking --------------------------------------------------------------------------------
    def sim_block(self, n_replicas: int, n_beads: int, bytes_per_replica: int,
                  free_bytes: int | None) -> int | None:
        """Replicas per eager force block, or None for one block."""
        if self.sim_pair_block is not None:
            fit = replicas_per_block(n_beads, self.sim_pair_block)
            return None if n_replicas <= fit else fit
        fit = self._fit_in_memory(bytes_per_replica, free_bytes)
        return None if fit is None or n_replicas <= fit else fit

    def train_micro_batch(self, batch_size: int, n_beads: int, bytes_per_frame: int,
                          free_bytes: int | None) -> int:
        """Frames per training micro-batch: a divisor of ``batch_size`` near the block size."""
        if self.train_pair_block is not None:
            return divisor_block(batch_size, replicas_per_block(n_beads, self.train_pair_block))
        fit = self._fit_in_memory(bytes_per_frame, free_bytes)
        return batch_size if fit is None or batch_size <= fit else divisor_block(batch_size, fit)

    def _fit_in_memory(self, bytes_each: int, free_bytes: int | None) -> int | None:
        if free_bytes is None or bytes_each <= 0:
            return None
        return max(1, int(self.memory_fraction * free_bytes) // bytes_each)

    # -- precision and determinism ------------------------------------------------------------
    @contextlib.contextmanager
    def simulation_context(self) -> Iterator[None]:
        """Deterministic kernels (where the policy asks for them) for the duration of a simulation."""
        if not self.deterministic_sim:
            yield
            return
        before = (torch.are_deterministic_algorithms_enabled(),
                  torch.is_deterministic_algorithms_warn_only_enabled())
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(before[0], warn_only=before[1])

    def apply_precision(self) -> None:
        """Set TF32 as the policy says (called once per run on the device)."""
        if self.kind == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = self.allow_tf32


CPU = DevicePolicy("cpu", sim_pair_block=CPU_SIM_PAIR_BLOCK, train_pair_block=CPU_TRAIN_PAIR_BLOCK,
                   sim_compile_scope="step", host_health_check=True)
CUDA = DevicePolicy("cuda", sim_pair_block=None, train_pair_block=None, capture_replicas=(32, 1024),
                    deterministic_sim=True, fused_optimizer=True)
#: other accelerators (e.g. Apple mps): whole batches, nothing captured; nothing measured yet
OTHER = DevicePolicy("other", sim_pair_block=None, train_pair_block=None)


def policy_for(device: str | torch.device) -> DevicePolicy:
    """The policy of a device ("cpu", "cuda", "cuda:1", a torch.device, ...)."""
    kind = torch.device(device).type
    return CPU if kind == "cpu" else CUDA if kind == "cuda" else OTHER


def resolve_device(name: str | torch.device, error: type[Exception], where: str) -> torch.device:
    """``torch.device(name)``, refusing CUDA where there is none (one line, ``error`` type)."""
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise error(f"device {str(name)!r} requested but CUDA is not available", where=where, hint="use device: cpu")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def free_memory(device: str | torch.device) -> int | None:
    """Bytes a pass on ``device`` can use now: free device memory plus what torch's caching
    allocator holds unused. None on a CPU (blocks there are sized for cache, not memory)."""
    dev = torch.device(device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None
    free, _ = torch.cuda.mem_get_info(dev)
    cached = torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev)
    return int(free + max(0, cached))


# ----------------------------------------------------------------------------------------------
# sizes


def replicas_per_block(n_beads: int, pair_block: int) -> int:
    """Structures of ``n_beads`` beads that fit in a block of ``pair_block`` bead pairs (at least 1)."""
    return max(1, pair_block // max(1, n_beads * (n_beads - 1) // 2))


def divisor_block(batch_size: int, fit: int) -> int:
    """A divisor of ``batch_size`` of at most ``fit`` frames and at least ``fit / 2`` (one compiled
    shape, blocks of equal size); ``fit`` itself when no divisor is that close (e.g. a prime batch)."""
    if batch_size <= fit:
        return batch_size
    for k in range(math.ceil(batch_size / fit), batch_size + 1):
        if batch_size % k == 0 and 2 * (batch_size // k) >= fit:
            return batch_size // k
    return fit


def pass_bytes(n_beads: int, *, hidden: int, filters: int, interactions: int, rbf: int, dtype_bytes: int = 4,
               training: bool = False) -> int:
    """Rough peak bytes per structure of CGSchNet's dense fused energy+forces pass.

    Per unordered pair: the basis and its derivative (2 K), the filter layers, filters and their
    gradients (~7 F per interaction) and pair products (4 F); per bead pair grid the gather
    layout's [B, B, F] contractions (4 B² F); per bead the features of every interaction. Training
    keeps the graph for the weight gradients: x3. Conservative on purpose (the H100 ran 100,000
    CLN025 replicas unblocked; this estimate asks for 0.9 MB each)."""
    p = n_beads * (n_beads - 1) // 2
    elems = p * (2 * rbf + 7 * interactions * filters + 4 * filters) + 4 * n_beads * n_beads * filters \
        + 6 * interactions * n_beads * hidden
    return int(elems * dtype_bytes * (3 if training else 1))


def model_pass_bytes(config: Any, n_beads: int, dtype: torch.dtype, *, training: bool) -> int:
    """:func:`pass_bytes` for a CGSchNetConfig-like object."""
    return pass_bytes(n_beads, hidden=config.hidden_channels, filters=config.num_filters,
                      interactions=config.num_interactions, rbf=config.num_rbf,
                      dtype_bytes=torch.empty((), dtype=dtype).element_size(), training=training)


# ----------------------------------------------------------------------------------------------
# compilation with a fallback


def compile_private(fn: Callable, **options: Any) -> Callable:
    """``torch.compile(fn, **options)`` with a dynamo cache of its own.

    Dynamo keys compiled graphs, their guards and its ``recompile_limit`` (8) on the Python code
    object. Every simulation and training of a long-lived process (a Tune worker runs trial after
    trial) compiles functions of the same code over other objects (weights, coefficients), so with
    one shared code object the guards pile up and after a few runs dynamo silently stops compiling
    (measured: the 5th compiled simulation in one process ran eagerly). A fresh code object per
    call of this function gives each run its own cache, freed with it; inductor's on-disk graph
    cache still makes recompiling an identical graph quick.
    """
    def call(*args, **kwargs):
        return fn(*args, **kwargs)

    private = types.FunctionType(call.__code__.replace(), call.__globals__, "raycg_compiled", None,
                                 call.__closure__)
    return torch.compile(private, **options)


class CompileFallback:
    """Call ``compiled``; if its first call fails (e.g. no C++ compiler on a node), say so in one
    line on stderr and call the eager function from then on (same numbers).

    ``make_eager``: builds the eager function (only when needed). ``who``/``then`` make the line:
    ``"{who}: torch.compile failed ({error}); {then}"``; ``detail`` adds the error's first line.
    """

    def __init__(self, compiled: Callable, make_eager: Callable[[], Callable], *, who: str, then: str,
                 detail: bool = False) -> None:
        self.fn = compiled
        self.make_eager = make_eager
        self.who, self.then, self.detail = who, then, detail
        self.tried = False
        self.error: str | None = None

    def __call__(self, *args, **kwargs):
        if self.tried:
            return self.fn(*args, **kwargs)
        self.tried = True
        try:
            return self.fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any compiler failure; the eager retry re-raises real errors
            self.error = type(exc).__name__
            text = f"{self.error}: {str(exc).splitlines()[0][:200]}" if self.detail and str(exc) else self.error
            print(f"{self.who}: torch.compile failed ({text}); {self.then}", file=sys.stderr, flush=True)
            self.fn = self.make_eager()
            return self.fn(*args, **kwargs)


# ----------------------------------------------------------------------------------------------
# checking a fast path against its reference


#: relative tolerance of a fast path against its reference pass, by the dtype it computes in
#: (round-off of a few passes; a wrong kernel or a stale graph is off by far more)
CHECK_RTOL = {torch.float64: 1e-9, torch.float32: 1e-3, torch.bfloat16: 5e-2}


def disagreement(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor], *,
                 floor: float = 1.0) -> float:
    """Largest difference between paired tensors, each relative to the size of its reference
    (max |want|, at least ``floor``). NaN in both agrees, NaN in one only is inf; integer and
    bool tensors compare as float64, so a flag or counter that differs counts."""
    worst = 0.0
    for a, b in zip(got, want, strict=True):
        a, b = a.detach(), b.detach()
        if not (a.is_floating_point() and b.is_floating_point()):
            a, b = a.to(torch.float64), b.to(torch.float64)
        if a.shape != b.shape:
            return math.inf
        diff = torch.where(torch.isnan(a) & torch.isnan(b), 0.0, (a.to(b.dtype) - b).abs())
        finite = torch.nan_to_num(b, nan=0.0, posinf=0.0, neginf=0.0).abs()
        scale = max(float(finite.max()) if b.numel() else 0.0, floor)
        top = float(torch.nan_to_num(diff, nan=math.inf).max()) if diff.numel() else 0.0
        worst = max(worst, top / scale)
    return worst


def check_fast_path(got: Sequence[torch.Tensor], want: Sequence[torch.Tensor], *,
                    dtype: torch.dtype, who: str, what: str, reference: str, quantities: str,
                    then: str, floor: float = 1.0) -> dict[str, Any]:
    """Compare a fast path's results with its reference's (:func:`disagreement`) against
    :data:`CHECK_RTOL` for ``dtype``. On disagreement one line on stderr: ``"{who}: the {what}
    disagrees with the {reference} (relative difference D in {quantities}); {then}"``.
    Returns ``{"difference", "tolerance", "agrees"}`` for the run's report."""
    worst = disagreement(got, want, floor=floor)
    tol = CHECK_RTOL.get(dtype, CHECK_RTOL[torch.float32])
    agrees = worst <= tol
    if not agrees:
        print(f"{who}: the {what} disagrees with the {reference} (relative difference "
              f"{worst:.2g} in {quantities}); {then}", file=sys.stderr, flush=True)
    return {"difference": worst, "tolerance": tol, "agrees": bool(agrees)}
