"""Structural and physical validation of a CG dataset (``raycg data validate``).

Every failure raises :class:`raycg.errors.DatasetError` with one line (what, where, what to do);
nothing on disk is modified. Checks: arrays and shapes (``coords == forces == [F, B, 3]``), trajectory
offsets, bead metadata, finite values, the content hash, length units (median bonded distance, Å) and
force units (the configurational virial ``<Σ_b (R_b − R̄)·F_b> = −3(B−1)·k_BT``). The checks and
their derivation: docs/data.md ("Validation"). :func:`require_valid` is the gate every command passes
its dataset through (``cheap`` or ``full``).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from raycg import units as U
from raycg.data.format import CGDataset, compute_content_hash, load
from raycg.data.npy_reader import NpyArray
from raycg.errors import DatasetError, InputError
from raycg.utils.io import not_regular_file

RHO_OK = (0.6, 1.6)
Z_REJECT = 5.0
CA_BOND_A = 3.8
#: Stated-unit slips and the virial ratio each one produces.
KNOWN_SLIPS = {
    "kJ/mol/Å stored as kcal/mol/Å (use --force-units kJ/mol/A)": U.KJ_PER_KCAL,
    "kJ/mol/nm stored as kcal/mol/Å (use --force-units kJ/mol/nm)": 1.0 / U.KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A,
    "kcal/mol/nm stored as kcal/mol/Å (use --force-units kcal/mol/nm)": U.NM_TO_ANGSTROM,
    "kcal/mol/Å converted from kJ twice (use --force-units kcal/mol/A)": 1.0 / U.KJ_PER_KCAL,
    "energy gradients stored instead of forces (negate them)": -1.0,
}


@dataclass
class ValidationReport:
    """What was checked (name, one-line result) and the numbers behind the physical checks."""

    path: str
    checks: list[tuple[str, str]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def ok(self, name: str, detail: str) -> None:
        self.checks.append((name, detail))


def _chunks(n: int, size: int):
    for s in range(0, n, size):
        yield s, min(n, s + size)


def _fail(path: Any, msg: str, hint: str | None = None) -> DatasetError:
    return DatasetError(msg, where=str(path), hint=hint)


def traj_ids_to_offsets(ids: np.ndarray, *, where: str = "traj ids") -> np.ndarray:
    """Offsets [T+1] from per-frame trajectory ids; DatasetError if a trajectory's frames are split."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size == 0:
        return np.zeros(1, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    labels = ids[starts]
    uniq, first = np.unique(labels, return_index=True)
    if len(uniq) != len(labels):
        seen = np.zeros(len(labels), bool)
        seen[first] = True
        k = int(np.flatnonzero(~seen)[0])
        raise DatasetError(
            f"trajectory ids not contiguous: trajectory {labels[k]!r} reappears at frame {int(starts[k])} "
            f"after other trajectories", where=where,
            hint="store each trajectory's frames as one contiguous block "
                 "(sort frames by trajectory, keeping time order)")
    return np.concatenate([starts, [ids.size]]).astype(np.int64)


def check_offsets(offsets: np.ndarray, n_frames: int, where: str) -> None:
    """Offsets must be 1-D, start at 0, increase strictly and end at ``n_frames``."""
    o = np.asarray(offsets)
    if not np.issubdtype(o.dtype, np.integer):
        raise _fail(where, f"trajectory offsets must be integers, got dtype {o.dtype}", "re-import the dataset")
    if o.ndim != 1 or o.size < 2:
        raise _fail(where, "trajectory offsets must be a 1-D array of length n_trajectories+1 ≥ 2, "
                           f"got shape {o.shape}", "re-import the dataset")
    if int(o[0]) != 0:
        raise _fail(where, f"trajectory offsets must start at 0, got {int(o[0])}", "re-import the dataset")
    d = np.diff(o)
    if np.any(d <= 0):
        t = int(np.flatnonzero(d <= 0)[0])
        raise _fail(where, f"trajectory ids/offsets not contiguous: offset {t + 1} ({int(o[t + 1])}) does not "
                           f"increase after offset {t} ({int(o[t])})",
                    "each trajectory must be one non-empty contiguous block of frames; re-import the dataset")
    if int(o[-1]) != n_frames:
        raise _fail(where, f"trajectory offsets end at {int(o[-1])} but the arrays have {n_frames} frames",
                    "re-import the dataset")


def first_nonfinite(arr: np.ndarray, chunk: int = 65536) -> tuple[int, int] | None:
    """(frame, bead) of the first NaN/inf in a [F, B, 3] array, scanning in chunks; None if all finite."""
    for s, e in _chunks(arr.shape[0], chunk):
        block = np.asarray(arr[s:e])
        bad = ~np.isfinite(block)
        if bad.any():
            bad_fb = bad.reshape(bad.shape[0], bad.shape[1], -1).any(axis=2)
            f, b = np.argwhere(bad_fb)[0]
            return s + int(f), int(b)
    return None


def _sample_frames(n: int, max_frames: int) -> np.ndarray:
    if n <= max_frames:
        return np.arange(n)
    return np.linspace(0, n - 1, max_frames).astype(np.int64)


def median_bond_length(ds: CGDataset, max_frames: int = 20000) -> float:
    """Median bonded bead distance (in the dataset's length unit) over evenly spaced frames."""
    bonds = ds.bonds
    idx = _sample_frames(ds.n_frames, max_frames)
    parts = []
    for part in np.array_split(idx, max(1, len(idx) // 2048)):
        x = np.asarray(ds.coords[part], np.float64)
        parts.append(np.linalg.norm(x[:, bonds[:, 1]] - x[:, bonds[:, 0]], axis=-1).reshape(-1))
    return float(np.median(np.concatenate(parts)))


def virial_ratio(coords: np.ndarray, forces: np.ndarray, temperature_k: float, *,
                 weights: np.ndarray | None = None, max_frames: int = 500_000, n_batches: int = 50,
                 chunk: int = 65536) -> tuple[float, float, int]:
    """ρ = <Σ_b (R_b − R̄)·F_b> / (−3(B−1) k_BT) and its standard error (batch means); frames used."""
    n, b = coords.shape[0], coords.shape[1]
    idx = _sample_frames(n, max_frames)
    w_all = np.empty(len(idx))
    for s, e in _chunks(len(idx), chunk):
        sel = idx[s:e]
        if len(sel) and sel[-1] - sel[0] == len(sel) - 1:
            sl = slice(int(sel[0]), int(sel[-1]) + 1)
            x, f = np.asarray(coords[sl], np.float64), np.asarray(forces[sl], np.float64)
        else:
            x, f = np.asarray(coords[sel], np.float64), np.asarray(forces[sel], np.float64)
        x = x - x.mean(axis=1, keepdims=True)
        w_all[s:e] = np.einsum("fbk,fbk->f", x, f)
    wt = np.ones(len(idx)) if weights is None else np.asarray(weights, np.float64)[idx]
    expected = -3.0 * (b - 1) * U.kbt(temperature_k)
    nb = max(2, min(n_batches, len(idx) // 10))
    if len(idx) < 20:
        return float("nan"), float("inf"), len(idx)
    means = []
    for part_w, part_v in zip(np.array_split(wt, nb), np.array_split(w_all, nb)):
        if part_w.sum() > 0:
            means.append(float(np.sum(part_w * part_v) / part_w.sum()))
    mean = float(np.sum(wt * w_all) / wt.sum())
    se = float(np.std(means, ddof=1) / np.sqrt(len(means))) if len(means) > 1 else float("inf")
    return mean / expected, abs(se / expected), len(idx)


def _closest_slip(rho: float) -> str:
    best, dist = "", np.inf
    for name, r in KNOWN_SLIPS.items():
        d = abs(np.log(abs(rho) / abs(r))) if rho * r > 0 else np.inf
        if d < dist:
            best, dist = name, d
    return (f"looks like {best}" if dist < np.log(1.2)
            else "forces and coordinates are not consistent at this temperature")


def validate_dataset(path_or_ds: str | os.PathLike | CGDataset, *, check_hash: bool = True,
                     physics: bool = True, max_frames: int = 500_000) -> ValidationReport:
    """Run every check on a dataset directory (or loaded dataset); raise DatasetError on the first failure."""
    ds = path_or_ds if isinstance(path_or_ds, CGDataset) else load(path_or_ds)
    with _scanning(ds) as scan:
        return _validate(scan, check_hash=check_hash, physics=physics, max_frames=max_frames)


@dataclass(frozen=True)
class GateLevel:
    """What :func:`require_valid` checks at one level."""

    check_hash: bool
    length_frames: int       # frames sampled for the bonded-distance (length unit) check
    virial_frames: int       # frames sampled for the virial (force unit) check


#: ``cheap``: structure, empty data, topology, NaN/inf (every frame), length units and force units on
#: bounded samples. ``full``: also the content hash and the force-unit check on up to 500,000 frames.
GATE_LEVELS = {"cheap": GateLevel(check_hash=False, length_frames=2000, virial_frames=20_000),
               "full": GateLevel(check_hash=True, length_frames=20_000, virial_frames=500_000)}


def require_valid(dataset: str | os.PathLike | CGDataset, level: str = "cheap", *,
                  command: str | None = None) -> CGDataset:
    """The gate every command passes its dataset through; returns the (memory-mapped) dataset.

    Raises :class:`DatasetError` with one line (``<command>: dataset rejected: <file>: <what>;
    <what to do>``) when a check of ``level`` (see :data:`GATE_LEVELS`) fails. Never writes anything.
    """
    if level not in GATE_LEVELS:
        raise ValueError(f"level must be one of {sorted(GATE_LEVELS)}, got {level!r}")
    gate = GATE_LEVELS[level]
    try:
        ds = dataset if isinstance(dataset, CGDataset) else load(dataset)
        with _scanning(ds) as scan:
            _validate(scan, check_hash=gate.check_hash, physics=True, max_frames=gate.virial_frames,
                      length_frames=gate.length_frames)
    except DatasetError as exc:
        raise DatasetError(f"{command}: dataset rejected: {exc}" if command else str(exc)) from None
    return ds


@contextmanager
def _scanning(ds: CGDataset):
    """``ds`` with its on-disk coords/forces read through seeking readers instead of memory maps, so
    a scan over every frame keeps resident memory at one chunk; the readers are closed afterwards."""
    readers = {}
    try:
        if ds.path is not None:
            for name in ("coords", "forces"):
                arr = getattr(ds, name)
                if isinstance(arr, np.memmap) and arr.ndim == 3:
                    readers[name] = NpyArray(Path(ds.path) / f"{name}.npy")
        yield replace(ds, **readers) if readers else ds
    finally:
        for r in readers.values():
            r.close()


def _validate(ds: CGDataset, *, check_hash: bool, physics: bool, max_frames: int,
              length_frames: int = 20000) -> ValidationReport:
    root = Path(ds.path) if ds.path is not None else Path("<in-memory dataset>")
    rep = ValidationReport(path=str(root))
    _check_structure(ds, root, rep)
    _check_finite(ds, root, rep)
    if check_hash and ds.meta.content_hash:
        h = compute_content_hash(ds)
        if h != ds.meta.content_hash:
            raise _fail(root, f"content hash mismatch: meta.json says {ds.meta.content_hash[:19]}..., the arrays "
                              f"give {h[:19]}... (arrays changed after writing)",
                        "re-import the dataset from its sources")
        rep.ok("hash", ds.meta.content_hash)
    if physics:
        _check_length_units(ds, root, rep, length_frames)
        _check_force_units(ds, root, rep, max_frames)
    return rep


def _check_shapes(ds: CGDataset, root: Path, rep: ValidationReport) -> None:
    meta = ds.meta

    # 1. shapes and dtypes
    c = ds.coords
    if c.ndim != 3 or c.shape[2] != 3:
        raise _fail(root / "coords.npy", f"coordinates must have shape [frames, beads, 3], got {tuple(c.shape)}",
                    "re-import the dataset")
    if not np.issubdtype(c.dtype, np.floating):
        raise _fail(root / "coords.npy", f"coordinates must be floating point, got {c.dtype}")
    if ds.forces is not None:
        if tuple(ds.forces.shape) != tuple(c.shape):
            raise _fail(root / "forces.npy", f"coordinates/forces shape mismatch: coords {tuple(c.shape)} vs "
                                              f"forces {tuple(ds.forces.shape)}",
                        "coords and forces must both be [frames, beads, 3] for the same frames; re-import")
        if not np.issubdtype(ds.forces.dtype, np.floating):
            raise _fail(root / "forces.npy", f"forces must be floating point, got {ds.forces.dtype}")
    if (meta.n_frames, meta.n_beads) != (c.shape[0], c.shape[1]):
        raise _fail(root / "meta.json", f"n_frames/n_beads ({meta.n_frames}, {meta.n_beads}) disagree with "
                                         f"coords.npy {tuple(c.shape)}", "re-import the dataset")
    if ds.weights is not None and tuple(ds.weights.shape) != (c.shape[0],):
        raise _fail(root / "weights.npy", f"weights must have shape [{c.shape[0]}], got {tuple(ds.weights.shape)}")
    if c.shape[0] == 0 or c.shape[1] == 0:
        raise _fail(root / "coords.npy", "the dataset is empty: no frames" if c.shape[0] == 0 else
                    "the dataset is empty: no beads", "import or generate data into it first")
    rep.ok("shapes", f"coords {tuple(c.shape)}" + ("" if ds.forces is None else ", forces same") + f", {c.dtype}")


def _check_structure(ds: CGDataset, root: Path, rep: ValidationReport) -> None:
    """Shapes, empty data, trajectory offsets, bead metadata, topology bead count, weights."""
    meta = ds.meta
    _check_shapes(ds, root, rep)
    # 2. trajectories
    check_offsets(ds.traj_offsets, ds.n_frames, str(root / "traj_offsets.npy"))
    if meta.n_trajectories != ds.n_trajectories:
        raise _fail(root / "meta.json", f"n_trajectories {meta.n_trajectories} but traj_offsets.npy has "
                                         f"{ds.n_trajectories}", "re-import the dataset")
    rep.ok("trajectories", f"{ds.n_trajectories} contiguous, lengths {int(ds.trajectory_lengths().min())}-"
                           f"{int(ds.trajectory_lengths().max())} frames")

    # 3. bead metadata, topology, weights
    _check_beads(ds, root)
    rep.ok("beads", f"{ds.n_beads} beads, {len(ds.bonds)} bonds, types {sorted(set(meta.beads.types))}")
    topo = root / "topology.pdb"
    if ds.path is not None:
        problem = not_regular_file(topo)
        if problem is not None:
            raise _fail(topo, "topology.pdb is missing" if problem == "not found" else f"topology.pdb {problem}",
                        "re-import or re-save the dataset")
        try:
            import mdtraj

            n_top = mdtraj.load_topology(str(topo)).n_atoms
        except Exception as exc:  # mdtraj raises many types on bad PDB files
            raise _fail(topo, f"unreadable topology ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                        "re-import or re-save the dataset") from None
        if n_top != ds.n_beads:
            raise _fail(topo, f"topology has {n_top} beads but the arrays have {ds.n_beads}",
                        "the topology belongs to another dataset; re-import")
        rep.ok("topology", f"{n_top} beads")
    if ds.weights is not None:
        w = np.asarray(ds.weights)
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            bad = int(np.flatnonzero(~np.isfinite(w) | (w < 0))[0]) if (~np.isfinite(w) | (w < 0)).any() else 0
            raise _fail(root / "weights.npy", f"weights must be finite, non-negative and not all zero (frame {bad})")
        rep.ok("weights", f"sum {float(w.sum()):.6g}")


def _check_finite(ds: CGDataset, root: Path, rep: ValidationReport) -> None:
    """No NaN/inf in coords or forces (every frame is read); the first bad frame and bead are named."""
    meta = ds.meta
    for name, arr in (("coords.npy", ds.coords), ("forces.npy", ds.forces)):
        if arr is None:
            continue
        hit = first_nonfinite(arr)
        if hit is not None:
            f, b = hit
            t = int(np.searchsorted(ds.traj_offsets, f, side="right") - 1)
            raise _fail(root / name, f"NaN or inf at frame {f} (trajectory {t}), bead {b} "
                                     f"({meta.beads.residue_names[b]}{meta.beads.residue_ids[b]})",
                        "remove the broken frames/trajectory from the source and re-import")
    rep.ok("finite", "no NaN/inf in coords" + ("" if ds.forces is None else " or forces"))


def _check_length_units(ds: CGDataset, root: Path, rep: ValidationReport, max_frames: int) -> None:
    """Median bonded distance: ≈ 3.8 Å for Cα beads, never below 1 Å (nm stored as Å)."""
    meta = ds.meta
    if len(ds.bonds) and ds.n_frames:
        med = median_bond_length(ds, max_frames=max_frames)
        rep.stats["median_bond_A"] = med
        is_ca = all(n == "CA" for n in meta.beads.names)
        if is_ca and not (CA_BOND_A - 0.8 <= med <= CA_BOND_A + 0.8):
            unit = (" (coordinates look like nm: multiply by 10, or re-import with --length-units nm)"
                    if 0.25 < med < 0.6 else "")
            raise _fail(root / "coords.npy", f"median bonded Cα–Cα distance is {med:.3g} Å, far from 3.8 Å{unit}",
                        "store coordinates in Å")
        if med < 1.0:
            raise _fail(root / "coords.npy", f"median bonded bead distance is {med:.3g} Å (< 1 Å): coordinates look "
                                             "like nm", "store coordinates in Å (re-import with --length-units nm)")
        rep.ok("length units", f"median bond {med:.3f} Å")


def _check_force_units(ds: CGDataset, root: Path, rep: ValidationReport, max_frames: int) -> None:
    """Virial ratio ρ (module docstring) over up to ``max_frames`` evenly spaced frames."""
    meta = ds.meta
    if ds.forces is not None and ds.n_frames and ds.n_beads > 1:
        rho, se, used = virial_ratio(ds.coords, ds.forces, meta.temperature_K, weights=ds.weights,
                                     max_frames=max_frames)
        rep.stats.update(virial_ratio=rho, virial_ratio_se=se, virial_frames=used)
        if not np.isfinite(rho) or se > 0.25 * max(1.0, abs(rho)):
            rep.ok("force units",
                   f"inconclusive (virial ratio {rho:.3g} ± {se:.2g} from {used} frames; need more frames)")
        else:
            outside = rho < RHO_OK[0] or rho > RHO_OK[1]
            dist = max(RHO_OK[0] - rho, rho - RHO_OK[1], 0.0)
            if outside and dist > Z_REJECT * se:
                raise _fail(root / "forces.npy",
                            f"stated force units (kcal/mol/Å) contradict the magnitudes: virial "
                            f"<Σ(R−R̄)·F> is {rho:.3g} ± {se:.2g} times the −3(B−1)k_BT required at "
                            f"{meta.temperature_K:g} K; {_closest_slip(rho)}",
                            "re-import with the right --force-units (and check --temperature)")
            rep.ok("force units", f"virial ratio {rho:.3f} ± {se:.3f} (1 expected) from {used} frames")


def _check_beads(ds: CGDataset, root: Path) -> None:
    from raycg.data.mapping import canonical_residue

    b = ds.meta.beads
    where = root / "meta.json"
    for fname in ("names", "types", "masses", "residue_names", "residue_ids"):
        if len(getattr(b, fname)) != ds.n_beads:
            raise _fail(where, f"beads.{fname} has {len(getattr(b, fname))} entries but the arrays have "
                               f"{ds.n_beads} beads", "the metadata belongs to another dataset; re-import")
    if b.chain_ids and len(b.chain_ids) != ds.n_beads:
        raise _fail(where, f"beads.chain_ids has {len(b.chain_ids)} entries for {ds.n_beads} beads")
    m = np.asarray(b.masses, float)
    if np.any(~np.isfinite(m)) or np.any(m <= 0):
        k = int(np.flatnonzero(~np.isfinite(m) | (m <= 0))[0])
        raise _fail(where, f"beads.masses[{k}] = {m[k]} amu; masses must be positive")
    if min(b.types) < 0:
        raise _fail(where, f"beads.types[{b.types.index(min(b.types))}] is negative")
    if b.type_names and max(b.types) >= len(b.type_names):
        raise _fail(where, f"beads.types has type {max(b.types)} but type_names lists only {len(b.type_names)} types")
    bonds = ds.bonds
    if len(bonds) and (bonds.min() < 0 or bonds.max() >= ds.n_beads or np.any(bonds[:, 0] == bonds[:, 1])):
        k = int(np.flatnonzero((bonds.min(1) < 0) | (bonds.max(1) >= ds.n_beads) | (bonds[:, 0] == bonds[:, 1]))[0])
        raise _fail(where, f"bonds[{k}] = {tuple(int(v) for v in bonds[k])} is not a pair of distinct beads in "
                           f"0..{ds.n_beads - 1}")
    if ds.meta.mapping.kind == "ca-slice":
        for i, r in enumerate(b.residue_names):
            try:
                canonical_residue(r)
            except InputError:
                raise _fail(where, f"unknown residue {r!r} in the mapping (beads.residue_names[{i}], bead {i})",
                            "a Cα map needs standard amino acids; "
                            "fix the residue name or import with a custom map") from None
