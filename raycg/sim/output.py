"""Simulation output: per-replica mdtraj HDF5 trajectories, thermo arrays, replica report.

Layout of an output directory (see docs/architecture.md)::

    OUT/
      topology.pdb            CG topology (Å, CONECT bonds)
      replica_0000.h5 ...     mdtraj HDF5 (coordinates in nm, time in ps), only the frames saved while
                              the replica was alive; a replica that died before its first frame has no file
      thermo.npz              potential_energy[R,T] (kcal/mol), kinetic_temperature[R,T] (K), time_ps[T],
                              step[T]; NaN from the first saved frame at or after a replica's death
                              (kinetic_temperature is NaN throughout for brownian dynamics: no velocities;
                              for BAOAB it is taken from full-step velocities, which a stiff mode of frequency
                              ω cools to T·(1 - (ω·dt)²/4) while its positions stay Boltzmann-distributed,
                              so judge large steps by configurational averages, not by this column)
      replicas.json           n_replicas, blown_up [{replica, step, time_ps, reason}], dt, temperatures, ...
                              forces: how the steps ran (compiled, captured; compile_check and
                              capture_check: a fast step against its reference, difference,
                              tolerance, agrees; compile_error / capture_error on fallback)
      checkpoint.pt           resumable state (torch.load(weights_only=True))

While running, trajectories and thermo grow in ``OUT/.partial/``; they are moved into place and
``replicas.json`` is written last, when the run completes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from raycg import units as U
from raycg.errors import InputError
from raycg.utils.io import atomic_path, atomic_write_json, not_regular_file

PARTIAL = ".partial"
THERMO_PARTIAL = "thermo.h5"


def replica_file(r: int) -> str:
    return f"replica_{r:04d}.h5"


# ----------------------------------------------------------------------------------------------
# topology


def default_topology(n_beads: int, bonds: np.ndarray | None):
    """A minimal mdtraj Topology: one CA atom per bead, one residue ("CG") per bead, given bonds."""
    import mdtraj

    top = mdtraj.Topology()
    chain = top.add_chain()
    atoms = []
    for i in range(n_beads):
        res = top.add_residue("CG", chain, resSeq=i + 1)
        atoms.append(top.add_atom("CA", mdtraj.element.carbon, res))
    if bonds is not None:
        for a, b in np.asarray(bonds).reshape(-1, 2):
            top.add_bond(atoms[int(a)], atoms[int(b)])
    return top


def write_topology(path: Path, topology, masses: np.ndarray, coords_A: np.ndarray) -> None:
    """Write ``topology.pdb`` (Å) with CONECT records for every bond, atomically."""
    from raycg.data.format import BeadInfo, write_topology_pdb

    atoms = list(topology.atoms)
    chain_ids = []
    for a in atoms:
        cid = getattr(a.residue.chain, "chain_id", None)
        chain_ids.append(cid if cid else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[a.residue.chain.index % 26])
    beads = BeadInfo(names=[a.name for a in atoms], types=[0] * len(atoms), masses=[float(m) for m in masses],
                     residue_names=[a.residue.name for a in atoms],
                     residue_ids=[int(a.residue.resSeq) for a in atoms], chain_ids=chain_ids)
    bonds = np.array([[b[0].index, b[1].index] for b in topology.bonds], dtype=np.int64).reshape(-1, 2)
    with atomic_path(path) as tmp:
        write_topology_pdb(tmp, beads, bonds, coords_A)


# ----------------------------------------------------------------------------------------------
# writer


class TrajectoryWriter:
    """Appends chunks of frames to per-replica mdtraj HDF5 files and the thermo arrays in ``.partial/``."""

    def __init__(self, out_dir: Path, topology, n_replicas: int):
        self.out_dir = Path(out_dir)
        self.partial = self.out_dir / PARTIAL
        self.partial.mkdir(parents=True, exist_ok=True)
        self.topology = topology
        self.n_replicas = n_replicas
        self.frames_written = np.zeros(n_replicas, dtype=np.int64)
        self.n_frames = 0  # frame slots written to thermo (all replicas)

    # -- resume -------------------------------------------------------------------------------
    def truncate(self, frames_written: np.ndarray, n_frames: int) -> None:
        """Cut every partial file back to the state of a checkpoint."""
        import h5py
        from mdtraj.formats import HDF5TrajectoryFile

        for r in range(self.n_replicas):
            p = self.partial / replica_file(r)
            n = int(frames_written[r])
            done = self.out_dir / replica_file(r)
            if not p.exists() and done.exists():  # interrupted while finishing: take it back
                os.replace(done, p)
            if not p.exists():
                if n > 0:
                    raise InputError(f"{p} is missing but the checkpoint says it holds {n} frames",
                                     hint="the output directory is damaged; start again with overwrite=True")
                continue
            if n == 0:
                p.unlink()
                continue
            with HDF5TrajectoryFile(str(p), "a") as fh:
                have = len(fh.root.coordinates)
                if have < n:
                    raise InputError(f"{p} holds {have} frames but the checkpoint says {n}",
                                     hint="the output directory is damaged; start again with overwrite=True")
                if have > n:
                    fh.root.coordinates.truncate(n)
                    fh.root.time.truncate(n)
        thermo = self.partial / THERMO_PARTIAL
        if n_frames > 0:
            with h5py.File(thermo, "a") as fh:
                if fh["time_ps"].shape[0] < n_frames:
                    raise InputError(f"{thermo} is shorter than the checkpoint says",
                                     hint="the output directory is damaged; start again with overwrite=True")
                for name in ("potential_energy", "kinetic_temperature"):
                    fh[name].resize(n_frames, axis=1)
                for name in ("time_ps", "step"):
                    fh[name].resize(n_frames, axis=0)
        elif thermo.exists():
            thermo.unlink()
        self.frames_written = np.asarray(frames_written, dtype=np.int64).copy()
        self.n_frames = int(n_frames)

    # -- append -------------------------------------------------------------------------------
    def append(self, xyz_A: np.ndarray, time_ps: np.ndarray, steps: np.ndarray, energy: np.ndarray,
               temperature: np.ndarray, alive: np.ndarray) -> None:
        """Append K frames. xyz_A [K,R,B,3] Å; time_ps, steps [K]; energy, temperature, alive [K,R]."""
        import h5py
        from mdtraj.formats import HDF5TrajectoryFile

        k = xyz_A.shape[0]
        if k == 0:
            return
        for r in range(self.n_replicas):
            n = int(alive[:, r].sum())  # alive frames form a prefix of the chunk
            if n == 0:
                continue
            p = self.partial / replica_file(r)
            mode = "a" if p.exists() else "w"
            with HDF5TrajectoryFile(str(p), mode) as fh:
                if mode == "w":
                    fh.topology = self.topology
                fh.write(coordinates=(xyz_A[:n, r] * U.ANGSTROM_TO_NM).astype(np.float32),
                         time=time_ps[:n].astype(np.float32))
            self.frames_written[r] += n
        e = np.where(alive, energy, np.nan).T.astype(np.float64)        # [R,K]
        t = np.where(alive, temperature, np.nan).T.astype(np.float64)
        with h5py.File(self.partial / THERMO_PARTIAL, "a") as fh:
            if "time_ps" not in fh:
                r_ = self.n_replicas
                fh.create_dataset("potential_energy", shape=(r_, 0), maxshape=(r_, None), dtype="f8",
                                  chunks=(r_, max(1, min(k, 1024))))
                fh.create_dataset("kinetic_temperature", shape=(r_, 0), maxshape=(r_, None), dtype="f8",
                                  chunks=(r_, max(1, min(k, 1024))))
                fh.create_dataset("time_ps", shape=(0,), maxshape=(None,), dtype="f8", chunks=(1024,))
                fh.create_dataset("step", shape=(0,), maxshape=(None,), dtype="i8", chunks=(1024,))
            n0 = fh["time_ps"].shape[0]
            for name, arr in (("potential_energy", e), ("kinetic_temperature", t)):
                fh[name].resize(n0 + k, axis=1)
                fh[name][:, n0:] = arr
            fh["time_ps"].resize(n0 + k, axis=0)
            fh["time_ps"][n0:] = time_ps
            fh["step"].resize(n0 + k, axis=0)
            fh["step"][n0:] = steps
        self.n_frames += k

    # -- finish -------------------------------------------------------------------------------
    def finalize(self, report: dict[str, Any]) -> None:
        """Move trajectories into place, write thermo.npz and (last) replicas.json."""
        import h5py

        thermo = self.partial / THERMO_PARTIAL
        r_ = self.n_replicas
        if thermo.exists():
            with h5py.File(thermo, "r") as fh:
                arrays = {name: fh[name][...]
                          for name in ("potential_energy", "kinetic_temperature", "time_ps", "step")}
        else:
            arrays = {"potential_energy": np.zeros((r_, 0)), "kinetic_temperature": np.zeros((r_, 0)),
                      "time_ps": np.zeros(0), "step": np.zeros(0, np.int64)}
        with atomic_path(self.out_dir / "thermo.npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
        for r in range(r_):
            src = self.partial / replica_file(r)
            dst = self.out_dir / replica_file(r)
            if src.exists():
                os.replace(src, dst)
            elif dst.exists():
                dst.unlink()
        atomic_write_json(self.out_dir / "replicas.json", report)
        shutil.rmtree(self.partial, ignore_errors=True)


def clear_outputs(out_dir: Path) -> None:
    """Remove the files a simulation writes (only those) from ``out_dir``."""
    out_dir = Path(out_dir)
    shutil.rmtree(out_dir / PARTIAL, ignore_errors=True)
    for name in ("replicas.json", "thermo.npz", "checkpoint.pt", "topology.pdb"):
        (out_dir / name).unlink(missing_ok=True)
    for p in out_dir.glob("replica_*.h5"):
        p.unlink()


#: files ``raycg sim run`` writes at the top of OUT besides ``replica_*.h5`` (it replaces them)
RUN_FILES = ("replicas.json", "thermo.npz", "checkpoint.pt", "topology.pdb", "starts.json")
_PARTIAL_NAME = re.compile(r"replica_\d+\.h5|thermo\.h5")


def unreadable_output(out_dir: str | os.PathLike) -> str | None:
    """Why a run into ``out_dir`` would replace something raycg cannot read back (None: nothing).

    Each file there that a run replaces or removes (``RUN_FILES``, ``replica_*.h5``, ``.partial/``)
    must be a regular file that reads as what raycg writes under that name; anything else is data
    raycg did not write (or a damaged copy), which only ``overwrite`` may replace. Special files are
    never opened. ``out_dir`` itself must be a directory or absent (:func:`not_a_directory`).
    """
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return None
    names = [n for n in RUN_FILES if os.path.lexists(out_dir / n)]
    names += sorted(p.name for p in out_dir.glob("replica_*.h5"))
    for name in names:
        why = not_regular_file(out_dir / name) or _unreadable(out_dir / name)
        if why:
            return f"{name} {why}"
    partial = out_dir / PARTIAL
    if os.path.lexists(partial):
        if partial.is_symlink() or not partial.is_dir():
            return f"{PARTIAL} is not the directory a run keeps its partial files in"
        for p in sorted(partial.iterdir()):
            if not (_PARTIAL_NAME.fullmatch(p.name) and not p.is_symlink() and p.is_file()):
                return f"{PARTIAL}/{p.name} is not a partial file raycg writes"
    return None


def not_a_directory(out_dir: str | os.PathLike) -> str | None:
    """Why ``out_dir`` cannot hold a simulation's output ("is a FIFO ...", ...); None: it can."""
    out_dir = Path(out_dir)
    if not os.path.lexists(out_dir) or out_dir.is_dir():
        return None
    kind = (not_regular_file(out_dir) or "is a file").replace(", not a regular file", "")
    return f"{kind}, not a directory"


