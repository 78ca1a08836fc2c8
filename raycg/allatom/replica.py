"""One all-atom replica, run in checkpointed segments so a preempted run resumes where it stopped.

Replica directory layout::

    replica_0003/
      seg_00000.npz ...   positions [n,A,3] Å, forces [n,A,3] kcal/mol/Å (from the *same* State),
                          step [n], time_ps [n]   (float32 arrays; solute atoms only)
      state.xml           OpenMM State after the last complete segment (portable across platforms)
      progress.json       segments_done, steps_done, ns_done, ns_per_day, platform, ...

Order of writes per segment: segment file (atomic) → state (atomic) → progress (atomic). On resume,
segment files numbered ≥ segments_done (written before a crash, without their state) are deleted,
so frames are never duplicated or missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from raycg import units as U
from raycg.allatom.config import AllAtomConfig
from raycg.allatom.system import build_system, choose_platform
from raycg.utils.io import atomic_path, atomic_write_json, atomic_write_text

KJ_NM_TO_KCAL_A = U.force_factor("kJ/mol/nm")


def replica_dir(out_dir: str | Path, index: int) -> Path:
    return Path(out_dir) / f"replica_{index:04d}"


def read_progress(rdir: Path) -> dict[str, Any] | None:
    p = rdir / "progress.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _state_arrays(context, solute: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions (Å) and forces (kcal/mol/Å) of the solute atoms, from one State."""
    import openmm.unit as u

    state = context.getState(getPositions=True, getForces=True)
    pos = state.getPositions(asNumpy=True).value_in_unit(u.nanometer)[solute] * U.NM_TO_ANGSTROM
    frc = state.getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer)[solute] * KJ_NM_TO_KCAL_A
    return pos.astype(np.float32), frc.astype(np.float32)


