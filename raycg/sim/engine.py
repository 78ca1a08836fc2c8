"""``simulate``: many replicas advanced together, per-replica blow-up safety, chunked output, resume.

Units: Å, ps, amu, kcal/mol, K. See :mod:`raycg.sim.integrators` for the integrators,
:mod:`raycg.sim.output` for the output layout, :mod:`raycg.device` for what runs differently on
a CPU and a GPU, and :mod:`raycg.sim.capture` for CUDA-graph steps.

A run is a :class:`Simulation`: the replica state (:class:`~raycg.sim.state.ReplicaState`), a
step function (:class:`~raycg.sim.stepper.Stepper`), frame buffers flushed in chunks, and
checkpoint / report methods.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from raycg.device import CompileFallback, check_fast_path, compile_private, policy_for, resolve_device
from raycg.errors import InputError
from raycg.model.protocols import ForceSource, SimulationPotential
from raycg.sim.capture import CapturedSteps, CudaGraphs, EagerGraphs, try_capture
from raycg.sim.config import SimulationConfig, make_config
from raycg.sim.frames import FrameBuffers, FrameSink
from raycg.sim.integrators import REASONS, StepCoefficients, internal_mass, make_force_fn, maxwell_boltzmann
from raycg.sim.output import (
    PARTIAL,
    SimulationResult,
    TrajectoryWriter,
    clear_outputs,
    default_topology,
    write_topology,
)
from raycg.sim.state import (
    CHECKPOINT,
    CHECKPOINT_FORMAT,
    BlowupGuard,
    ReplicaState,
    check_resumable,
    load_checkpoint,
    save_checkpoint,
)
from raycg.sim.stepper import Stepper

if TYPE_CHECKING:
    import mdtraj

    from raycg.model.protocols import Potential

#: a start/velocity array ``[R, B, 3]`` (or one structure ``[B, 3]``), numpy or torch
Positions = np.ndarray | torch.Tensor

__all__ = ["CHECKPOINT", "CPU_FAST_PATH", "Simulation", "simulate"]

#: skip per-replica masking on CPU while every replica is healthy (tests switch it off to exercise the
#: always-masked path that accelerators use)
CPU_FAST_PATH = True
NAN_POLICY = ("frames saved at or after a replica's death are excluded from its trajectory file; "
              "thermo arrays are NaN from that frame on; kinetic_temperature is NaN for brownian dynamics")


def _check_inputs(masses, start_positions, bonds, topology, dtype, device):
    x0 = torch.as_tensor(np.asarray(start_positions) if not torch.is_tensor(start_positions) else start_positions)
    if x0.ndim == 2:
        x0 = x0[None]
    if x0.ndim != 3 or x0.shape[-1] != 3 or x0.shape[0] == 0 or x0.shape[1] == 0:
        raise InputError(f"start_positions must have shape [replicas, beads, 3], got {tuple(x0.shape)}",
                         where="simulate")
    x0 = x0.to(device=device, dtype=dtype)
    if not bool(torch.isfinite(x0).all()):
        bad = torch.nonzero(~torch.isfinite(x0).flatten(1).all(1)).flatten().tolist()
        raise InputError(f"start_positions of replica(s) {bad[:5]} are not finite", where="simulate")
    r_, b_ = int(x0.shape[0]), int(x0.shape[1])
    m = np.asarray(masses.detach().cpu() if torch.is_tensor(masses) else masses, dtype=np.float64).reshape(-1)
    if m.shape != (b_,):
        raise InputError(f"masses has {m.size} values for {b_} beads", where="simulate", hint="one mass (amu) per bead")
    if not np.all(np.isfinite(m) & (m > 0)):
        raise InputError(f"masses must be finite and > 0 amu (bead {int(np.argmin(m))})", where="simulate")
    if topology is not None and topology.n_atoms != b_:
        raise InputError(f"topology has {topology.n_atoms} atoms for {b_} beads", where="simulate")
    if bonds is None and topology is not None:
        bonds = [[b[0].index, b[1].index] for b in topology.bonds]
    bonds_np = np.zeros((0, 2), np.int64) if bonds is None else np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    if bonds_np.size and (bonds_np.min() < 0 or bonds_np.max() >= b_):
        raise InputError(f"bond indices must lie in [0, {b_}), got {bonds_np.min()}..{bonds_np.max()}",
                         where="simulate")
    return x0, m, bonds_np, r_, b_


def _force_source(potential: Potential, cfg: SimulationConfig, use_compile: bool, scope: str = "forces"):
    """What the integrator calls for forces, and a description for the run report.

    A potential with ``simulation_forces(compile=, table_spacing_A=, traceable=)`` (raycg's
    EnergyModel: tabulated filters, fused pass and prior compiled, blocks as the device policy says)
    provides its own; with ``scope="step"`` it provides a traceable uncompiled pass and the
    :class:`~raycg.sim.stepper.Stepper` compiles the whole step around it. Otherwise, with
    ``compile``, a module is compiled as a ``pos -> E`` function (AOTAutograd compiles its
    backward, i.e. the forces, too) and another object's ``energy_and_forces`` is compiled. Only
    raycg's own passes are marked ``capturable``.
    """
    if isinstance(potential, SimulationPotential):
        step = use_compile and scope == "step"
        eaf = potential.simulation_forces(compile=use_compile and not step, table_spacing_A=cfg.filter_table_spacing_A,
                                          traceable=step)
        info = getattr(eaf, "info", None)
        info = {} if info is None else info     # the pass's own dict: it adds to it
        info["compiled"] = use_compile          # by the pass, or (step scope) by the stepper
        if use_compile:
            info["compile_scope"] = "step" if step else "forces"
    elif not use_compile:
        return potential, {"compiled": False}
    elif isinstance(potential, torch.nn.Module):
        return compile_private(potential, dynamic=False), {"compiled": True, "compile_scope": "forces"}
    elif isinstance(potential, ForceSource):
        eaf = compile_private(potential.energy_and_forces, dynamic=False)
        info = {"compiled": True, "compile_scope": "forces"}
    else:
        return compile_private(potential, dynamic=False), {"compiled": True, "compile_scope": "forces"}

    class _Forces:
        energy_and_forces = staticmethod(eaf)

    return _Forces(), info


def _working_force_fn(potential: Potential, cfg: SimulationConfig, x0: torch.Tensor, scope: str):
    """The force function, tried once on the start positions when compiled. If compilation fails
    (e.g. no C++ compiler on a node), say so in one line and fall back to the eager pass; if the
    compiled pass disagrees with the eager one there (:func:`raycg.device.check_fast_path`, the
    report's ``compile_check``), the same. With a step-scope compilation the pass is returned
    uncompiled (the stepper compiles and checks the step)."""
    source, info = _force_source(potential, cfg, cfg.use_compile(), scope)
    fn = make_force_fn(source)
    if not info.get("compiled") or info.get("compile_scope") == "step":
        return fn, info

    def make_eager():
        eager_source, eager_info = _force_source(potential, cfg, False)
        info.clear()
        info.update(eager_info, compile_error=guarded.error)
        return make_force_fn(eager_source)

    guarded = CompileFallback(fn, make_eager, who="raycg.sim", then="running eagerly", detail=True)
    got = guarded(x0)                           # compiles now, for this (R, B) shape
    if guarded.error is None:
        want = make_force_fn(_force_source(potential, cfg, False)[0])(x0)
        check = check_fast_path(got, want, dtype=x0.dtype, who="raycg.sim", what="compiled force pass",
                                reference="eager pass", quantities="E or F", then="running eagerly")
        if not check["agrees"]:
            guarded.error = "compiled forces disagree with eager"
            guarded.fn = make_eager()
        info["compile_check"] = check
    return guarded, info


class Simulation:
    """One batched simulation run (see :func:`simulate` for the arguments): built once, then :meth:`run`."""

    def __init__(self, potential: Potential, masses: Sequence[float] | np.ndarray | torch.Tensor,
                 start_positions: Positions, cfg: SimulationConfig, *, out_dir: str | Path | None = None,
                 topology: mdtraj.Topology | None = None, bonds: Sequence[Sequence[int]] | np.ndarray | None = None,
                 progress: bool = True, velocities: Positions | None = None, overwrite: bool = False,
                 keep_positions: bool | None = None,
                 on_checkpoint: Callable[[int, Path], None] | None = None) -> None:
        self.cfg, self.progress, self.on_checkpoint = cfg, progress, on_checkpoint
        self.device = resolve_device(cfg.device, InputError, "SimulationConfig.device")
        self.policy = policy_for(self.device)
        self.dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        x0, self.masses, self.bonds, self.r, self.b = _check_inputs(masses, start_positions, bonds, topology,
                                                                    self.dtype, self.device)
        self.temps = cfg.temperatures(self.r)
        if cfg.blowup_max_bond_A is not None and self.bonds.shape[0] == 0:
            raise InputError("blowup_max_bond_A is set but no bonds were given", where="simulate",
                             hint="pass bonds=[[i, j], ...] or a topology with bonds")
        if isinstance(potential, torch.nn.Module):
            potential.to(device=self.device, dtype=self.dtype)
        self.force_fn, self.force_info = _working_force_fn(potential, cfg, x0, self.policy.sim_compile_scope)
        m_int = internal_mass(torch.as_tensor(self.masses, dtype=torch.float64))
        coef = StepCoefficients(cfg.integrator, cfg.dt_ps, cfg.friction_per_ps,
                                torch.tensor(self.temps, dtype=torch.float64), m_int)
        for name in ("half_dt_inv_m", "noise_scale", "drift"):
            if hasattr(coef, name):
                setattr(coef, name, getattr(coef, name).to(device=self.device, dtype=self.dtype))
        self.m_int = m_int.to(device=self.device, dtype=self.dtype)
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(cfg.seed)
        self.out_dir, self.writer, ck, topology = self._open_output(out_dir, overwrite, topology, x0)
        self.resumed = ck is not None
        guard = BlowupGuard(torch.as_tensor(self.bonds[:, 0], device=self.device),
                            torch.as_tensor(self.bonds[:, 1], device=self.device), cfg.blowup_max_bond_A)
        self.state = self._resume(ck) if ck is not None else guard.kill_broken_starts(self._start(x0, velocities))
        self.start_step = int(ck["step"]) if ck is not None else 0
        host_check = CPU_FAST_PATH and self.policy.host_health_check and bool(self.state.alive.all())
        self.stepper = Stepper(cfg.integrator, coef, self.force_fn, guard, host_check=host_check,
                               compile_step=self.force_info.get("compile_scope") == "step",
                               on_fallback=self._step_fallback)
        self.stepper.compile_now(self.state)
        if self.stepper.compile_check is not None:
            self.force_info["compile_check"] = self.stepper.compile_check
        self.n_frames_total = cfg.n_steps // cfg.save_every
        if keep_positions is None:
            keep_positions = self.out_dir is None or self.r * self.n_frames_total * self.b * 12 < 256 * 2**20
        self.keep_positions = keep_positions
        self.frames = FrameBuffers(min(cfg.chunk_frames, max(1, self.n_frames_total)), self.r, self.b, self.m_int,
                                   brownian=cfg.integrator == "brownian", dtype=self.dtype, device=self.device)
        self.sink = FrameSink(self.writer, self.out_dir, keep_positions, cfg.dt_ps)
        self.captured = self._capture(CudaGraphs(self.device) if self.device.type == "cuda" else EagerGraphs())

    # -- set-up -------------------------------------------------------------------------------------
    def _step_fallback(self, error: str) -> None:
        """The compiled step failed to compile: it runs eagerly (same numbers); the report says so."""
        self.force_info.update(compiled=False, compile_error=error)

    def _open_output(self, out_dir, overwrite: bool, topology, x0: torch.Tensor):
        """(out_dir, writer, checkpoint to resume or None, topology)."""
        if out_dir is None:
            return None, None, None, topology
        out_dir = Path(out_dir)
        if overwrite:
            clear_outputs(out_dir)
        elif (out_dir / "replicas.json").exists():
            raise InputError(f"{out_dir} already holds a finished simulation",
                             hint="choose another output directory or pass overwrite=True (CLI: --overwrite)")
        ck = None
        ck_path = out_dir / CHECKPOINT
        if ck_path.exists() and (out_dir / PARTIAL).is_dir():
            ck = load_checkpoint(ck_path)
            check_resumable(ck, self.cfg, self.r, self.b, ck_path)
        else:
            clear_outputs(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if topology is None:
            topology = default_topology(self.b, self.bonds)
        writer = TrajectoryWriter(out_dir, topology, self.r)
        if ck is None:
            write_topology(out_dir / "topology.pdb", topology, self.masses, x0[0].detach().cpu().numpy())
        return out_dir, writer, ck, topology

    def _resume(self, ck: dict) -> ReplicaState:
        self.gen.set_state(ck["rng_state"])
        self.writer.truncate(ck["frames_written"].numpy(), int(ck["n_frames"]))
        return ReplicaState.from_checkpoint(ck, self.device, self.dtype)

    def _start(self, x0: torch.Tensor, velocities) -> ReplicaState:
        x, (r_, b_) = x0.clone(), (self.r, self.b)
        if self.cfg.integrator == "brownian":
            v = torch.zeros_like(x)
        elif velocities is not None:
            v = torch.as_tensor(velocities).to(device=self.device, dtype=self.dtype)
            if tuple(v.shape) != (r_, b_, 3) or not bool(torch.isfinite(v).all()):
                raise InputError(f"velocities must be finite with shape {(r_, b_, 3)}, got {tuple(v.shape)}",
                                 where="simulate")
        else:
            v = maxwell_boltzmann(self.masses, self.temps, r_, self.gen, dtype=self.dtype, device=self.device)
        e, f = self.force_fn(x)
        if tuple(e.shape) != (r_,) or tuple(f.shape) != (r_, b_, 3):
            raise InputError(f"potential returned energy {tuple(e.shape)} / forces {tuple(f.shape)}; expected "
                             f"({r_},) / {(r_, b_, 3)}", where="simulate",
                             hint="the potential must map pos[R,B,3] to one energy per replica")
        return ReplicaState.start(x, v, f.to(self.dtype), e.to(self.dtype))

    def _capture(self, backend: CudaGraphs | EagerGraphs) -> CapturedSteps | None:
        """Captured steps when the device policy and the config say so (CUDA only), else None."""
        capturable = bool(self.force_info.get("capturable", False))
        self.force_info["captured"] = False
        if not self.cfg.use_capture(self.r, capturable) or self.cfg.n_steps <= self.start_step:
            return None
        return self.capture_steps(backend)

    def capture_steps(self, backend: CudaGraphs | EagerGraphs) -> CapturedSteps | None:
        """Capture the step (and the recording step) with ``backend`` and check it against the
        uncaptured step (:func:`~raycg.sim.capture.try_capture`; the report's ``capture_check``);
        on failure or disagreement one line on stderr and the run stays uncaptured (same
        numbers)."""
        saved = self.gen.get_state()
        captured, info = try_capture(self.stepper, self.state, self.frames, self.gen, backend)
        self.force_info.update(info)
        if captured is None:                    # a fresh generator with the untouched random stream
            self.gen = torch.Generator(device=self.device)
            self.gen.set_state(saved)
            return None
        self.state = captured.state
        self.force_info["captured"] = True
        self.force_info["capture_backend"] = captured.backend
        self.captured = captured
        return captured

    # -- the loop -------------------------------------------------------------------------------------
    def advance(self, record: bool) -> None:
        """One step of every replica (captured or not); with ``record`` the frame is buffered."""
        if self.captured is not None:
            self.captured.step(record)
            return
        noise = self.stepper.noise((self.r, self.b, 3), self.gen, self.dtype, self.device)
        self.state = self.stepper(self.state, noise)
        if record:
            self.frames.record(self.state)

    def flush(self) -> None:
        self.sink.put(self.frames.take())

    def checkpoint(self, step: int) -> None:
        save_checkpoint(self.out_dir / CHECKPOINT, {
            "format": CHECKPOINT_FORMAT, "version": 1, "step": int(step), "n_replicas": self.r, "n_beads": self.b,
            **self.state.checkpoint_tensors(), "rng_state": self.gen.get_state(),
            "frames_written": torch.as_tensor(self.writer.frames_written.copy()), "n_frames": int(self.writer.n_frames),
            "config": json.dumps(self.cfg.model_dump(mode="json"), sort_keys=True),
        })

    def run(self) -> SimulationResult:
        """Integrate to ``n_steps``, writing frames and checkpoints; the result (and output files)."""
        from raycg.utils.progress import Progress

        cfg = self.cfg
        save_every, ck_every = cfg.save_every, cfg.checkpoint_every
        t0 = time.perf_counter()
        with torch.no_grad(), Progress(cfg.n_steps, desc="sim", unit="step", initial=self.start_step,
                                       disable=not self.progress) as bar:
            for step in range(self.start_step + 1, cfg.n_steps + 1):
                record = step % save_every == 0
                self.advance(record)
                if record:
                    self.frames.steps.append(step)
                    bar.update(save_every)
                    if self.frames.full:
                        self.flush()
                if self.writer is not None and ck_every is not None and step % ck_every == 0 and step < cfg.n_steps:
                    self.flush()
                    self.checkpoint(step)
                    if self.on_checkpoint is not None:
                        self.on_checkpoint(step, self.out_dir)
            self.flush()
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
        wall = time.perf_counter() - t0
        return self.result(wall)

    # -- report -------------------------------------------------------------------------------------
    def result(self, wall: float) -> SimulationResult:
        cfg, r_ = self.cfg, self.r
        steps_done = cfg.n_steps - self.start_step
        steps_per_s = steps_done / wall if wall > 0 and steps_done > 0 else float("nan")
        alive_np, died_np = self.state.alive.cpu().numpy(), self.state.died.cpu().numpy()
        reason_np = self.state.reason.cpu().numpy()
        reasons = [None if alive_np[r] else REASONS.get(int(reason_np[r]), "unknown") for r in range(r_)]
        blown = [{"replica": int(r), "step": int(died_np[r]), "time_ps": float(died_np[r] * cfg.dt_ps),
                  "reason": reasons[r]} for r in range(r_) if not alive_np[r]]
        steps_all = np.arange(1, self.n_frames_total + 1, dtype=np.int64) * cfg.save_every
        # frames per replica: saved frames strictly before death
        nfr = np.array([self.n_frames_total if alive_np[r] else int(np.sum(steps_all < died_np[r])) for r in range(r_)],
                       dtype=np.int64)
        result_kw = dict(alive=alive_np, died_at_step=np.where(alive_np, -1, died_np), reasons=reasons,
                         n_frames_per_replica=nfr, blown_up=blown, steps_per_s=steps_per_s, wall_s=wall,
                         final_positions=self.state.x.detach().cpu().numpy(),
                         final_velocities=self.state.v.detach().cpu().numpy(), info={"forces": self.force_info})
        if self.writer is not None:
            self.checkpoint(cfg.n_steps)
            self.writer.finalize(self.report(alive_np, nfr, blown, steps_per_s, wall))
        if self.out_dir is not None and (self.resumed or not self.keep_positions):
            from raycg.sim.output import load_simulation

            res = load_simulation(self.out_dir, positions=self.keep_positions)
            for k_, v_ in result_kw.items():
                setattr(res, k_, v_)
            return res
        s = self.sink
        pos = s.stacked("x", (0, r_, self.b, 3)).transpose(1, 0, 2, 3) if self.keep_positions else None
        return SimulationResult(
            positions=pos, potential_energy=s.stacked("e", (0, r_)).T, kinetic_temperature=s.stacked("t", (0, r_)).T,
            time_ps=steps_all * cfg.dt_ps, step=steps_all, out_dir=self.out_dir, **result_kw,
        )

    def report(self, alive_np: np.ndarray, nfr: np.ndarray, blown: list[dict], steps_per_s: float,
               wall: float) -> dict:
        """The ``replicas.json`` of a finished run."""
        from raycg.utils.provenance import provenance

        cfg = self.cfg
        return {
            "format": "raycg-sim-output", "version": 1, "complete": True, "n_replicas": self.r, "n_beads": self.b,
            "n_steps": cfg.n_steps, "n_frames": self.n_frames_total, "frames_per_replica": nfr.tolist(),
            "save_every": cfg.save_every, "dt_ps": cfg.dt_ps, "integrator": cfg.integrator,
            "friction_per_ps": cfg.friction_per_ps, "temperature_K": self.temps, "dtype": cfg.dtype,
            "device": cfg.device, "seed": cfg.seed, "alive": alive_np.tolist(), "n_blown_up": len(blown),
            "blown_up": blown, "reason_codes": {str(k): v_ for k, v_ in REASONS.items()}, "nan_policy": NAN_POLICY,
            "steps_per_s": steps_per_s, "replica_steps_per_s": steps_per_s * self.r, "wall_s": wall,
            "resumed_from_step": self.start_step if self.resumed else None,
            "units": {"length": "angstrom (nm inside the mdtraj .h5 files)", "time": "ps",
                      "energy": "kcal/mol", "temperature": "K", "mass": "amu"},
            "masses": self.masses.tolist(), "bonds": self.bonds.tolist(), "forces": self.force_info,
            "provenance": provenance(cfg),
        }


def simulate(potential: Potential, masses: Sequence[float] | np.ndarray | torch.Tensor, start_positions: Positions,
             config: SimulationConfig | dict | None = None, *, out_dir: str | Path | None = None,
             topology: mdtraj.Topology | None = None, bonds: Sequence[Sequence[int]] | np.ndarray | None = None,
             progress: bool = True, velocities: Positions | None = None, overwrite: bool = False,
             keep_positions: bool | None = None,
             on_checkpoint: Callable[[int, Path], None] | None = None) -> SimulationResult:
    """Simulate replicas ``start_positions`` [R, B, 3] (Å) of beads with ``masses`` [B] (amu).

    ``potential``: module/callable ``pos[R,B,3] -> E[R]`` (kcal/mol; forces by autograd) or an object
    with ``energy_and_forces(pos) -> (E[R], F[R,B,3])``. An ``nn.Module`` is moved to the config's
    device and dtype. ``velocities`` [R, B, 3] Å/ps (default: Maxwell–Boltzmann from the seed).
    ``bonds`` [nb, 2] bead pairs (default: the topology's bonds) define the blow-up envelope.

    With ``out_dir`` the run writes the layout of :mod:`raycg.sim.output` and resumes from
    ``out_dir/checkpoint.pt`` if an unfinished run with the same config is there (bit-for-bit).
    ``keep_positions``: keep saved frames in memory (default: without out_dir, or if < 256 MB).
    ``on_checkpoint(step, out_dir)``: called after each intermediate checkpoint is written (files are
    closed and consistent then; e.g. to report to Ray Tune). Not called for the final state.
    On CUDA, steps are captured in CUDA graphs as the config and the device policy say
    (``SimulationConfig.capture``; the run's ``info["forces"]["captured"]`` says whether), once
    the captured step agreed with the uncaptured one (``capture_check``; a compiled step is checked
    against the eager one too: ``compile_check``).
    """
    cfg = make_config(config)
    policy = policy_for(cfg.device)
    policy.apply_precision()
    with policy.simulation_context():
        sim = Simulation(potential, masses, start_positions, cfg, out_dir=out_dir, topology=topology, bonds=bonds,
                         progress=progress, velocities=velocities, overwrite=overwrite,
                         keep_positions=keep_positions, on_checkpoint=on_checkpoint)
        return sim.run()