def _unreadable(path: Path) -> str | None:
    """Why the regular file ``path`` does not read as raycg's file of that name (None: it does)."""
    name = path.name
    try:
        if name == "checkpoint.pt":
            from raycg.sim.state import load_checkpoint

            load_checkpoint(path)
        elif name.endswith(".json"):
            data = json.loads(path.read_text(encoding="utf-8"))
            key = "n_replicas" if name == "replicas.json" else "frames"
            if not isinstance(data, dict) or key not in data:
                return f"is not the {name} a raycg simulation writes (no {key})"
        elif name == "thermo.npz":
            with np.load(path, allow_pickle=False) as z:
                if "potential_energy" not in z.files:
                    return "is not a raycg thermo.npz (no potential_energy)"
        elif name == "topology.pdb":
            import mdtraj

            mdtraj.load_topology(str(path))
        else:
            import h5py

            with h5py.File(path, "r") as fh:
                if "coordinates" not in fh:
                    return "is not an mdtraj HDF5 trajectory (no coordinates)"
    except InputError as exc:  # raycg's own reader: its message without the path and the hint
        text = str(exc).split("; ")[0].removeprefix(str(path)).lstrip(": ")
        return f"cannot be read back ({text})"
    except Exception as exc:  # noqa: BLE001 - whatever the reader raises, raycg cannot read it
        text = str(exc).splitlines()[0][:80] if str(exc) else ""
        return f"cannot be read back ({type(exc).__name__}{': ' + text if text else ''})"
    return None


