"""The raycg CG dataset: one on-disk layout that every stage reads.

A dataset is a directory::

    DATASET/
      meta.json         DatasetMeta (units, temperature, frame spacing, beads, bonds, mapping,
                        provenance, content hash)
      coords.npy        float32 [frames, beads, 3], Å              (memory-mapped on load)
      forces.npy        float32 [frames, beads, 3], kcal/mol/Å     (optional)
      traj_offsets.npy  int64 [n_trajectories + 1]; trajectory t is frames offsets[t]:offsets[t+1]
      weights.npy       float64 [frames] (optional; per-frame statistical weights)
      topology.pdb      CG topology (one atom per bead, CONECT bonds) that mdtraj loads

Writes are atomic (the whole directory appears at once). ``load`` memory-maps the arrays, so a
dataset of millions of frames opens instantly and is read lazily.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from raycg import units as U
from raycg.errors import DatasetError
from raycg.utils.io import atomic_directory, not_regular_file, update_hash_with_array

FORMAT_NAME = "raycg-cg-dataset"
FORMAT_VERSION = 1
ARRAY_FILES = ("coords.npy", "forces.npy", "traj_offsets.npy", "weights.npy")


class BeadInfo(BaseModel):
    """Per-bead metadata (all lists have one entry per bead)."""

    model_config = ConfigDict(extra="forbid")
    names: list[str]                      # e.g. "CA"
    types: list[int]                      # embedding index (residue type for Cα maps)
    type_names: list[str] = Field(default_factory=list)  # name of each type index, e.g. ["TYR", "ASP", ...]
    masses: list[float]                   # amu
    residue_names: list[str]              # e.g. "TYR"
    residue_ids: list[int]                # 1-based residue sequence numbers
    chain_ids: list[str] = Field(default_factory=list)


class MappingInfo(BaseModel):
    """How all-atom coordinates and forces were mapped onto beads."""

    model_config = ConfigDict(extra="allow")
    kind: str = "ca-slice"                # "ca-slice", "custom", "identity" (data already CG)
    atoms_per_bead: list[list[int]] = Field(default_factory=list)   # coordinate (slice) atoms
    force_atoms_per_bead: list[list[int]] = Field(default_factory=list)  # atoms whose forces are summed
    force_aggregation: str = "constraint-aware"


class DatasetMeta(BaseModel):
    """Contents of ``meta.json``."""

    model_config = ConfigDict(extra="forbid")
    format: str = FORMAT_NAME
    format_version: int = Field(FORMAT_VERSION, strict=True)
    name: str = "dataset"
    units: dict[str, str] = Field(default_factory=lambda: dict(U.UNITS))
    n_frames: int
    n_beads: int
    n_trajectories: int
    temperature_K: float = Field(gt=0)
    dt_frame_ps: float = Field(gt=0)      # time between saved frames, ps
    beads: BeadInfo
    bonds: list[tuple[int, int]]          # CG bonds (bead index pairs), define the bonded topology
    mapping: MappingInfo = Field(default_factory=MappingInfo)
    has_forces: bool = True
    has_weights: bool = False
    provenance: dict[str, Any] = Field(default_factory=dict)
    content_hash: str = ""

    @field_validator("format_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v > FORMAT_VERSION:
            raise ValueError(f"format_version {v} is newer than this raycg reads ({FORMAT_VERSION}); "
                             "upgrade raycg or re-export the dataset")
        if v < 1:
            raise ValueError(f"format_version {v} is not a raycg dataset format version (this raycg reads "
                             f"{FORMAT_VERSION})")
        return v


@dataclass
class CGDataset:
    """A CG dataset in memory (arrays may be memory-mapped, read-only).

    coords: [F, B, 3] float32 Å; forces: [F, B, 3] float32 kcal/mol/Å or None;
    traj_offsets: [T+1] int64; weights: [F] float64 or None.
    """

    coords: np.ndarray
    forces: np.ndarray | None
    traj_offsets: np.ndarray
    meta: DatasetMeta
    weights: np.ndarray | None = None
    path: Path | None = None
    _topology: Any = field(default=None, repr=False)

    # --- sizes -------------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return int(self.coords.shape[0])

    @property
    def n_beads(self) -> int:
        return int(self.coords.shape[1])

    @property
    def n_trajectories(self) -> int:
        return int(len(self.traj_offsets) - 1)

    @property
    def temperature(self) -> float:
        """Data temperature in K."""
        return float(self.meta.temperature_K)

    @property
    def bead_types(self) -> np.ndarray:
        return np.asarray(self.meta.beads.types, dtype=np.int64)

    @property
    def masses(self) -> np.ndarray:
        """Bead masses in amu, shape [B]."""
        return np.asarray(self.meta.beads.masses, dtype=np.float64)

    @property
    def bonds(self) -> np.ndarray:
        return np.asarray(self.meta.bonds, dtype=np.int64).reshape(-1, 2)

    @property
    def content_hash(self) -> str:
        return self.meta.content_hash or compute_content_hash(self)

    # --- trajectories -------------------------------------------------------------------------
    def traj_ids(self) -> np.ndarray:
        """Per-frame trajectory index, shape [F] int64."""
        lengths = np.diff(self.traj_offsets)
        return np.repeat(np.arange(self.n_trajectories, dtype=np.int64), lengths)

    def trajectory_slice(self, t: int) -> slice:
        return slice(int(self.traj_offsets[t]), int(self.traj_offsets[t + 1]))

    def trajectory_lengths(self) -> np.ndarray:
        return np.diff(self.traj_offsets)

    def frames_of(self, trajectories: np.ndarray | list[int]) -> np.ndarray:
        """Frame indices (sorted) belonging to the given trajectory indices."""
        parts = [np.arange(self.traj_offsets[t], self.traj_offsets[t + 1]) for t in trajectories]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def subset(self, trajectories: np.ndarray | list[int]) -> CGDataset:
        """A new in-memory dataset made of whole trajectories (arrays copied)."""
        trajectories = [int(t) for t in trajectories]
        idx = self.frames_of(trajectories)
        lengths = np.array([self.traj_offsets[t + 1] - self.traj_offsets[t] for t in trajectories], np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        meta = self.meta.model_copy(deep=True)
        meta.n_frames = int(len(idx))
        meta.n_trajectories = len(trajectories)
        meta.content_hash = ""
        ds = CGDataset(
            coords=np.asarray(self.coords[idx]), forces=None if self.forces is None else np.asarray(self.forces[idx]),
            traj_offsets=offsets, meta=meta, weights=None if self.weights is None else np.asarray(self.weights[idx]),
        )
        ds.meta.content_hash = compute_content_hash(ds)
        return ds

    def topology(self):
        """The CG topology as an ``mdtraj.Topology`` (one CA-like atom per bead, bonds from meta)."""
        if self._topology is None:
            self._topology = make_cg_topology(self.meta.beads, self.bonds)
        return self._topology

    def to_mdtraj(self, frames: slice | np.ndarray | None = None):
        """An ``mdtraj.Trajectory`` of the given frames (coordinates converted to nm for mdtraj)."""
        import mdtraj

        xyz = np.asarray(self.coords[frames if frames is not None else slice(None)], dtype=np.float32)
        return mdtraj.Trajectory(xyz * np.float32(U.ANGSTROM_TO_NM), self.topology())


# ----------------------------------------------------------------------------------------------
# topology


def make_cg_topology(beads: BeadInfo, bonds: np.ndarray):
    """Build an mdtraj Topology with one atom per bead, one residue per bead's residue id."""
    import mdtraj

    top = mdtraj.Topology()
    chains: dict[str, Any] = {}
    residues: dict[tuple[str, int], Any] = {}
    atoms = []
    chain_ids = beads.chain_ids or ["A"] * len(beads.names)
    for i, name in enumerate(beads.names):
        cid = chain_ids[i]
        if cid not in chains:
            chains[cid] = top.add_chain()
        key = (cid, beads.residue_ids[i])
        if key not in residues:
            residues[key] = top.add_residue(beads.residue_names[i], chains[cid], resSeq=int(beads.residue_ids[i]))
        element = mdtraj.element.carbon
        atoms.append(top.add_atom(name, element, residues[key]))
    for a, b in np.asarray(bonds).reshape(-1, 2):
        top.add_bond(atoms[int(a)], atoms[int(b)])
    return top


