"""``simulate``: many replicas advanced together, per-replica blow-up safety, chunked output, resume.

Units: Å, ps, amu, kcal/mol, K. See :mod:`raycg.sim.integrators` for the integrators and
:mod:`raycg.sim.output` for the output layout.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from raycg.errors import InputError
from raycg.sim.config import SimulationConfig, make_config
from raycg.sim.integrators import (
    REASONS,
    StepCoefficients,
    baoab_step,
    brownian_step,
    internal_mass,
    kinetic_temperature,
    make_force_fn,
    maxwell_boltzmann,
)
from raycg.sim.output import (
    PARTIAL,
    SimulationResult,
    TrajectoryWriter,
    clear_outputs,
    default_topology,
    write_topology,
)
from raycg.utils.io import atomic_path

#: skip per-replica masking on CPU while every replica is healthy (tests switch it off to exercise the
#: always-masked path that accelerators use)
CPU_FAST_PATH = True
CHECKPOINT = "checkpoint.pt"
CHECKPOINT_FORMAT = "raycg-sim-checkpoint"
#: config fields that may differ between a checkpoint and the run that resumes it
RESUMABLE_CHANGES = {"n_steps", "checkpoint_every", "chunk_frames", "compile"}
NAN_POLICY = ("frames saved at or after a replica's death are excluded from its trajectory file; "
              "thermo arrays are NaN from that frame on; kinetic_temperature is NaN for brownian dynamics")


def _device(name: str) -> torch.device:
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but CUDA is not available", where="SimulationConfig.device",
                         hint="use device: cpu")
    return dev


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
        raise InputError(f"bond indices must lie in [0, {b_}), got {bonds_np.min()}..{bonds_np.max()}", where="simulate")
    return x0, m, bonds_np, r_, b_


def _save_checkpoint(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path) -> dict:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user problem
        raise InputError(f"{path}: unreadable checkpoint ({type(exc).__name__})",
                         hint="delete the output directory or pass overwrite=True") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not a raycg simulation checkpoint", hint="pass overwrite=True to start again")
    return ck


def _compatible(ck: dict, cfg: SimulationConfig, r_: int, b_: int, path: Path) -> None:
    old = json.loads(ck["config"])
    new = cfg.model_dump(mode="json")
    for key in sorted(set(old) | set(new)):
        if key in RESUMABLE_CHANGES:
            continue
        if old.get(key) != new.get(key):
            raise InputError(f"{path}: cannot resume: config field {key} was {old.get(key)!r}, now {new.get(key)!r}",
                             hint="use the same config, or overwrite=True to start again")
    if (int(ck["n_replicas"]), int(ck["n_beads"])) != (r_, b_):
        raise InputError(f"{path}: cannot resume: checkpoint has {ck['n_replicas']} replicas x {ck['n_beads']} "
                         f"beads, now {r_} x {b_}", hint="pass overwrite=True to start again")
    if int(ck["step"]) > cfg.n_steps:
        raise InputError(f"{path}: checkpoint is at step {ck['step']} beyond n_steps={cfg.n_steps}",
                         hint="raise n_steps or pass overwrite=True")


def _force_source(potential, cfg: SimulationConfig):
    """What the integrator calls for forces, and a description for the run report.

    A potential with ``simulation_forces(compile=, table_spacing_A=)`` (raycg's EnergyModel:
    tabulated filters, fused pass and prior compiled) provides its own. Otherwise, with
    ``compile``, a module is compiled as a ``pos -> E`` function (AOTAutograd compiles its
    backward, i.e. the forces, too) and another object's ``energy_and_forces`` is compiled.
    """
    use_compile = cfg.use_compile()
    make = getattr(potential, "simulation_forces", None)
    if callable(make):
        eaf = make(compile=use_compile, table_spacing_A=cfg.filter_table_spacing_A)
        info = dict(getattr(eaf, "info", {"compiled": use_compile}))
    elif not use_compile:
        return potential, {"compiled": False}
    elif isinstance(potential, torch.nn.Module):
        return torch.compile(potential, dynamic=False), {"compiled": True}
    elif callable(getattr(potential, "energy_and_forces", None)):
        eaf, info = torch.compile(potential.energy_and_forces, dynamic=False), {"compiled": True}
    else:
        return torch.compile(potential, dynamic=False), {"compiled": True}

    class _Forces:
        energy_and_forces = staticmethod(eaf)

    return _Forces(), info


def _working_force_fn(potential, cfg: SimulationConfig, x0: torch.Tensor):
    """The force function, tried once on the start positions. If compilation fails (e.g. no C++
    compiler on a node), say so in one line and fall back to the eager pass (same numbers)."""
    source, info = _force_source(potential, cfg)
    fn = make_force_fn(source)
    if not info.get("compiled"):
        return fn, info
    try:
        fn(x0)                                  # compiles now, for this (R, B) shape
        return fn, info
    except Exception as exc:  # noqa: BLE001 - any compiler failure; the eager retry re-raises real errors
        import sys

        print(f"raycg.sim: torch.compile failed ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}); "
              "running eagerly", file=sys.stderr, flush=True)
        source, info = _force_source(potential, cfg.model_copy(update={"compile": False}))
        info["compile_error"] = f"{type(exc).__name__}"
        return make_force_fn(source), info


def simulate(potential, masses, start_positions, config: SimulationConfig | dict | None = None, *,
             out_dir=None, topology=None, bonds=None, progress: bool = True, velocities=None,
             overwrite: bool = False, keep_positions: bool | None = None,
             on_checkpoint=None) -> SimulationResult:
    """Simulate replicas ``start_positions`` [R, B, 3] (Å) of beads with ``masses`` [B] (amu).

    ``potential``: module/callable ``pos[R,B,3] -> E[R]`` (kcal/mol; forces by autograd) or an object
    with ``energy_and_forces(pos) -> (E[R], F[R,B,3])``. An ``nn.Module`` is moved to the config's
    device and dtype. ``velocities`` [R, B, 3] Å/ps (default: Maxwell–Boltzmann from the seed).
    ``bonds`` [nb, 2] bead pairs (default: the topology's bonds) define the blow-up envelope.

    With ``out_dir`` the run writes the layout of :mod:`raycg.sim.output` and resumes from
    ``out_dir/checkpoint.pt`` if an unfinished run with the same config is there (bit-for-bit on CPU).
    ``keep_positions``: keep saved frames in memory (default: without out_dir, or if < 256 MB).
    ``on_checkpoint(step, out_dir)``: called after each intermediate checkpoint is written (files are
    closed and consistent then; e.g. to report to Ray Tune). Not called for the final state.
    """
    cfg = make_config(config)
    device = _device(cfg.device)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    x0, m_np, bonds_np, r_, b_ = _check_inputs(masses, start_positions, bonds, topology, dtype, device)
    temps = cfg.temperatures(r_)
    if cfg.blowup_max_bond_A is not None and bonds_np.shape[0] == 0:
        raise InputError("blowup_max_bond_A is set but no bonds were given", where="simulate",
                         hint="pass bonds=[[i, j], ...] or a topology with bonds")
    if isinstance(potential, torch.nn.Module):
        potential.to(device=device, dtype=dtype)
    force_fn, force_info = _working_force_fn(potential, cfg, x0)

    m_int = internal_mass(torch.as_tensor(m_np, dtype=torch.float64))
    coef = StepCoefficients(cfg.integrator, cfg.dt_ps, cfg.friction_per_ps, torch.tensor(temps, dtype=torch.float64),
                            m_int)
    for name in ("half_dt_inv_m", "noise_scale", "drift"):
        if hasattr(coef, name):
            setattr(coef, name, getattr(coef, name).to(device=device, dtype=dtype))
    m_int = m_int.to(device=device, dtype=dtype)
    gen = torch.Generator(device=device)
    gen.manual_seed(cfg.seed)
    step_fn = baoab_step if cfg.integrator == "baoab" else brownian_step

    # --- output directory / resume --------------------------------------------------------------
    writer = None
    ck = None
    if out_dir is not None:
        out_dir = Path(out_dir)
        if overwrite:
            clear_outputs(out_dir)
        elif (out_dir / "replicas.json").exists():
            raise InputError(f"{out_dir} already holds a finished simulation",
                             hint="choose another output directory or pass overwrite=True (CLI: --overwrite)")
        ck_path = out_dir / CHECKPOINT
        if ck_path.exists() and (out_dir / PARTIAL).is_dir():
            ck = _load_checkpoint(ck_path)
            _compatible(ck, cfg, r_, b_, ck_path)
        else:
            clear_outputs(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if topology is None:
            topology = default_topology(b_, bonds_np)
        writer = TrajectoryWriter(out_dir, topology, r_)
        if ck is None:
            write_topology(out_dir / "topology.pdb", topology, m_np, x0[0].detach().cpu().numpy())

    # --- initial state ----------------------------------------------------------------------------
    if ck is not None:
        x = ck["x"].to(device=device, dtype=dtype)
        v = ck["v"].to(device=device, dtype=dtype)
        f = ck["f"].to(device=device, dtype=dtype)
        e = ck["e"].to(device=device, dtype=dtype)
        alive = ck["alive"].to(device)
        died = ck["died"].to(device)
        reason = ck["reason"].to(device)
        gen.set_state(ck["rng_state"])
        start_step = int(ck["step"])
        writer.truncate(ck["frames_written"].numpy(), int(ck["n_frames"]))
    else:
        x = x0.clone()
        if cfg.integrator == "brownian":
            v = torch.zeros_like(x)
        elif velocities is not None:
            v = torch.as_tensor(velocities).to(device=device, dtype=dtype)
            if tuple(v.shape) != (r_, b_, 3) or not bool(torch.isfinite(v).all()):
                raise InputError(f"velocities must be finite with shape {(r_, b_, 3)}, got {tuple(v.shape)}",
                                 where="simulate")
        else:
            v = maxwell_boltzmann(m_np, temps, r_, gen, dtype=dtype, device=device)
        e, f = force_fn(x)
        if tuple(e.shape) != (r_,) or tuple(f.shape) != (r_, b_, 3):
            raise InputError(f"potential returned energy {tuple(e.shape)} / forces {tuple(f.shape)}; expected "
                             f"({r_},) / {(r_, b_, 3)}", where="simulate",
                             hint="the potential must map pos[R,B,3] to one energy per replica")
        e, f = e.to(dtype), f.to(dtype)
        alive = torch.ones(r_, dtype=torch.bool, device=device)
        died = torch.full((r_,), -1, dtype=torch.int64, device=device)
        reason = torch.zeros(r_, dtype=torch.int64, device=device)
        start_step = 0

    bi = torch.as_tensor(bonds_np[:, 0], device=device)
    bj = torch.as_tensor(bonds_np[:, 1], device=device)
    max_bond = cfg.blowup_max_bond_A
    brownian = cfg.integrator == "brownian"

    def health(xn, vn, fn_, en):
        """Per-replica blow-up code (0 = healthy; see REASONS). A NaN/inf anywhere poisons the sums."""
        zero = torch.zeros((), dtype=torch.int64, device=xn.device)
        code = torch.where(torch.isfinite(vn.reshape(r_, -1).sum(1)), zero, 4)
        code = torch.where(torch.isfinite(en), code, 3)
        code = torch.where(torch.isfinite(fn_.reshape(r_, -1).sum(1)), code, 2)
        code = torch.where(torch.isfinite(xn.reshape(r_, -1).sum(1)), code, 1)
        if max_bond is not None:
            d = (xn[:, bi] - xn[:, bj]).norm(dim=-1)
            code = torch.where((code == 0) & (d > max_bond).any(1), 5, code)
        return code

    def all_healthy(xn, vn, fn_, en) -> bool:
        """One cheap global check (a host sync: used on CPU only)."""
        total = xn.sum() + fn_.sum() + vn.sum() + en.sum()
        if not bool(torch.isfinite(total)):
            return False
        return max_bond is None or not bool(((xn[:, bi] - xn[:, bj]).norm(dim=-1) > max_bond).any())

    def masked(x, v, f, e, alive, died, reason, xn, vn, fn_, en, step_t):
        """Freeze replicas that blow up now (or before); record when and why."""
        code = health(xn, vn, fn_, en)
        newly = alive & (code > 0)
        died = torch.where(newly, step_t, died)
        reason = torch.where(newly, code, reason)
        alive = alive & (code == 0)
        keep = alive[:, None, None]
        x = torch.where(keep, xn, x)
        v = torch.where(keep, vn, 0.0)
        f = torch.where(keep, fn_, 0.0)
        e = torch.where(alive, en, e)
        return x, v, f, e, alive, died, reason

    if ck is None:  # replicas whose start is already broken die at step 0
        code = health(x, v, f, e)
        died = torch.where(code > 0, torch.zeros_like(died), died)
        reason = torch.where(code > 0, code, reason)
        alive = code == 0
        x = torch.where(alive[:, None, None], x, torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0))
        f = torch.where(alive[:, None, None], f, 0.0)
        v = torch.where(alive[:, None, None], v, 0.0)

    def advance(x, v, f, noise):
        return step_fn(x, v, f, noise, coef, force_fn)

    # On CPU a host check is free: while every replica is alive and healthy, skip the masking (the
    # masked update of an all-healthy batch is the identity, so results are bit-identical either way).
    # On accelerators the masked update always runs, without host synchronisation.
    fast = CPU_FAST_PATH and device.type == "cpu" and bool(alive.all())

    # --- frame buffers ----------------------------------------------------------------------------
    n_frames_total = cfg.n_steps // cfg.save_every
    if keep_positions is None:
        keep_positions = out_dir is None or r_ * n_frames_total * b_ * 12 < 256 * 2**20
    chunk = min(cfg.chunk_frames, max(1, n_frames_total))
    buf_x = torch.empty((chunk, r_, b_, 3), dtype=dtype, device=device)
    buf_e = torch.empty((chunk, r_), dtype=dtype, device=device)
    buf_t = torch.empty((chunk, r_), dtype=dtype, device=device)
    buf_alive = torch.empty((chunk, r_), dtype=torch.bool, device=device)
    buf_steps: list[int] = []
    mem: dict[str, list[np.ndarray]] = {"x": [], "e": [], "t": [], "alive": [], "step": []}

    def flush():
        k = len(buf_steps)
        if k == 0:
            return
        xs = buf_x[:k].detach().cpu().numpy().astype(np.float32)
        es = buf_e[:k].detach().cpu().numpy().astype(np.float64)
        ts = buf_t[:k].detach().cpu().numpy().astype(np.float64)
        al = buf_alive[:k].detach().cpu().numpy()
        steps = np.asarray(buf_steps, dtype=np.int64)
        if writer is not None:
            writer.append(xs, steps * cfg.dt_ps, steps, es, ts, al)
        if out_dir is None or keep_positions:
            if keep_positions:
                mem["x"].append(np.where(al[:, :, None, None], xs, np.nan).astype(np.float32))
            mem["e"].append(np.where(al, es, np.nan))
            mem["t"].append(np.where(al, ts, np.nan))
            mem["alive"].append(al)
            mem["step"].append(steps)
        buf_steps.clear()

    def checkpoint(step: int):
        _save_checkpoint(out_dir / CHECKPOINT, {
            "format": CHECKPOINT_FORMAT, "version": 1, "step": int(step), "n_replicas": r_, "n_beads": b_,
            "x": x.detach().cpu(), "v": v.detach().cpu(), "f": f.detach().cpu(), "e": e.detach().cpu(),
            "alive": alive.cpu(), "died": died.cpu(), "reason": reason.cpu(), "rng_state": gen.get_state(),
            "frames_written": torch.as_tensor(writer.frames_written.copy()), "n_frames": int(writer.n_frames),
            "config": json.dumps(cfg.model_dump(mode="json"), sort_keys=True),
        })

    # --- main loop ----------------------------------------------------------------------------------
    from raycg.utils.progress import Progress

    step_t = torch.tensor(start_step, dtype=torch.int64, device=device)
    save_every, ck_every = cfg.save_every, cfg.checkpoint_every
    shape = (r_, b_, 3)
    stochastic = coef.stochastic
    t0 = time.perf_counter()
    with torch.no_grad(), Progress(cfg.n_steps, desc="sim", unit="step", initial=start_step,
                                   disable=not progress) as bar:
        for step in range(start_step + 1, cfg.n_steps + 1):
            noise = torch.randn(shape, generator=gen, dtype=dtype, device=device) if stochastic else None
            step_t += 1
            xn, vn, fn_, en = advance(x, v, f, noise)
            if fast and all_healthy(xn, vn, fn_, en):
                x, v, f, e = xn, vn, fn_, en
            else:
                x, v, f, e, alive, died, reason = masked(x, v, f, e, alive, died, reason, xn, vn, fn_, en, step_t)
                fast = fast and bool(alive.all())
            if step % save_every == 0:
                k = len(buf_steps)
                buf_x[k] = x
                buf_e[k] = e
                if brownian:
                    buf_t[k] = torch.nan
                else:
                    buf_t[k] = kinetic_temperature(v, m_int)
                buf_alive[k] = alive
                buf_steps.append(step)
                bar.update(save_every)
                if k + 1 == chunk:
                    flush()
            if writer is not None and ck_every is not None and step % ck_every == 0 and step < cfg.n_steps:
                flush()
                checkpoint(step)
                if on_checkpoint is not None:
                    on_checkpoint(step, out_dir)
        flush()
        if cfg.device.startswith("cuda"):
            torch.cuda.synchronize(device)
    wall = time.perf_counter() - t0
    steps_done = cfg.n_steps - start_step
    steps_per_s = steps_done / wall if wall > 0 and steps_done > 0 else float("nan")

    # --- report -------------------------------------------------------------------------------------
    alive_np = alive.cpu().numpy()
    died_np = died.cpu().numpy()
    reason_np = reason.cpu().numpy()
    reasons = [None if alive_np[r] else REASONS.get(int(reason_np[r]), "unknown") for r in range(r_)]
    blown = [{"replica": int(r), "step": int(died_np[r]), "time_ps": float(died_np[r] * cfg.dt_ps),
              "reason": reasons[r]} for r in range(r_) if not alive_np[r]]
    steps_all = (np.arange(1, n_frames_total + 1, dtype=np.int64) * save_every)
    # frames per replica: saved frames strictly before death
    nfr = np.array([n_frames_total if alive_np[r] else int(np.sum(steps_all < died_np[r])) for r in range(r_)],
                   dtype=np.int64)
    result_kw = dict(alive=alive_np, died_at_step=np.where(alive_np, -1, died_np), reasons=reasons,
                     n_frames_per_replica=nfr, blown_up=blown, steps_per_s=steps_per_s, wall_s=wall,
                     final_positions=x.detach().cpu().numpy(), final_velocities=v.detach().cpu().numpy(),
                     info={"forces": force_info})
    if writer is not None:
        checkpoint(cfg.n_steps)
        from raycg.utils.provenance import provenance

        report = {
            "format": "raycg-sim-output", "version": 1, "complete": True, "n_replicas": r_, "n_beads": b_,
            "n_steps": cfg.n_steps, "n_frames": n_frames_total, "frames_per_replica": nfr.tolist(),
            "save_every": save_every, "dt_ps": cfg.dt_ps, "integrator": cfg.integrator,
            "friction_per_ps": cfg.friction_per_ps, "temperature_K": temps, "dtype": cfg.dtype,
            "device": cfg.device, "seed": cfg.seed, "alive": alive_np.tolist(), "n_blown_up": len(blown),
            "blown_up": blown, "reason_codes": {str(k): v_ for k, v_ in REASONS.items()}, "nan_policy": NAN_POLICY,
            "steps_per_s": steps_per_s, "replica_steps_per_s": steps_per_s * r_, "wall_s": wall,
            "resumed_from_step": start_step if ck is not None else None,
            "units": {"length": "angstrom (nm inside the mdtraj .h5 files)", "time": "ps",
                      "energy": "kcal/mol", "temperature": "K", "mass": "amu"},
            "masses": m_np.tolist(), "bonds": bonds_np.tolist(), "forces": force_info,
            "provenance": provenance(cfg),
        }
        writer.finalize(report)
    if out_dir is not None and (ck is not None or not keep_positions):
        from raycg.sim.output import load_simulation

        res = load_simulation(out_dir, positions=keep_positions)
        for k_, v_ in result_kw.items():
            setattr(res, k_, v_)
        return res
    def cat(key, shp):
        return np.concatenate(mem[key], axis=0) if mem[key] else np.zeros(shp)

    pos = cat("x", (0, r_, b_, 3)).transpose(1, 0, 2, 3) if keep_positions else None
    return SimulationResult(
        positions=pos, potential_energy=cat("e", (0, r_)).T, kinetic_temperature=cat("t", (0, r_)).T,
        time_ps=steps_all * cfg.dt_ps, step=steps_all, out_dir=out_dir, **result_kw,
    )
