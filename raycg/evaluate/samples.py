"""Loading model trajectories to score: raycg simulation directories or any mdtraj-readable file.

Accepted inputs (one replica per trajectory file):

- a raycg simulation output directory (``replicas.json`` + ``replica_*.h5``, see docs/architecture.md):
  a replica listed under ``blown_up`` is counted as blown up; the frames it saved before the
  blow-up are scored and the rest of its planned run (``n_frames``) counts as lost replica-time,
  which scoring penalises (METRICS.md);
- an mdtraj HDF5 (``.h5``), PDB or other self-describing file; formats without a topology
  (``.xtc``, ``.dcd``, ``.trr``, ``.nc``, ...) take the CG topology from ``topology=`` or from the
  reference dataset; all-atom trajectories are reduced to their Cα atoms when those match the
  reference bead count;
- a ``.npy`` array of raycg coordinates in Å, ``[F, B, 3]`` (one replica) or ``[R, F, B, 3]``.

mdtraj works in nm; everything returned here is in Å (``raycg.units``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raycg import units as U
from raycg.errors import DatasetError, InputError

if TYPE_CHECKING:
    import mdtraj

    from raycg.data.format import CGDataset

TOPOLOGY_FREE_SUFFIXES = {".xtc", ".dcd", ".trr", ".nc", ".netcdf", ".binpos", ".mdcrd", ".crd", ".lammpstrj",
                          ".xyz", ".lh5", ".arc", ".dtr"}


@dataclass
class _Loaded:
    """One replica as read, before it becomes part of :class:`ModelSamples`."""

    where: str
    xyz: np.ndarray
    explicit: bool = False          # named by the user (an empty file is then an error)
    planned: int | None = None      # planned frames (None: its length)
    blown_up: str | None = None     # reason, when the simulation reported a blow-up


@dataclass
class ModelSamples:
    """Model trajectories in Å, one array ``[T_r, B, 3]`` per scored replica.

    ``n_replicas_total`` counts every replica found; ``n_blown_up`` those that blew up (the
    simulation reported it, or their coordinates turn non-finite); ``n_empty`` those with no frames
    (excluded, not counted as blown up). A blown-up replica keeps the frames it saved before the
    blow-up (up to the first non-finite frame) and loses the rest of its planned run:
    ``planned_frames[i]`` is the planned length of ``replicas[i]`` (its own length when it ran to the
    end), and ``lost_planned_frames`` lists the planned lengths of blown-up replicas that saved no
    frame at all. ``dt_frame_ps`` is the spacing of saved frames when known (else ``None``).
    """

    replicas: list[np.ndarray]
    n_beads: int
    n_replicas_total: int
    n_blown_up: int = 0
    n_empty: int = 0
    excluded: list[dict[str, Any]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    replica_sources: list[str] = field(default_factory=list)
    dt_frame_ps: float | None = None
    planned_frames: list[int] = field(default_factory=list)
    lost_planned_frames: list[int] = field(default_factory=list)
    #: The structure each scored replica started from (Å, same order as ``replicas``), when known; the
    #: convergence check classifies start basins by it. Without it the first *saved* frame stands in,
    #: which a model that leaves its start basin within one save interval has already left.
    start_frames: list[np.ndarray] = field(default_factory=list)

    @property
    def n_replicas(self) -> int:
        return len(self.replicas)

    def set_start_frames(self, starts: np.ndarray) -> None:
        """Attach the simulation's start positions ``[n_replicas_total, B, 3]`` (Å): each scored replica
        gets the one of its index (``replica_NNNN`` in its source), else its position in ``replicas``."""
        import re

        starts = np.asarray(starts, dtype=np.float32)
        out = []
        for i, src in enumerate(self.replica_sources or [""] * len(self.replicas)):
            m = re.search(r"replica_(\d+)", src or "")
            j = int(m.group(1)) if m else i
            if not 0 <= j < len(starts):
                raise ValueError(f"replica {j} has no start position ({len(starts)} given)")
            out.append(starts[j])
        self.start_frames = out

    @property
    def n_frames(self) -> int:
        return int(sum(len(r) for r in self.replicas))

    @property
    def replica_time_lost_fraction(self) -> float:
        """Planned replica-time lost after blow-ups: Σ (planned − saved frames) / Σ planned frames."""
        kept = self.planned_frames or [len(r) for r in self.replicas]
        planned = sum(kept) + sum(self.lost_planned_frames)
        lost = planned - self.n_frames
        return float(lost / planned) if planned > 0 else 0.0

    @classmethod
    def from_arrays(cls, replicas: Iterable[np.ndarray], *, dt_frame_ps: float | None = None,
                    source: str = "<arrays>") -> ModelSamples:
        """Samples from in-memory coordinate arrays (Å), one ``[T, B, 3]`` array per replica."""
        reps = [np.asarray(r, dtype=np.float32) for r in replicas]
        if not reps:
            raise InputError("no model trajectories given", where=source)
        for k, r in enumerate(reps):
            if r.ndim != 3 or r.shape[-1] != 3:
                raise InputError(f"replica {k} must have shape [frames, beads, 3], got {r.shape}", where=source)
        n_beads = reps[0].shape[1]
        for k, r in enumerate(reps):
            if r.shape[1] != n_beads:
                raise DatasetError(f"replica {k} has {r.shape[1]} beads, replica 0 has {n_beads}", where=source)
        s = cls(replicas=[], n_beads=n_beads, n_replicas_total=len(reps), sources=[source], dt_frame_ps=dt_frame_ps)
        for k, r in enumerate(reps):
            s._add(r, f"{source}[{k}]")
        s._finish()
        return s

    # --- internal -----------------------------------------------------------------------------
    def _add(self, xyz_A: np.ndarray, where: str, *, explicit: bool = False, planned: int | None = None,
             blown_up: str | None = None) -> None:
        """Add one replica; ``blown_up`` (a reason) marks a replica the simulation reported blown up,
        ``planned`` its planned frame count (default: its length)."""
        planned = int(len(xyz_A) if planned is None else max(planned, len(xyz_A)))
        if len(xyz_A) == 0 and blown_up is None:
            if explicit:
                raise DatasetError("trajectory has no frames", where=where,
                                   hint="check the file (did the simulation save any frame?)")
            self.n_empty += 1
            self.excluded.append({"source": where, "reason": "empty"})
            return
        finite = np.isfinite(xyz_A).all(axis=(1, 2))
        if not finite.all():
            xyz_A = xyz_A[: int(np.argmin(finite))]      # frames before the first non-finite one
            blown_up = blown_up or "non-finite coordinates"
        if blown_up is not None:
            self.n_blown_up += 1
            self.excluded.append({"source": where, "reason": f"{blown_up}; {len(xyz_A)} of {planned} planned "
                                                             "frames scored, the rest counted as lost"})
        if len(xyz_A) == 0:
            self.lost_planned_frames.append(planned)
            return
        self.replicas.append(np.ascontiguousarray(xyz_A, dtype=np.float32))
        self.replica_sources.append(where)
        self.planned_frames.append(planned)

    def _finish(self) -> None:
        where = ", ".join(self.sources[:3]) + (" ..." if len(self.sources) > 3 else "")
        if not self.replicas:
            if self.n_blown_up and self.n_blown_up + self.n_empty >= self.n_replicas_total:
                raise DatasetError(f"all {self.n_replicas_total} replicas blew up before saving a frame; "
                                   "nothing to score",
                                   where=where, hint="the model is unstable: check the training or use a smaller dt")
            raise DatasetError(f"no frames to score in {self.n_replicas_total} trajector"
                               f"{'y' if self.n_replicas_total == 1 else 'ies'} (all empty)", where=where,
                               hint="check that the simulation saved frames")


def _reference_info(reference: CGDataset | int | mdtraj.Topology | None) -> tuple[int | None, mdtraj.Topology | None]:
    """(n_beads, mdtraj topology or None) from an int, a CGDataset, an mdtraj Topology or None."""
    if reference is None:
        return None, None
    if isinstance(reference, (int, np.integer)):
        return int(reference), None
    import mdtraj

    from raycg.data.format import CGDataset

    if isinstance(reference, CGDataset):
        return int(reference.n_beads), reference.topology()
    if isinstance(reference, mdtraj.Topology):
        return int(reference.n_atoms), reference
    raise InputError(f"cannot use {type(reference).__name__} as the reference; pass a CGDataset, a bead count "
                     "or an mdtraj Topology")


def _check_beads(n: int, n_beads: int | None, where: str) -> None:
    if n_beads is not None and n != n_beads:
        raise DatasetError(f"trajectory has {n} beads but the reference has {n_beads}", where=where,
                           hint="score trajectories of the same CG system (one bead per reference bead)")


def _read_replica_h5(f: Path, n_beads: int | None) -> np.ndarray:
    import h5py

    try:
        with h5py.File(f, "r") as fh:
            xyz = np.asarray(fh["coordinates"][...], dtype=np.float32)
            units = fh["coordinates"].attrs.get("units", b"nanometers")
    except (OSError, KeyError) as exc:
        raise DatasetError(f"unreadable replica trajectory ({exc})", where=str(f),
                           hint="re-run the simulation") from None
    units = units.decode() if isinstance(units, bytes) else str(units)
    scale = U.NM_TO_ANGSTROM if units.startswith("nano") else 1.0
    if xyz.ndim != 3 or xyz.shape[-1] != 3:
        raise DatasetError(f"coordinates have shape {xyz.shape}, expected [frames, beads, 3]", where=str(f))
    _check_beads(xyz.shape[1], n_beads, str(f))
    return xyz * np.float32(scale)


def _load_sim_dir(path: Path, n_beads: int | None) -> tuple[list[_Loaded], float | None]:
    """Every replica of a raycg simulation directory. A blown-up replica keeps the frames it saved
    before the blow-up (``frames_per_replica``); its planned length is the run's ``n_frames``."""
    rep = path / "replicas.json"
    try:
        info = json.loads(rep.read_text())
        n_rep = int(info["n_replicas"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"unreadable simulation report ({exc.__class__.__name__}: {exc})", where=str(rep),
                           hint="re-run the simulation") from None
    blown = {int(d["replica"]): d for d in info.get("blown_up", [])}
    dt = None
    if info.get("dt_ps") and info.get("save_every"):
        dt = float(info["dt_ps"]) * int(info["save_every"])
    planned = info.get("n_frames")
    if planned is None and info.get("n_steps") and info.get("save_every"):
        planned = int(info["n_steps"]) // int(info["save_every"])
    saved = info.get("frames_per_replica")
    out: list[_Loaded] = []
    for r in range(n_rep):
        f = path / f"replica_{r:04d}.h5"
        xyz = _read_replica_h5(f, n_beads) if f.exists() else np.zeros((0, n_beads or 0, 3), np.float32)
        if saved is not None and r < len(saved):
            xyz = xyz[: int(saved[r])]
        reason = None
        if r in blown:
            d = blown[r]
            reason = f"blown up: {d.get('reason', '?')} at step {d.get('step', '?')}"
        out.append(_Loaded(str(f), xyz, False, None if planned is None else int(planned), reason))
    if planned is None:  # older report: the longest replica that ran to the end
        full = [len(x.xyz) for x in out if x.blown_up is None] or [len(x.xyz) for x in out]
        for x in out:
            x.planned = max(full)
    return out, dt


def _load_mdtraj_file(path: Path, n_beads: int | None, topology: Any) -> tuple[np.ndarray, float | None]:
    import mdtraj

    kw = {}
    if path.suffix.lower() in TOPOLOGY_FREE_SUFFIXES:
        if topology is None:
            raise InputError(f"{path.suffix} files carry no topology", where=str(path),
                             hint="pass --top TOPOLOGY.pdb or a reference dataset")
        kw["top"] = topology
    try:
        traj = mdtraj.load(str(path), **kw)
    except Exception as exc:  # mdtraj raises many types for unreadable files
        msg = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise DatasetError(f"mdtraj cannot read this trajectory ({msg})", where=str(path),
                           hint="check the file and its topology") from None
    if n_beads is not None and traj.n_atoms != n_beads:
        ca = traj.topology.select("name CA")
        if len(ca) == n_beads:
            traj = traj.atom_slice(ca)
        else:
            _check_beads(traj.n_atoms, n_beads, str(path))
    dt = float(traj.timestep) if traj.n_frames > 1 and np.isfinite(traj.timestep) and traj.timestep > 0 else None
    return np.asarray(traj.xyz, dtype=np.float32) * np.float32(U.NM_TO_ANGSTROM), dt


def load_model_trajectories(paths: str | os.PathLike | Iterable[str | os.PathLike],
                            reference: CGDataset | int | mdtraj.Topology | None = None, *,
                            topology: str | os.PathLike | mdtraj.Topology | None = None) -> ModelSamples:
    """Load model trajectories to score (see the module docstring for accepted inputs).

    ``reference``: a :class:`~raycg.data.format.CGDataset`, a bead count or an mdtraj Topology; the
    bead count of every trajectory is checked against it, and its topology is used for files that
    carry none. ``topology``: a topology file or mdtraj Topology that overrides it.
    Raises :class:`DatasetError` (one line) for a wrong bead count, an explicitly given empty
    trajectory, unreadable files, or when no replica survives (e.g. all blew up).
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError("no model trajectories given", hint="pass a simulation directory or trajectory files")
    n_beads, ref_top = _reference_info(reference)
    if topology is not None:
        if isinstance(topology, (str, os.PathLike)):
            import mdtraj

            tp = Path(topology)
            if not tp.is_file():
                raise InputError(f"topology file not found: {tp}")
            topology = mdtraj.load_topology(str(tp))
        ref_top = topology
    loaded: list[_Loaded] = []
    dts: list[float] = []
    for p in paths:
        if not p.exists():
            raise InputError(f"trajectory not found: {p}", hint="check the path")
        if p.is_dir():
            if not (p / "replicas.json").is_file():
                hint = ("the simulation did not finish; resume it first" if (p / "checkpoint.pt").exists()
                        else "pass a raycg simulation output directory or trajectory files")
                raise DatasetError("not a finished raycg simulation directory (no replicas.json)", where=str(p),
                                   hint=hint)
            reps, dt = _load_sim_dir(p, n_beads)
            loaded.extend(reps)
            if dt:
                dts.append(dt)
        elif p.suffix.lower() == ".npy":
            try:
                arr = np.load(p, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise DatasetError(f"unreadable array ({exc})", where=str(p)) from None
            if arr.ndim == 3:
                arr = arr[None]
            if arr.ndim != 4 or arr.shape[-1] != 3:
                raise DatasetError(f"array has shape {arr.shape}; expected [frames, beads, 3] or "
                                   "[replicas, frames, beads, 3] in Å", where=str(p))
            _check_beads(arr.shape[2], n_beads, str(p))
            for r in range(arr.shape[0]):
                loaded.append(_Loaded(f"{p}[{r}]", np.asarray(arr[r], np.float32), arr.shape[0] == 1))
        else:
            xyz, dt = _load_mdtraj_file(p, n_beads, ref_top)
            loaded.append(_Loaded(str(p), xyz, True))
            if dt:
                dts.append(dt)
    if not loaded:
        raise InputError("no model trajectories found", where=", ".join(map(str, paths)))
    bead_counts = {x.xyz.shape[1] for x in loaded if len(x.xyz)}
    if len(bead_counts) > 1:
        raise DatasetError(f"trajectories have different bead counts {sorted(bead_counts)}",
                           where=", ".join(map(str, paths)), hint="score one CG system at a time")
    nb = n_beads if n_beads is not None else (bead_counts.pop() if bead_counts else 0)
    samples = ModelSamples(replicas=[], n_beads=nb, n_replicas_total=len(loaded), sources=[str(p) for p in paths],
                           dt_frame_ps=float(np.median(dts)) if dts else None)
    for x in loaded:
        samples._add(x.xyz, x.where, explicit=x.explicit, planned=x.planned, blown_up=x.blown_up)
    samples._finish()
    return samples