def write_topology_pdb(path: str | os.PathLike, beads: BeadInfo, bonds: np.ndarray, coords: np.ndarray) -> None:
    """Write a CG PDB (coordinates in Å) with explicit CONECT records for every CG bond.

    mdtraj only writes CONECT records for non-standard residues, so the bonds are appended here;
    ``mdtraj.load`` reads them back into the topology.
    """
    lines = []
    chain_ids = beads.chain_ids or ["A"] * len(beads.names)
    for i, name in enumerate(beads.names):
        x, y, z = (float(v) for v in coords[i])
        lines.append(
            f"ATOM  {i + 1:5d} {name:<4s} {beads.residue_names[i]:>3s} {chain_ids[i][:1]:1s}"
            f"{int(beads.residue_ids[i]) % 10000:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C"
        )
    lines.append("TER")
    neighbours: dict[int, list[int]] = {}
    for a, b in np.asarray(bonds).reshape(-1, 2):
        neighbours.setdefault(int(a), []).append(int(b))
        neighbours.setdefault(int(b), []).append(int(a))
    for a in sorted(neighbours):
        partners = sorted(neighbours[a])
        for k in range(0, len(partners), 4):
            lines.append("CONECT" + f"{a + 1:5d}" + "".join(f"{p + 1:5d}" for p in partners[k : k + 4]))
    lines.append("END")
    Path(path).write_text("\n".join(lines) + "\n")