# ----------------------------------------------------------------------------------------------
# result


@dataclass
class SimulationResult:
    """What a simulation produced.

    positions [R, T, B, 3] Å at the saved frames (NaN from the first saved frame at or after a
    replica's death; use :meth:`replica_frames` for only the valid frames); potential_energy and
    kinetic_temperature [R, T] (kcal/mol, K; NaN-masked after death the same way); time_ps, step [T];
    alive [R]; died_at_step [R] (-1 if alive); reasons [R] (None if alive); blown_up list of dicts.
    """

    positions: np.ndarray | None
    potential_energy: np.ndarray
    kinetic_temperature: np.ndarray
    time_ps: np.ndarray
    step: np.ndarray
    alive: np.ndarray
    died_at_step: np.ndarray
    reasons: list[str | None]
    n_frames_per_replica: np.ndarray
    blown_up: list[dict] = field(default_factory=list)
    steps_per_s: float = float("nan")
    wall_s: float = float("nan")
    final_positions: np.ndarray | None = None
    final_velocities: np.ndarray | None = None
    out_dir: Path | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_replicas(self) -> int:
        return int(self.alive.shape[0])

    @property
    def replica_steps_per_s(self) -> float:
        return self.steps_per_s * self.n_replicas

    def replica_frames(self, r: int) -> np.ndarray:
        """The valid frames [T_r, B, 3] (Å) of replica ``r``."""
        if self.positions is None:
            if self.out_dir is None:
                raise InputError("this result kept no positions in memory and has no output directory")
            return read_replica(self.out_dir, r)
        return self.positions[r, : int(self.n_frames_per_replica[r])]


