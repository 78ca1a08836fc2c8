"""OpenMM as a second simulation engine: raycg's replicas, protocol and output files, run by OpenMM.

:func:`simulate_openmm` takes what :func:`raycg.sim.simulate` takes (Å, ps, amu, kcal/mol, K) and
writes the same output directory (:mod:`raycg.sim.output`: topology.pdb, replica_NNNN.h5,
thermo.npz, replicas.json, checkpoint.pt; resumable). Each replica is one OpenMM Context of the
system of :func:`raycg.export.to_openmm` (the raycg energy as an ``openmm.PythonForce``):

- ``integrator: baoab`` -> ``openmm.LangevinMiddleIntegrator`` (BAOAB-type Langevin splitting:
  the same configurational sampling; ``kinetic_temperature`` is OpenMM's ``State`` kinetic energy,
  of its half-step velocities), ``brownian`` -> ``openmm.BrownianIntegrator``;
  temperature, friction, step and length as the config says; one seed per replica from
  ``config.seed``; start velocities Maxwell–Boltzmann from the seed, as raycg's engine draws them.
- Replicas run in ``workers`` processes (default: one per core, at most one per replica); each
  process deserialises the system from XML, as any OpenMM user would.
- Blow-ups are detected at every saved frame (non-finite positions, forces, energy, velocities, or
  a bond beyond ``blowup_max_bond_A``) and when OpenMM itself stops on NaN coordinates; the replica
  is frozen from that saved step on (``died_at_step`` is the first saved step at or after the
  blow-up; raycg's engine checks every step).
- ``compile`` and ``capture`` do not apply (the PythonForce evaluates one replica at a time);
  ``filter_table_spacing_A`` and ``dtype`` do (the model's own pass inside the PythonForce).

:func:`raycg.sim.simulate` dispatches on ``config.engine`` (``raycg`` or ``openmm``); a run
resumes only with the engine that wrote its checkpoint (:func:`raycg.sim.state.load_checkpoint`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from raycg import units as U
from raycg.errors import InputError
from raycg.sim import simulate as _dispatch
from raycg.sim.config import SimulationConfig, make_config
from raycg.sim.frames import FrameSink
from raycg.sim.integrators import REASONS, maxwell_boltzmann
from raycg.sim.output import (
    PARTIAL,
    SimulationResult,
    TrajectoryWriter,
    clear_outputs,
    default_topology,
    load_simulation,
    write_topology,
)
from raycg.sim.state import (
    CHECKPOINT,
    OPENMM_CHECKPOINT_FORMAT,
    check_resumable,
    load_checkpoint,
    save_checkpoint,
)

#: OpenMM platforms tried in this order when none is named (the PythonForce runs in Python either way)
PLATFORM_ORDER = ("CPU", "Reference")


#: :func:`raycg.sim.simulate` (which dispatches on ``config.engine``) under its earlier name here
run_simulation = _dispatch


def choose_platform(name: str | None = None):
    """The OpenMM Platform ``name``, or the first of :data:`PLATFORM_ORDER` this OpenMM has."""
    from raycg.export import require_openmm

    openmm = require_openmm()
    have = [
        openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())
    ]
    if name is None:
        name = next(p for p in PLATFORM_ORDER if p in have)
    if name not in have:
        raise InputError(f"OpenMM platform {name!r} is not available", hint=f"use one of {have}")
    return openmm.Platform.getPlatformByName(name)


def replica_seed(seed: int, replica: int) -> int:
    """The OpenMM integrator seed of a replica: in [1, 2^31 - 1) (OpenMM reads 0 as 'random')."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(replica)]).generate_state(1)[0]
    return int(state % (2**31 - 2)) + 1


def _integrator(openmm, cfg: SimulationConfig, temperature: float, seed: int):
    if cfg.integrator == "brownian":
        integ = openmm.BrownianIntegrator(temperature, cfg.friction_per_ps, cfg.dt_ps)
    else:
        integ = openmm.LangevinMiddleIntegrator(temperature, cfg.friction_per_ps, cfg.dt_ps)
    integ.setRandomNumberSeed(seed)
    return integ