# ----------------------------------------------------------------------------------------------
# hashing, save, load


def compute_content_hash(ds: CGDataset) -> str:
    """SHA-256 over every array byte plus the physics-relevant metadata (not provenance).

    Arrays may also be lazy row readers (``_raycg_lazy_array = True``, with ``dtype``, ``shape``,
    ``ndim`` and row slicing, e.g. :class:`raycg.data.npy_reader.NpyArray`): hashed chunk by chunk.
    """
    h = hashlib.sha256()
    for arr in (ds.coords, ds.forces, ds.traj_offsets, ds.weights):
        if arr is None:
            h.update(b"<none>")
        else:
            lazy = isinstance(arr, np.memmap) or getattr(arr, "_raycg_lazy_array", False)
            update_hash_with_array(h, arr if lazy else np.asarray(arr))
    phys = ds.meta.model_dump(mode="json", include={"temperature_K", "dt_frame_ps", "beads", "bonds", "units"})
    h.update(json.dumps(phys, sort_keys=True).encode())
    return "sha256:" + h.hexdigest()


def save(ds: CGDataset, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``ds`` to ``path`` atomically; fills n_frames/n_beads/... and the content hash."""
    path = Path(path)
    coords = np.asarray(ds.coords, dtype=np.float32)
    forces = None if ds.forces is None else np.asarray(ds.forces, dtype=np.float32)
    meta = ds.meta.model_copy(deep=True)
    meta.n_frames, meta.n_beads = int(coords.shape[0]), int(coords.shape[1])
    meta.n_trajectories = int(len(ds.traj_offsets) - 1)
    meta.has_forces = forces is not None
    meta.has_weights = ds.weights is not None
    out = CGDataset(coords=coords, forces=forces, traj_offsets=np.asarray(ds.traj_offsets, np.int64),
                    meta=meta, weights=None if ds.weights is None else np.asarray(ds.weights, np.float64))
    meta.content_hash = compute_content_hash(out)
    with atomic_directory(path, overwrite=overwrite) as tmp:
        np.save(tmp / "coords.npy", coords)
        if forces is not None:
            np.save(tmp / "forces.npy", forces)
        np.save(tmp / "traj_offsets.npy", out.traj_offsets)
        if out.weights is not None:
            np.save(tmp / "weights.npy", out.weights)
        first = coords[0] if len(coords) else np.zeros((meta.n_beads, 3), np.float32)
        write_topology_pdb(tmp / "topology.pdb", meta.beads, out.bonds, first)
        (tmp / "meta.json").write_text(meta.model_dump_json(indent=2) + "\n")
    ds.meta = meta
    ds.path = path
    return path


def read_meta(path: str | os.PathLike) -> DatasetMeta:
    path = Path(path)
    meta_file = path / "meta.json"
    if not path.is_dir():
        raise DatasetError(f"dataset directory not found: {path}",
                           hint="check the path or make one with 'raycg data import'/'raycg data synth'")
    problem = not_regular_file(meta_file)
    if problem == "not found":
        raise DatasetError(f"{meta_file} is missing", hint="is this a raycg dataset directory?")
    if problem is not None:
        raise DatasetError(f"{meta_file}: {problem}", hint="meta.json must be a JSON file")
    try:
        return DatasetMeta.model_validate_json(meta_file.read_text())
    except ValidationError as err:
        from raycg.config import format_validation_error

        raise DatasetError(format_validation_error(err, str(meta_file))) from None


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    problem = not_regular_file(path)
    if problem is not None and problem != "not found":
        raise DatasetError(f"{path}: {problem}", hint="an array must be a .npy file")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{path}: unreadable or truncated array file ({exc})",
                           hint="re-create the dataset from its sources") from None


def _integer_offsets(raw: np.ndarray, where: Path) -> np.ndarray:
    """``raw`` as int64; DatasetError if it is not an integer array (1000.5 must not become 1000)."""
    if not np.issubdtype(raw.dtype, np.integer):
        raise DatasetError(f"{where}: trajectory offsets must be integers, got dtype {raw.dtype}",
                           hint="re-import the dataset")
    return np.asarray(raw, dtype=np.int64)


def load(path: str | os.PathLike, *, mmap: bool = True) -> CGDataset:
    """Open a dataset directory. Arrays are memory-mapped read-only unless ``mmap=False``.

    Only structural checks happen here; :func:`raycg.data.validate.validate_dataset` does the
    physical plausibility checks.
    """
    path = Path(path)
    meta = read_meta(path)
    coords = _load_array(path / "coords.npy", mmap)
    forces = _load_array(path / "forces.npy", mmap) if meta.has_forces else None
    offsets = _integer_offsets(_load_array(path / "traj_offsets.npy", False), path / "traj_offsets.npy")
    weights = _load_array(path / "weights.npy", mmap) if meta.has_weights else None
    return CGDataset(coords=coords, forces=forces, traj_offsets=offsets, meta=meta, weights=weights, path=path)


# ----------------------------------------------------------------------------------------------
# splits


@dataclass(frozen=True)
class DatasetSplit:
    """Trajectory indices of each part of a trajectory-level split."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_trajectories(ds: CGDataset, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                       seed: int = 0) -> DatasetSplit:
    """Split by whole trajectories (never by frame: frames of one trajectory are correlated).

    ``fractions`` are of trajectories (train, validation, test); a part with a non-zero fraction
    gets at least one trajectory. Deterministic for a seed.
    """
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or np.any(f < 0) or not np.isclose(f.sum(), 1.0):
        raise DatasetError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    n = ds.n_trajectories
    need = int(np.count_nonzero(f))
    if n < need:
        raise DatasetError(
            f"cannot split {n} trajectorie(s) into {need} non-empty parts by trajectory",
            hint="provide more trajectories, or cut long trajectories into blocks before importing",
        )
    order = np.random.default_rng(seed).permutation(n)
    counts = np.floor(f * n).astype(int)
    for i in range(3):
        if f[i] > 0 and counts[i] == 0:
            counts[i] = 1
    while counts.sum() > n:
        counts[int(np.argmax(counts))] -= 1
    counts[0] += n - counts.sum()
    a, b = counts[0], counts[0] + counts[1]
    return DatasetSplit(train=np.sort(order[:a]), validation=np.sort(order[a:b]), test=np.sort(order[b:]))