def read_replica(out_dir: str | os.PathLike, r: int) -> np.ndarray:
    """Frames [T_r, B, 3] in Å of replica ``r`` from an output directory (empty if it has none)."""
    import h5py

    out_dir = Path(out_dir)
    info = json.loads((out_dir / "replicas.json").read_text())
    p = out_dir / replica_file(r)
    if not p.exists():
        return np.zeros((0, int(info["n_beads"]), 3), dtype=np.float32)
    with h5py.File(p, "r") as fh:
        return np.asarray(fh["coordinates"][...], dtype=np.float32) * np.float32(U.NM_TO_ANGSTROM)


def load_simulation(out_dir: str | os.PathLike, *, positions: bool = True) -> SimulationResult:
    """Read a finished simulation directory back into a :class:`SimulationResult` (positions in Å)."""
    out_dir = Path(out_dir)
    rep = out_dir / "replicas.json"
    if not rep.is_file():
        hint = ("the run did not finish; call simulate again with the same out_dir to resume"
                if (out_dir / "checkpoint.pt").exists() else "is this a raycg simulation output directory?")
        raise InputError(f"{rep} not found", hint=hint)
    info = json.loads(rep.read_text())
    with np.load(out_dir / "thermo.npz") as th:
        thermo = {k: th[k] for k in th.files}
    r_, b_ = int(info["n_replicas"]), int(info["n_beads"])
    t_ = int(thermo["time_ps"].shape[0])
    nfr = np.asarray(info["frames_per_replica"], dtype=np.int64)
    pos = None
    if positions:
        pos = np.full((r_, t_, b_, 3), np.nan, dtype=np.float32)
        for r in range(r_):
            fr = read_replica(out_dir, r)
            pos[r, : fr.shape[0]] = fr
    died = np.full(r_, -1, dtype=np.int64)
    reasons: list[str | None] = [None] * r_
    for d in info["blown_up"]:
        died[d["replica"]] = d["step"]
        reasons[d["replica"]] = d["reason"]
    return SimulationResult(
        positions=pos, potential_energy=thermo["potential_energy"], kinetic_temperature=thermo["kinetic_temperature"],
        time_ps=thermo["time_ps"], step=thermo["step"], alive=died < 0, died_at_step=died, reasons=reasons,
        n_frames_per_replica=nfr, blown_up=list(info["blown_up"]), steps_per_s=float(info.get("steps_per_s", np.nan)),
        wall_s=float(info.get("wall_s", np.nan)), out_dir=out_dir, info=info,
    )