def run_replica(pdb_path: str | Path, cfg: AllAtomConfig, index: int, out_dir: str | Path, *,
                progress: Callable[[dict[str, Any]], None] | None = None,
                stop_after_segments: int | None = None) -> dict[str, Any]:
    """Run (or resume) replica ``index`` to ``cfg.duration_ns``; return its final progress record.

    ``progress`` is called after every segment with the progress record (ns done, ns/day, ETA).
    ``stop_after_segments`` stops early after that many new segments (to test resumption).
    """
    import openmm as mm
    import openmm.app as app
    import openmm.unit as u

    rdir = replica_dir(out_dir, index)
    rdir.mkdir(parents=True, exist_ok=True)
    built = build_system(pdb_path, cfg)
    platform, props = choose_platform(cfg.platform, cfg.cpu_threads)
    integrator = mm.LangevinMiddleIntegrator(cfg.temperature_K * u.kelvin, cfg.friction_per_ps / u.picosecond,
                                             cfg.dt_fs * u.femtosecond)
    prog = read_progress(rdir)
    done = int(prog["segments_done"]) if prog else 0
    seed = (cfg.seed * 100003 + index * 1009 + done * 7919) % (2**31 - 1) or 1
    integrator.setRandomNumberSeed(seed)
    sim = app.Simulation(built.topology, built.system, integrator, platform, props)
    if prog and (rdir / "state.xml").is_file():
        sim.loadState(str(rdir / "state.xml"))
        sim.context.setStepCount(int(prog["steps_done"]))
        for stale in rdir.glob("seg_*.npz"):
            if int(stale.stem.split("_")[1]) >= done:
                stale.unlink()
    else:
        for stale in rdir.glob("seg_*.npz"):
            stale.unlink()
        sim.context.setPositions(built.positions)
        if cfg.minimise_iterations:
            sim.minimizeEnergy(maxIterations=cfg.minimise_iterations)
        rng = np.random.default_rng([cfg.seed, index])
        unfolded = index % 2 == 1 if cfg.unfolded_fraction == 0.5 else rng.random() < cfg.unfolded_fraction
        if unfolded and cfg.unfold_ps > 0:
            sim.context.setVelocitiesToTemperature(cfg.unfold_temperature_K * u.kelvin, seed)
            integrator.setTemperature(cfg.unfold_temperature_K * u.kelvin)
            sim.step(cfg.steps(cfg.unfold_ps))
            integrator.setTemperature(cfg.temperature_K * u.kelvin)
        sim.context.setVelocitiesToTemperature(cfg.temperature_K * u.kelvin, seed + 1)
        if cfg.equilibration_ps > 0:
            sim.step(cfg.steps(cfg.equilibration_ps))
        sim.context.setStepCount(0)
        prog = {"replica": index, "segments_done": 0, "steps_done": 0, "ns_done": 0.0,
                "started_unfolded": bool(unfolded)}

    n_atoms = len(built.solute_atoms)
    wall_total = float(prog.get("wall_s", 0.0))
    new_segments = 0
    while done < cfg.n_segments:
        first = done * cfg.frames_per_segment
        n = min(cfg.frames_per_segment, cfg.n_frames - first)
        pos = np.empty((n, n_atoms, 3), np.float32)
        frc = np.empty((n, n_atoms, 3), np.float32)
        steps = np.empty(n, np.int64)
        t0 = time.perf_counter()
        for k in range(n):
            sim.step(cfg.save_every_steps)
            pos[k], frc[k] = _state_arrays(sim.context, built.solute_atoms)
            steps[k] = sim.context.getStepCount()
        wall = time.perf_counter() - t0
        wall_total += wall
        with atomic_path(rdir / f"seg_{done:05d}.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, positions=pos, forces=frc, step=steps, time_ps=steps * cfg.dt_fs * 1e-3)
        with atomic_path(rdir / "state.xml") as tmp:
            sim.saveState(str(tmp))
        done += 1
        ns_seg = n * cfg.save_every_steps * cfg.dt_fs * 1e-6
        steps_done = int(sim.context.getStepCount())
        prog.update(
            segments_done=done, steps_done=steps_done, ns_done=steps_done * cfg.dt_fs * 1e-6,
            ns_total=cfg.duration_ns, ns_per_day=ns_seg / wall * 86400.0 if wall > 0 else None,
            wall_s=wall_total, platform=platform.getName(), openmm_version=mm.__version__,
            finished=done >= cfg.n_segments,
        )
        remaining_ns = cfg.duration_ns - prog["ns_done"]
        prog["eta_s"] = remaining_ns / prog["ns_per_day"] * 86400.0 if prog["ns_per_day"] else None
        atomic_write_json(rdir / "progress.json", prog)
        if progress is not None:
            progress(dict(prog))
        new_segments += 1
        if stop_after_segments is not None and new_segments >= stop_after_segments and done < cfg.n_segments:
            break
    return prog


def write_run_manifest(out_dir: str | Path, pdb_path: str | Path, cfg: AllAtomConfig) -> Path:
    """Write ``run.json`` (config, PDB, solute topology) once per generation directory."""
    import openmm.app as app

    from raycg.utils.io import sha256_file
    from raycg.utils.provenance import provenance

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    built = build_system(pdb_path, cfg)
    with atomic_path(out_dir / "solute.pdb") as tmp, open(tmp, "w") as fh:
        app.PDBFile.writeFile(built.topology, built.positions, fh)
    # keep only solute atoms in solute.pdb when solvated
    if cfg.solvent != "implicit-gbn2":
        import mdtraj

        t = mdtraj.load(str(out_dir / "solute.pdb"))
        sub = t.atom_slice(built.solute_atoms)
        with atomic_path(out_dir / "solute.pdb") as tmp:
            sub.save_pdb(str(tmp))
    from raycg.allatom.system import constrained_hydrogen_partners

    manifest = {
        "config": cfg.model_dump(mode="json"),
        "pdb": str(Path(pdb_path).resolve()),
        "pdb_sha256": sha256_file(pdb_path),
        "n_solute_atoms": int(len(built.solute_atoms)),
        "constraints": {str(k): v for k, v in
                        constrained_hydrogen_partners(built.system, len(built.solute_atoms)).items()},
        "provenance": provenance(cfg),
    }
    atomic_write_text(out_dir / "run.json", json.dumps(manifest, indent=2, default=str) + "\n")
    return out_dir / "run.json"
