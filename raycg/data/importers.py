"""Importers: other people's data → raycg CG datasets, converting units at the boundary.

* :func:`import_torchmd_cg` — the torchmd-cg / Majewski et al. CLN025 layout (Cα coordinates
  [N, B, 3] Å, forces kcal/mol/Å, bead embeddings as ``.npy``; one file or one file per trajectory);
* :func:`import_mdtraj` — all-atom trajectories readable by mdtraj + topology + a forces array per
  trajectory (``.npy``/``.npz``), mapped to beads (:mod:`raycg.data.mapping`);
* :func:`import_mdcath` — mdCATH HDF5 (``/<domain>/pdbProteinAtoms``, ``/<domain>/<T>/<replica>/coords``
  Å and ``forces`` kcal/mol/Å, 1 ns between frames), all-atom, mapped.

All stream in chunks (memory bounded by the chunk size), hash their sources (sha256, recorded in
``meta.provenance["sources"]``), never modify their inputs, and write the dataset atomically after
validating it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from raycg import units as U
from raycg.data.format import DatasetMeta, MappingInfo
from raycg.data.mapping import CGMap, ConstraintSpec, beads_from_sequence, ca_map, custom_map
from raycg.data.npy_reader import NpyArray
from raycg.data.streaming import write_dataset_streaming
from raycg.data.validate import traj_ids_to_offsets
from raycg.errors import DatasetError, InputError
from raycg.utils.io import not_regular_file, sha256_file
from raycg.utils.provenance import provenance

TORCHMD_CG_TEMPERATURE_K = 350.0
TORCHMD_CG_DT_PS = 100.0
MDCATH_DT_PS = 1000.0


def regular_input(path: str | os.PathLike, what: str) -> Path:
    """``path`` if it is a regular file; otherwise one InputError line naming ``what`` and what the
    path is ("not found", "a FIFO (named pipe), not a regular file", ...). Nothing is opened: reading
    a FIFO or a device could block forever."""
    problem = not_regular_file(path)
    if problem == "not found":
        raise InputError(f"{what}: file not found: {path}", hint="check the path")
    if problem is not None:
        raise InputError(f"{what}: {path} {problem}", hint="give a regular file (copy the data to one)")
    return Path(path)


def expand_paths(spec: str | os.PathLike | Sequence[str | os.PathLike], what: str) -> list[Path]:
    """Paths from a path, a glob pattern or a list of either (sorted within each glob); each must be
    a regular file (:func:`regular_input`)."""
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    out: list[Path] = []
    for item in items:
        s = str(item)
        if any(ch in s for ch in "*?["):
            hits = sorted(glob.glob(s))
            if not hits:
                raise InputError(f"{what}: pattern {s!r} matches no file", hint="check the glob")
            out += [regular_input(h, what) for h in hits]
        else:
            out.append(regular_input(s, what))
    return out


def _source(path: Path, digest: str | None = None) -> dict[str, Any]:
    return {"path": str(Path(path).resolve()), "sha256": digest or sha256_file(path), "bytes": os.path.getsize(path)}


def _make_mapping(topology: Any, map_file: str | None, termini: bool, constraints: Any, bead_mass: str) -> CGMap:
    if map_file:
        return custom_map(topology, regular_input(map_file, "--map"), constraints=constraints)
    return ca_map(topology, termini=termini, constraints=constraints, bead_mass=bead_mass)  # type: ignore[arg-type]


def _meta(name: str, n_frames: int, n_beads: int, temperature: float, dt_ps: float, beads, bonds,
          mapping: MappingInfo, config: dict[str, Any], sources: list[dict[str, Any]], importer: str) -> DatasetMeta:
    if not temperature or temperature <= 0:
        raise InputError(f"temperature must be a positive number of K, got {temperature}", hint="pass --temperature")
    if not dt_ps or dt_ps <= 0:
        raise InputError(f"time between frames must be positive (ps), got {dt_ps}", hint="pass --dt-ps")
    return DatasetMeta(
        name=name, n_frames=n_frames, n_beads=n_beads, n_trajectories=1, temperature_K=float(temperature),
        dt_frame_ps=float(dt_ps), beads=beads, bonds=[tuple(map(int, b)) for b in bonds], mapping=mapping,
        has_forces=True, provenance=provenance(config, None, importer=importer, sources=sources),
    )


# ----------------------------------------------------------------------------------------------
# torchmd-cg / Majewski layout


def import_torchmd_cg(coords: str | Sequence[str], forces: str | Sequence[str], out: str | os.PathLike, *,
                      embeddings: str | None = None, sequence: str | None = None, topology: str | None = None,
                      traj_ids: str | None = None, frames_per_traj: int | None = None,
                      weights: str | None = None, temperature: float = TORCHMD_CG_TEMPERATURE_K,
                      dt_ps: float = TORCHMD_CG_DT_PS,
                      length_units: str = "angstrom", force_units: str = "kcal/mol/A", termini: bool = False,
                      bead_mass: Literal["residue", "ca"] = "residue", chunk_frames: int = 1 << 16,
                      overwrite: bool = False, validate: bool = True, progress: bool = True):
    """Import Cα coords/forces ``.npy`` (paths or globs; several files = one trajectory each).

    Trajectory boundaries of a single file come from ``traj_ids`` (per-frame ids ``.npy``, must be
    contiguous) or ``frames_per_traj``; otherwise the file is one trajectory. Bead residues come from
    ``sequence`` (e.g. "YYDPETGTWY") or ``topology`` (any PDB with CA atoms); bead types from
    ``embeddings`` when given, else the residue-type table. ``weights``: optional per-frame statistical
    weights ``.npy`` [N] (for data not at equilibrium). Returns ``(path, ValidationReport)``.
    """
    cfiles, ffiles = expand_paths(coords, "coords"), expand_paths(forces, "forces")
    if len(cfiles) != len(ffiles):
        raise InputError(f"{len(cfiles)} coordinate files but {len(ffiles)} force files",
                         hint="give one forces file per coordinates file (same order)")
    lf, ff = U.length_factor(length_units), U.force_factor(force_units)
    readers = [(NpyArray(c), NpyArray(f)) for c, f in zip(cfiles, ffiles)]
    n_beads, lengths = _check_coords_forces(readers)
    n_frames = int(sum(lengths))
    sources: list[dict[str, Any]] = []
    types = _bead_types(embeddings, n_beads, sources)
    seq, where = _bead_residues(topology, sequence, sources)
    beads, bonds = beads_from_sequence(seq, termini=termini, bead_mass=bead_mass, types=types)
    if len(beads.names) != n_beads:
        raise DatasetError(f"topology bead count {len(beads.names)} != array bead count {n_beads}", where=where,
                           hint="the sequence/topology must have one residue per bead")
    offsets = _trajectory_offsets(lengths, traj_ids, frames_per_traj, sources)
    w = _frame_weights(weights, n_frames, sources)
    mapping = MappingInfo(kind="identity", force_aggregation="as-provided", source_layout="torchmd-cg")
    config = dict(coords=[str(c) for c in cfiles], forces=[str(f) for f in ffiles], embeddings=embeddings,
                  sequence=sequence, topology=topology, traj_ids=traj_ids, frames_per_traj=frames_per_traj,
                  weights=weights, temperature=temperature, dt_ps=dt_ps, length_units=length_units,
                  force_units=force_units, termini=termini, bead_mass=bead_mass)
    meta = _meta(Path(out).name, n_frames, n_beads, temperature, dt_ps, beads, bonds, mapping, config, sources,
                 "torchmd-cg")
    chunks = _HashedChunks(readers, chunk_frames, lf, ff)
    # the sources of the arrays are hashed while they stream; their entries are filled in before meta is written
    meta.provenance["sources"] = sources + chunks.sources
    return write_dataset_streaming(out, meta, offsets, chunks, weights=w, overwrite=overwrite,
                                   validate=validate, progress=progress, desc="import torchmd-cg")


def _check_coords_forces(readers: list[tuple[NpyArray, NpyArray]]) -> tuple[int, list[int]]:
    """Beads and frames per file; DatasetError for bad shapes or files that disagree."""
    n_beads, lengths = None, []
    for cr, fr in readers:
        if len(cr.shape) != 3 or cr.shape[2] != 3:
            raise DatasetError(f"coordinates must be [frames, beads, 3], got shape {cr.shape}", where=str(cr.path))
        if tuple(fr.shape) != tuple(cr.shape):
            raise DatasetError(f"coordinates/forces shape mismatch: {cr.path.name} {cr.shape} vs {fr.path.name} "
                               f"{fr.shape}", where=str(fr.path), hint="coords and forces must hold the same frames")
        if n_beads is not None and cr.shape[1] != n_beads:
            raise DatasetError(f"{cr.shape[1]} beads but earlier files have {n_beads}", where=str(cr.path))
        n_beads = cr.shape[1]
        lengths.append(cr.shape[0])
    return int(n_beads), lengths


def _bead_types(embeddings: str | None, n_beads: int, sources: list[dict[str, Any]]) -> np.ndarray | None:
    """Bead types from an embeddings ``.npy`` (one integer per bead), or None (the residue-type table)."""
    if not embeddings:
        return None
    regular_input(embeddings, "--embeddings")
    types = np.load(embeddings, allow_pickle=False).reshape(-1) if not str(embeddings).endswith(".npz") else None
    if types is None or types.ndim != 1:
        raise InputError("embeddings must be a .npy array with one integer per bead", where=str(embeddings))
    sources.append(_source(Path(embeddings)))
    if len(types) != n_beads:
        raise DatasetError(f"embeddings have {len(types)} entries but the arrays have {n_beads} beads",
                           where=str(embeddings), hint="give the embeddings of this dataset's beads")
    return types


def _bead_residues(topology: str | None, sequence: str | None, sources: list[dict[str, Any]]
                   ) -> tuple[Sequence[str] | str, str]:
    """The residue of each bead (from a topology's CA residues or a one-letter sequence) and where it came from."""
    if topology:
        import mdtraj

        top = mdtraj.load_topology(str(regular_input(topology, "--topology")))
        sources.append(_source(Path(topology)))
        return [r.name for r in top.residues if any(a.name == "CA" for a in r.atoms)], str(topology)
    if sequence:
        return sequence, "--sequence"
    raise InputError("the bead residues are unknown", hint="pass --sequence (e.g. YYDPETGTWY) or --topology PDB")


def _trajectory_offsets(lengths: list[int], traj_ids: str | None, frames_per_traj: int | None,
                        sources: list[dict[str, Any]]) -> np.ndarray:
    """Trajectory boundaries: one per file, else from per-frame ids or a fixed length, else one trajectory."""
    n_frames = int(sum(lengths))
    if len(lengths) > 1:
        if traj_ids or frames_per_traj:
            raise InputError("--traj-ids/--frames-per-traj apply to a single coordinates file, not a glob")
        return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    if traj_ids:
        ids = np.load(regular_input(traj_ids, "--traj-ids"), allow_pickle=False).reshape(-1)
        if len(ids) != n_frames:
            raise DatasetError(f"{len(ids)} trajectory ids for {n_frames} frames", where=str(traj_ids))
        offsets = traj_ids_to_offsets(ids, where=str(traj_ids))
        sources.append(_source(Path(traj_ids)))
        return offsets
    if frames_per_traj:
        if n_frames % frames_per_traj:
            raise InputError(f"{n_frames} frames are not a multiple of --frames-per-traj {frames_per_traj}")
        return np.arange(0, n_frames + 1, frames_per_traj, dtype=np.int64)
    return np.array([0, n_frames], np.int64)


def _frame_weights(weights: str | None, n_frames: int, sources: list[dict[str, Any]]) -> np.ndarray | None:
    if not weights:
        return None
    w = np.load(regular_input(weights, "--weights"), allow_pickle=False).astype(np.float64).reshape(-1)
    if len(w) != n_frames:
        raise DatasetError(f"{len(w)} weights for {n_frames} frames", where=str(weights))
    sources.append(_source(Path(weights)))
    return w


class _HashedChunks:
    """(coords, forces) float32 chunks of every file pair in Å and kcal/mol/Å, hashing the files as they
    stream; once iterated, ``sources`` (coords, forces, ... in file order) hold their sha256."""

    def __init__(self, readers: list[tuple[NpyArray, NpyArray]], chunk_frames: int, length_factor: float,
                 force_factor: float) -> None:
        self.readers, self.chunk_frames = readers, chunk_frames
        self.lf, self.ff = length_factor, force_factor
        self.sources = [{"path": str(r.path.resolve()), "sha256": None, "bytes": os.path.getsize(r.path)}
                        for pair in readers for r in pair]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for k, (cr, fr) in enumerate(self.readers):
            hc, hf = hashlib.sha256(), hashlib.sha256()
            for c, f in zip(cr.iter_chunks(self.chunk_frames, hc), fr.iter_chunks(self.chunk_frames, hf)):
                c = c.astype(np.float32, copy=False)
                f = f.astype(np.float32, copy=False)
                if self.lf != 1.0:
                    c = c * np.float32(self.lf)
                if self.ff != 1.0:
                    f = f * np.float32(self.ff)
                yield c, f
            cr.close()
            fr.close()
            self.sources[2 * k]["sha256"], self.sources[2 * k + 1]["sha256"] = hc.hexdigest(), hf.hexdigest()


def import_mdtraj(trajectories: str | Sequence[str], forces: str | Sequence[str], out: str | os.PathLike, *,
                  topology: str | None = None, force_units: str = "kJ/mol/nm", forces_key: str | None = None,
                  temperature: float, dt_ps: float | None = None, stride: int = 1, map_file: str | None = None,
                  termini: bool = False, constraints: ConstraintSpec | np.ndarray = "h-bonds",
                  bead_mass: Literal["residue", "ca"] = "residue",
                  chunk_frames: int = 1000, overwrite: bool = False, validate: bool = True, progress: bool = True):
    """Import all-atom trajectories (one per file; mdtraj reads nm) + one forces array per file, mapped.

    ``forces`` may also be a single array holding all trajectories' frames back to back.
    ``dt_ps`` defaults to the trajectory time step × stride. Returns ``(path, ValidationReport)``.
    """
    import mdtraj

    tfiles = expand_paths(trajectories, "trajectories")
    ffiles = expand_paths(forces, "forces")
    if topology:
        regular_input(topology, "--top")
    if stride < 1:
        raise InputError(f"--stride must be ≥ 1, got {stride}")
    ff = U.force_factor(force_units)
    try:
        first = mdtraj.load_frame(str(tfiles[0]), 0, top=topology) if topology else mdtraj.load_frame(str(tfiles[0]), 0)
    except (ValueError, OSError, TypeError) as exc:
        raise InputError(f"cannot read {tfiles[0]} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                         hint="formats without a topology (xtc, dcd, ...) need --top PDB") from None
    top = first.topology
    cgmap = _make_mapping(top, map_file, termini, constraints, bead_mass)
    freaders = [NpyArray(f, forces_key) for f in ffiles]
    for fr in freaders:
        if len(fr.shape) != 3 or fr.shape[1:] != (top.n_atoms, 3):
            raise DatasetError(f"forces must be [frames, {top.n_atoms} atoms, 3] for this topology, got {fr.shape}",
                               where=str(fr.path), hint="give the forces of all atoms of the topology")
    n_traj_frames = []
    for t in tfiles:
        try:
            with mdtraj.open(str(t)) as fh:
                n_traj_frames.append(len(fh))
        except (TypeError, NotImplementedError, OSError, ValueError):  # formats without a cheap length
            n_traj_frames.append(sum(c.n_frames for c in
                                     mdtraj.iterload(str(t), top=topology or top, chunk=chunk_frames)))
    if len(ffiles) == len(tfiles):
        for t, fr, n in zip(tfiles, freaders, n_traj_frames):
            if len(fr) != n:
                raise DatasetError(f"{n} frames in {t.name} but {len(fr)} in the forces array", where=str(fr.path),
                                   hint="forces must hold one row per trajectory frame")
        slices = [(k, 0) for k in range(len(tfiles))]
    elif len(ffiles) == 1:
        if len(freaders[0]) != sum(n_traj_frames):
            raise DatasetError(f"{sum(n_traj_frames)} trajectory frames but {len(freaders[0])} force rows",
                               where=str(ffiles[0]), hint="forces must hold every trajectory's frames back to back")
        starts = np.concatenate([[0], np.cumsum(n_traj_frames)[:-1]])
        slices = [(0, int(s)) for s in starts]
    else:
        raise InputError(f"{len(tfiles)} trajectories but {len(ffiles)} forces arrays",
                         hint="give one forces array per trajectory, or one for all")
    lengths = [len(range(0, n, stride)) for n in n_traj_frames]
    n_frames = int(sum(lengths))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    if dt_ps is None:
        two = next(mdtraj.iterload(str(tfiles[0]), top=topology or first.topology, chunk=2))
        dt_ps = float(two.time[1] - two.time[0]) * stride if two.n_frames > 1 else 0.0
        if not dt_ps > 0:
            raise InputError(f"cannot infer the time between frames from {tfiles[0].name}", hint="pass --dt-ps")
    sources = [_source(p) for p in tfiles + ffiles] + ([_source(Path(topology))] if topology else [])
    config = dict(trajectories=[str(t) for t in tfiles], forces=[str(f) for f in ffiles], topology=topology,
                  force_units=force_units, temperature=temperature, dt_ps=dt_ps, stride=stride, map_file=map_file,
                  termini=termini, constraints=constraints if isinstance(constraints, str) else "explicit",
                  bead_mass=bead_mass)
    meta = _meta(Path(out).name, n_frames, cgmap.n_beads, temperature, dt_ps, cgmap.beads, cgmap.bonds, cgmap.info,
                 config, sources, "mdtraj")

    def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for t, (fi, base) in zip(tfiles, slices):
            fr, row = freaders[fi], base
            for traj in mdtraj.iterload(str(t), top=topology or first.topology, chunk=chunk_frames * stride):
                k = traj.n_frames
                f = fr.read(row, row + k)[::stride]
                x = traj.xyz[::stride] * np.float32(U.NM_TO_ANGSTROM)
                row += k
                yield cgmap.map_coords(x), cgmap.map_forces(f) * np.float32(ff)
        for fr in freaders:
            fr.close()

    return write_dataset_streaming(out, meta, offsets, chunks(), overwrite=overwrite, validate=validate,
                                   progress=progress, desc="import mdtraj")


# ----------------------------------------------------------------------------------------------
# mdCATH HDF5


def _temp_group(dom: Any, temperature: float | None, path: Path) -> tuple[Any, float]:
    temps = {}
    for key in dom.keys():
        k = key[4:-1] if key.startswith("sims") and key.endswith("K") else key
        try:
            temps[float(k)] = dom[key]
        except ValueError:
            continue
    if not temps:
        raise DatasetError("no temperature groups (e.g. '320') in the domain group", where=str(path),
                           hint="is this an mdCATH file?")
    if temperature is None:
        if len(temps) > 1:
            raise InputError(f"the file has temperatures {sorted(temps)} K; a dataset has one", where=str(path),
                             hint="pass --temperature")
        temperature = next(iter(temps))
    if float(temperature) not in temps:
        raise InputError(f"no {temperature:g} K group; the file has {sorted(temps)} K", where=str(path))
    return temps[float(temperature)], float(temperature)


def import_mdcath(h5file: str | os.PathLike, out: str | os.PathLike, *, temperature: float | None = None,
                  replicas: Sequence[str | int] | None = None, domain: str | None = None,
                  dt_ps: float = MDCATH_DT_PS, length_units: str = "angstrom", force_units: str = "kcal/mol/A",
                  map_file: str | None = None, termini: bool = False,
                  constraints: ConstraintSpec | np.ndarray = "h-bonds",
                  bead_mass: Literal["residue", "ca"] = "residue", chunk_frames: int = 1000,
                  overwrite: bool = False, validate: bool = True, progress: bool = True):
    """Import one domain at one temperature of an mdCATH HDF5 file (each replica = one trajectory)."""
    import h5py
    import mdtraj

    path = regular_input(h5file, "mdCATH file")
    lf, ff = U.length_factor(length_units), U.force_factor(force_units)
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"unreadable HDF5 file ({str(exc).splitlines()[0]})", where=str(path),
                           hint="truncated download? fetch it again") from None
    with h5:
        domains = [k for k in h5.keys() if isinstance(h5[k], h5py.Group)]
        if domain is None:
            if len(domains) != 1:
                raise InputError(f"the file has domains {domains}", where=str(path), hint="pass --domain")
            domain = domains[0]
        if domain not in h5:
            raise InputError(f"no domain {domain!r}; the file has {domains}", where=str(path))
        dom = h5[domain]
        if "pdbProteinAtoms" not in dom:
            raise DatasetError(f"/{domain}/pdbProteinAtoms (the topology) is missing", where=str(path))
        pdb = dom["pdbProteinAtoms"][()]
        pdb = pdb if isinstance(pdb, bytes) else (pdb.tobytes() if hasattr(pdb, "tobytes") else str(pdb).encode())
        with tempfile.TemporaryDirectory() as td:
            (Path(td) / "top.pdb").write_bytes(pdb)
            top = mdtraj.load_topology(str(Path(td) / "top.pdb"))
        tgroup, temperature = _temp_group(dom, temperature, path)
        reps = [str(r) for r in replicas] if replicas else sorted(tgroup.keys(), key=lambda s: (len(s), s))
        dsets = []
        for r in reps:
            if r not in tgroup:
                raise InputError(f"no replica {r!r} at {temperature:g} K; have {sorted(tgroup.keys())}",
                                 where=str(path))
            g = tgroup[r]
            for name in ("coords", "forces"):
                if name not in g:
                    raise DatasetError(f"/{domain}/{tgroup.name.split('/')[-1]}/{r}/{name} is missing", where=str(path))
            c, f = g["coords"], g["forces"]
            if c.shape != f.shape or len(c.shape) != 3 or c.shape[1:] != (top.n_atoms, 3):
                raise DatasetError(f"{g.name}: coordinates/forces shape mismatch: coords {c.shape}, forces {f.shape}, "
                                   f"topology {top.n_atoms} atoms", where=str(path))
            dsets.append((c, f))
        cgmap = _make_mapping(top, map_file, termini, constraints, bead_mass)
        lengths = [c.shape[0] for c, _ in dsets]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        config = dict(h5file=str(path), domain=domain, temperature=temperature, replicas=reps, dt_ps=dt_ps,
                      length_units=length_units, force_units=force_units, map_file=map_file, termini=termini,
                      constraints=constraints if isinstance(constraints, str) else "explicit", bead_mass=bead_mass)
        meta = _meta(Path(out).name, int(sum(lengths)), cgmap.n_beads, temperature, dt_ps, cgmap.beads, cgmap.bonds,
                     cgmap.info, config, [_source(path)], "mdcath")

        def chunks() -> Iterator[tuple[np.ndarray, np.ndarray]]:
            for c, f in dsets:
                for s in range(0, c.shape[0], chunk_frames):
                    x = np.asarray(c[s:s + chunk_frames], np.float64) * lf
                    fx = np.asarray(f[s:s + chunk_frames], np.float64) * ff
                    yield cgmap.map_coords(x), cgmap.map_forces(fx)

        return write_dataset_streaming(out, meta, offsets, chunks(), overwrite=overwrite, validate=validate,
                                       progress=progress, desc="import mdcath")