class ReplicaGroup:
    """The OpenMM Contexts of some replicas (one each), advanced to a step with frames at saves.

    Positions Å, velocities Å/ps, energies kcal/mol, temperatures K on this side; OpenMM's units
    inside. ``indices``: the replicas' global numbers (integrator seeds).
    """

    def __init__(
        self,
        system,
        cfg: SimulationConfig,
        indices,
        x0_A,
        v0_A_ps,
        temperatures,
        bonds,
        platform_name,
        *,
        step: int = 0,
        checkpoints=None,
        alive=None,
        died=None,
        reason=None,
    ) -> None:
        from raycg.export import require_openmm

        openmm = self.openmm = require_openmm()
        self.cfg, self.indices = cfg, [int(i) for i in indices]
        n = len(self.indices)
        self.n_beads = system.getNumParticles()
        self.bonds = np.asarray(bonds, np.int64).reshape(-1, 2)
        self.brownian = cfg.integrator == "brownian"
        self.x = np.asarray(x0_A, np.float64).reshape(n, self.n_beads, 3).copy()  # last good (Å)
        self.v = np.asarray(v0_A_ps, np.float64).reshape(n, self.n_beads, 3).copy()
        self.alive = np.ones(n, bool) if alive is None else np.asarray(alive, bool).copy()
        self.died = np.full(n, -1, np.int64) if died is None else np.asarray(died, np.int64).copy()
        self.reason = (
            np.zeros(n, np.int64) if reason is None else np.asarray(reason, np.int64).copy()
        )
        self.step = int(step)
        platform = openmm.Platform.getPlatformByName(platform_name)
        self.contexts, self.integrators = [], []
        for k, r in enumerate(self.indices):
            integ = _integrator(openmm, cfg, float(temperatures[k]), replica_seed(cfg.seed, r))
            ctx = openmm.Context(system, integ, platform)
            if checkpoints is not None and self.alive[k]:
                ctx.loadCheckpoint(bytes(checkpoints[k]))
            else:
                ctx.setPositions(self.x[k] * U.ANGSTROM_TO_NM)
                ctx.setVelocities(self.v[k] * U.ANGSTROM_TO_NM)
            self.contexts.append(ctx)
            self.integrators.append(integ)
        if checkpoints is None:
            for k in range(n):  # a broken start dies at step 0, as in raycg's engine
                self._observe(k, 0)

    def _observe(self, k: int, step: int) -> tuple[float, float]:
        """(energy kcal/mol, kinetic temperature K) of replica ``k`` now; kills it if it blew up."""
        st = self.contexts[k].getState(
            getPositions=True, getVelocities=True, getEnergy=True, getForces=True
        )
        x = np.asarray(st.getPositions(asNumpy=True)._value) * U.NM_TO_ANGSTROM
        v = np.asarray(st.getVelocities(asNumpy=True)._value) * U.NM_TO_ANGSTROM
        f = np.asarray(st.getForces(asNumpy=True)._value)
        e = st.getPotentialEnergy()._value / U.KJ_PER_KCAL
        code = 0
        if not np.isfinite(x).all():
            code = 1
        elif not np.isfinite(f).all():
            code = 2
        elif not np.isfinite(e):
            code = 3
        elif not self.brownian and not np.isfinite(v).all():
            code = 4
        elif self.cfg.blowup_max_bond_A is not None and self.bonds.size:
            d = np.linalg.norm(x[self.bonds[:, 1]] - x[self.bonds[:, 0]], axis=-1)
            code = 5 if (d > self.cfg.blowup_max_bond_A).any() else 0
        if code:
            self._kill(k, step, code)
            return float("nan"), float("nan")
        self.x[k], self.v[k] = x, v
        if self.brownian:
            return float(e), float("nan")
        ke = st.getKineticEnergy()._value / U.KJ_PER_KCAL
        return float(e), 2.0 * ke / (3 * self.n_beads * U.KB_KCAL_PER_MOL_K)

    def _kill(self, k: int, step: int, code: int) -> None:
        self.alive[k], self.died[k], self.reason[k] = False, step, code

    def run_to(self, target: int) -> dict[str, np.ndarray]:
        """Advance every live replica to step ``target``; the frames at the save steps on the way:
        ``x`` [K, n, B, 3] Å (float32), ``e``, ``t`` [K, n], ``alive`` [K, n], ``steps`` [K]."""
        every = self.cfg.save_every
        steps = np.arange((self.step // every + 1) * every, target + 1, every, dtype=np.int64)
        n, kk = len(self.indices), len(steps)
        xs = np.zeros((kk, n, self.n_beads, 3), np.float32)
        es, ts = np.full((kk, n), np.nan), np.full((kk, n), np.nan)
        al = np.zeros((kk, n), bool)
        for k in range(n):
            now = self.step
            for i, s in enumerate(steps):
                if self.alive[k] and self._advance(k, int(s) - now, int(s)):
                    es[i, k], ts[i, k] = self._observe(k, int(s))
                now = int(s)
                al[i, k] = self.alive[k]
                xs[i, k] = self.x[k]
            if self.alive[k] and target > now:
                self._advance(k, target - now, target)
        self.step = target
        return {"x": xs, "e": es, "t": ts, "alive": al, "steps": steps}

    def _advance(self, k: int, n_steps: int, at: int) -> bool:
        try:
            self.integrators[k].step(n_steps)
        except self.openmm.OpenMMException as exc:
            if "nan" not in str(exc).lower():
                raise
            self._kill(k, at, 1)
            return False
        return True

    def checkpoint(self) -> dict[str, Any]:
        """Each live replica's ``Context.createCheckpoint()`` (positions, velocities, RNG state) and
        the bookkeeping of all of them."""
        blobs = [
            self.contexts[k].createCheckpoint() if self.alive[k] else b""
            for k in range(len(self.indices))
        ]
        return {
            "checkpoints": blobs,
            "x": self.x.copy(),
            "v": self.v.copy(),
            "alive": self.alive.copy(),
            "died": self.died.copy(),
            "reason": self.reason.copy(),
        }

    def final(self) -> dict[str, np.ndarray]:
        """Positions (Å) and velocities (Å/ps) now (frozen ones for dead replicas), and the flags."""
        for k in range(len(self.indices)):
            if self.alive[k]:
                st = self.contexts[k].getState(getPositions=True, getVelocities=True)
                self.x[k] = np.asarray(st.getPositions(asNumpy=True)._value) * U.NM_TO_ANGSTROM
                self.v[k] = np.asarray(st.getVelocities(asNumpy=True)._value) * U.NM_TO_ANGSTROM
        return {
            "x": self.x.copy(),
            "v": self.v.copy(),
            "alive": self.alive.copy(),
            "died": self.died.copy(),
            "reason": self.reason.copy(),
        }


# ----------------------------------------------------------------------------------------------
# worker processes


def _worker_main(read_fd: int, write_fd: int) -> None:
    """A worker process (``python -c``; no ``__main__`` re-import, so scripts need no main guard):
    receive the system XML and its replicas, build the ReplicaGroup, then answer commands."""
    from multiprocessing.connection import Connection

    inbox, outbox = Connection(read_fd, writable=False), Connection(write_fd, readable=False)
    try:
        torch.set_num_threads(1)
        from raycg.export import require_openmm

        system_xml, kwargs = inbox.recv()
        group = ReplicaGroup(require_openmm().XmlSerializer.deserialize(system_xml), **kwargs)
        outbox.send(("ok", None))
        while True:
            cmd, arg = inbox.recv()
            if cmd == "close":
                break
            outbox.send(("ok", getattr(group, cmd)(*arg)))
    except EOFError:  # the parent went away
        pass
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        try:
            outbox.send(("error", f"{type(exc).__name__}: {exc}"))
        except OSError:
            pass
    finally:
        inbox.close()
        outbox.close()


class _Workers:
    """ReplicaGroups run in worker processes (``n > 1``) or in this process (``n == 1``)."""

    def __init__(self, system, n_workers: int, parts: list[dict[str, Any]]) -> None:
        self.local: ReplicaGroup | None = None
        self.procs, self.conns = [], []
        if n_workers == 1:
            self.local = ReplicaGroup(system, **parts[0])
            return
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        from raycg.export import require_openmm

        xml = require_openmm().XmlSerializer.serialize(system)
        try:
            for part in parts:
                down_r, down_w = os.pipe()
                up_r, up_w = os.pipe()
                code = f"from raycg.sim.openmm_engine import _worker_main; _worker_main({down_r}, {up_w})"
                proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(down_r, up_w))
                os.close(down_r)
                os.close(up_w)
                self.procs.append(proc)
                self.conns.append(
                    (Connection(down_w, readable=False), Connection(up_r, writable=False))
                )
                self.conns[-1][0].send((xml, part))
            for c in self.conns:
                self._answer(c)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _answer(conn):
        try:
            status, value = conn[1].recv()
        except EOFError:
            raise RuntimeError("an OpenMM worker process died") from None
        if status == "error":
            raise RuntimeError(f"OpenMM worker failed: {value}")
        return value

    def call(self, cmd: str, *arg) -> list[Any]:
        """``cmd(*arg)`` on every group (concurrently in the workers); the answers in group order."""
        if self.local is not None:
            return [getattr(self.local, cmd)(*arg)]
        for c in self.conns:
            c[0].send((cmd, arg))
        return [self._answer(c) for c in self.conns]

    def close(self) -> None:
        for down, _ in self.conns:
            try:
                down.send(("close", ()))
            except OSError:
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except Exception:  # noqa: BLE001 - still running: end it (this process started it)
                proc.kill()
                proc.wait(timeout=5)
        for down, up in self.conns:
            down.close()
            up.close()
        self.procs, self.conns = [], []


def default_workers(n_replicas: int) -> int:
    """One worker per core this process may use, at most one per replica."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(n_replicas, cores))


# ----------------------------------------------------------------------------------------------
# the run


def _load_openmm_checkpoint(
    path: Path, cfg: SimulationConfig, r_: int, b_: int, platform: str
) -> dict:
    ck = load_checkpoint(path, engine="openmm")
    check_resumable(ck, cfg, r_, b_, path)
    if ck.get("platform") != platform:
        raise InputError(
            f"{path}: cannot resume: written on OpenMM platform {ck.get('platform')!r}, now "
            f"{platform!r} (OpenMM checkpoints are platform-specific)",
            hint="use the same platform, or overwrite=True to start again",
        )
    return ck


def simulate_openmm(
    potential,
    masses,
    start_positions,
    config: SimulationConfig | dict | None = None,
    *,
    out_dir=None,
    topology=None,
    bonds=None,
    progress: bool = True,
    velocities=None,
    overwrite: bool = False,
    keep_positions: bool | None = None,
    on_checkpoint=None,
    platform: str | None = None,
    workers: int | None = None,
) -> SimulationResult:
    """:func:`raycg.sim.simulate`'s protocol run by OpenMM (see the module docstring).

    ``potential``: a raycg EnergyModel (or PriorSet / prior module); ``masses`` [B] amu;
    ``start_positions`` [R, B, 3] Å; ``velocities`` [R, B, 3] Å/ps (default Maxwell–Boltzmann from
    ``config.seed``). ``platform``: an OpenMM platform name (default CPU, else Reference);
    ``workers``: processes (default :func:`default_workers`). The result and ``out_dir`` are those
    of raycg's engine; ``replicas.json`` adds ``engine: openmm`` and an ``openmm`` section.
    """
    from raycg.export import as_energy_model, to_openmm
    from raycg.sim.engine import _check_inputs
    from raycg.utils.progress import Progress

    cfg = make_config(config)
    plat = choose_platform(platform)
    model = as_energy_model(potential)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    x0, m, bonds_np, r_, b_ = _check_inputs(
        masses, start_positions, bonds, topology, dtype, torch.device("cpu")
    )
    if model.n_beads != b_:
        raise InputError(
            f"the model has {model.n_beads} beads but the start positions have {b_}",
            where="simulate_openmm",
            hint="use the dataset the model was trained on",
        )
    if cfg.blowup_max_bond_A is not None and bonds_np.shape[0] == 0:
        raise InputError(
            "blowup_max_bond_A is set but no bonds were given",
            where="simulate_openmm",
            hint="pass bonds=[[i, j], ...] or a topology with bonds",
        )
    temps = cfg.temperatures(r_)
    n_workers = max(1, min(r_, int(workers) if workers is not None else default_workers(r_)))
    system = to_openmm(
        model, m, dtype=cfg.dtype, table_spacing_A=cfg.filter_table_spacing_A, device=cfg.device
    )

    out_path, writer, ck = None, None, None
    if out_dir is not None:
        out_path = Path(out_dir)
        if overwrite:
            clear_outputs(out_path)
        elif (out_path / "replicas.json").exists():
            raise InputError(
                f"{out_path} already holds a finished simulation",
                hint="choose another output directory or pass overwrite=True (CLI: --overwrite)",
            )
        if (out_path / CHECKPOINT).exists() and (out_path / PARTIAL).is_dir():
            ck = _load_openmm_checkpoint(out_path / CHECKPOINT, cfg, r_, b_, plat.getName())
        else:
            clear_outputs(out_path)
        out_path.mkdir(parents=True, exist_ok=True)
        if topology is None:
            topology = default_topology(b_, bonds_np)
        writer = TrajectoryWriter(out_path, topology, r_)
        if ck is None:
            write_topology(out_path / "topology.pdb", topology, m, x0[0].numpy().astype(np.float64))
        else:
            writer.truncate(ck["frames_written"].numpy(), int(ck["n_frames"]))

    start_step = int(ck["step"]) if ck is not None else 0
    x_start = x0.numpy().astype(np.float64)
    if ck is not None:
        x_start, v_start = ck["x"].numpy(), ck["v"].numpy()
    elif cfg.integrator == "brownian":
        v_start = np.zeros_like(x_start)
    elif velocities is not None:
        v_start = np.asarray(velocities, np.float64)
        if v_start.shape != (r_, b_, 3) or not np.isfinite(v_start).all():
            raise InputError(
                f"velocities must be finite with shape {(r_, b_, 3)}, got {v_start.shape}",
                where="simulate_openmm",
            )
    else:
        gen = torch.Generator().manual_seed(cfg.seed)
        v_start = maxwell_boltzmann(m, temps, r_, gen, dtype=torch.float64).numpy()

    split = np.array_split(np.arange(r_), n_workers)
    parts = []
    for idx in split:
        part: dict[str, Any] = {
            "cfg": cfg,
            "indices": idx.tolist(),
            "x0_A": x_start[idx],
            "v0_A_ps": v_start[idx],
            "temperatures": [temps[i] for i in idx],
            "bonds": bonds_np,
            "platform_name": plat.getName(),
            "step": start_step,
        }
        if ck is not None:
            part.update(
                checkpoints=[ck["contexts"][i].numpy().tobytes() for i in idx],
                alive=ck["alive"].numpy()[idx],
                died=ck["died"].numpy()[idx],
                reason=ck["reason"].numpy()[idx],
            )
        parts.append(part)

    n_frames_total = cfg.n_steps // cfg.save_every
    if keep_positions is None:
        keep_positions = out_path is None or r_ * n_frames_total * b_ * 12 < 256 * 2**20
    sink = FrameSink(writer, out_path, keep_positions, cfg.dt_ps)
    chunk_steps = max(1, cfg.chunk_frames) * cfg.save_every
    bounds = set(range(chunk_steps, cfg.n_steps, chunk_steps)) | {cfg.n_steps}
    if cfg.checkpoint_every is not None and writer is not None:
        bounds |= set(range(cfg.checkpoint_every, cfg.n_steps, cfg.checkpoint_every))
    bounds = sorted(b for b in bounds if b > start_step)

    pool = _Workers(system, n_workers, parts)
    try:
        t0 = time.perf_counter()
        with Progress(
            cfg.n_steps, desc="sim openmm", unit="step", initial=start_step, disable=not progress
        ) as bar:
            prev = start_step
            for target in bounds:
                frames = pool.call("run_to", target)
                if len(frames[0]["steps"]):
                    sink.put(
                        (
                            np.concatenate([f["x"] for f in frames], axis=1),
                            np.concatenate([f["e"] for f in frames], axis=1),
                            np.concatenate([f["t"] for f in frames], axis=1),
                            np.concatenate([f["alive"] for f in frames], axis=1),
                            frames[0]["steps"],
                        )
                    )
                bar.update(target - prev)
                prev = target
                ck_due = cfg.checkpoint_every is not None and target % cfg.checkpoint_every == 0
                if writer is not None and ck_due and target < cfg.n_steps:
                    _checkpoint(
                        out_path / CHECKPOINT,
                        cfg,
                        target,
                        pool.call("checkpoint"),
                        writer,
                        r_,
                        b_,
                        plat.getName(),
                    )
                    if on_checkpoint is not None:
                        on_checkpoint(target, out_path)
        wall = time.perf_counter() - t0
        finals = pool.call("final")
        if writer is not None:
            _checkpoint(
                out_path / CHECKPOINT,
                cfg,
                cfg.n_steps,
                pool.call("checkpoint"),
                writer,
                r_,
                b_,
                plat.getName(),
            )
    finally:
        pool.close()

    cat = {k: np.concatenate([f[k] for f in finals]) for k in finals[0]}
    alive, died, reason = cat["alive"], cat["died"], cat["reason"]
    steps_done = cfg.n_steps - start_step
    steps_per_s = steps_done / wall if wall > 0 and steps_done > 0 else float("nan")
    reasons = [None if alive[r] else REASONS.get(int(reason[r]), "unknown") for r in range(r_)]
    blown = [
        {
            "replica": r,
            "step": int(died[r]),
            "time_ps": float(died[r] * cfg.dt_ps),
            "reason": reasons[r],
        }
        for r in range(r_)
        if not alive[r]
    ]
    steps_all = np.arange(1, n_frames_total + 1, dtype=np.int64) * cfg.save_every
    nfr = np.array(
        [n_frames_total if alive[r] else int(np.sum(steps_all < died[r])) for r in range(r_)],
        np.int64,
    )
    import openmm

    info = {
        "engine": "openmm",
        "compiled": False,
        "captured": False,
        "traceable": False,
        "filter_table": None
        if cfg.filter_table_spacing_A is None
        else {"spacing_A": cfg.filter_table_spacing_A},
        "openmm": {
            "version": openmm.__version__,
            "platform": plat.getName(),
            "workers": n_workers,
            "force": "PythonForce",
            "integrator": "BrownianIntegrator"
            if cfg.integrator == "brownian"
            else "LangevinMiddleIntegrator",
            "seeds": [replica_seed(cfg.seed, r) for r in range(r_)],
        },
    }
    result_kw = dict(
        alive=alive,
        died_at_step=np.where(alive, -1, died),
        reasons=reasons,
        n_frames_per_replica=nfr,
        blown_up=blown,
        steps_per_s=steps_per_s,
        wall_s=wall,
        final_positions=cat["x"],
        final_velocities=cat["v"],
        info={"forces": info},
    )
    if writer is not None:
        writer.finalize(
            _report(
                cfg,
                r_,
                b_,
                n_frames_total,
                temps,
                alive,
                nfr,
                blown,
                steps_per_s,
                wall,
                m,
                bonds_np,
                info,
                start_step if ck is not None else None,
            )
        )
    if out_path is not None and (ck is not None or not keep_positions):
        res = load_simulation(out_path, positions=keep_positions)
        for k, v in result_kw.items():
            setattr(res, k, v)
        return res
    pos = sink.stacked("x", (0, r_, b_, 3)).transpose(1, 0, 2, 3) if keep_positions else None
    return SimulationResult(
        positions=pos,
        potential_energy=sink.stacked("e", (0, r_)).T,
        kinetic_temperature=sink.stacked("t", (0, r_)).T,
        time_ps=steps_all * cfg.dt_ps,
        step=steps_all,
        out_dir=out_path,
        **result_kw,
    )


def _checkpoint(
    path: Path,
    cfg: SimulationConfig,
    step: int,
    parts: list[dict],
    writer: TrajectoryWriter,
    r_: int,
    b_: int,
    platform: str,
) -> None:
    cat = {k: np.concatenate([p[k] for p in parts]) for k in ("x", "v", "alive", "died", "reason")}
    blobs = [b for p in parts for b in p["checkpoints"]]
    save_checkpoint(
        path,
        {
            "format": OPENMM_CHECKPOINT_FORMAT,
            "version": 1,
            "step": int(step),
            "n_replicas": r_,
            "n_beads": b_,
            "platform": platform,
            "contexts": [
                torch.frombuffer(bytearray(b), dtype=torch.uint8)
                if b
                else torch.zeros(0, dtype=torch.uint8)
                for b in blobs
            ],
            **{k: torch.as_tensor(v) for k, v in cat.items()},
            "frames_written": torch.as_tensor(writer.frames_written.copy()),
            "n_frames": int(writer.n_frames),
            "config": json.dumps(cfg.model_dump(mode="json"), sort_keys=True),
        },
    )


def _report(
    cfg: SimulationConfig,
    r_: int,
    b_: int,
    n_frames: int,
    temps,
    alive,
    nfr,
    blown,
    steps_per_s: float,
    wall: float,
    masses,
    bonds,
    info: dict,
    resumed_from,
) -> dict:
    """``replicas.json``: the fields of raycg's engine, plus ``engine`` and the OpenMM details."""
    from raycg.sim.engine import NAN_POLICY
    from raycg.utils.provenance import provenance

    return {
        "format": "raycg-sim-output",
        "version": 1,
        "complete": True,
        "engine": "openmm",
        "n_replicas": r_,
        "n_beads": b_,
        "n_steps": cfg.n_steps,
        "n_frames": n_frames,
        "frames_per_replica": nfr.tolist(),
        "save_every": cfg.save_every,
        "dt_ps": cfg.dt_ps,
        "integrator": cfg.integrator,
        "friction_per_ps": cfg.friction_per_ps,
        "temperature_K": list(temps),
        "dtype": cfg.dtype,
        "device": cfg.device,
        "seed": cfg.seed,
        "alive": alive.tolist(),
        "n_blown_up": len(blown),
        "blown_up": blown,
        "reason_codes": {str(k): v for k, v in REASONS.items()},
        "nan_policy": NAN_POLICY + "; openmm engine: blow-ups are detected at saved frames",
        "steps_per_s": steps_per_s,
        "replica_steps_per_s": steps_per_s * r_,
        "wall_s": wall,
        "resumed_from_step": resumed_from,
        "units": {
            "length": "angstrom (nm inside the mdtraj .h5 files)",
            "time": "ps",
            "energy": "kcal/mol",
            "temperature": "K",
            "mass": "amu",
        },
        "masses": np.asarray(masses).tolist(),
        "bonds": np.asarray(bonds).tolist(),
        "forces": info,
        "openmm": info["openmm"],
        "provenance": provenance(cfg),
    }
