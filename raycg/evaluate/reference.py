"""The reference side of scoring, computed once per study: projection, histograms, FES, basins,
native structure and RMSD statistics (:func:`prepare_reference` -> :class:`ReferenceSummary`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raycg import units as U
from raycg.cv.rmsd import mirror, rmsd_to
from raycg.cv.tica import ReferenceTICA
from raycg.cv.transitions import count_two_state_transitions_per_trajectory
from raycg.errors import ConfigError, DatasetError, InputError
from raycg.evaluate import metrics as M
from raycg.evaluate.config import EvalConfig
from raycg.evaluate.projection import project
from raycg.utils.io import atomic_path

if TYPE_CHECKING:
    from raycg.data.format import CGDataset

#: Version of ``ReferenceSummary.save`` files (2: folding transitions per reference trajectory).
SUMMARY_VERSION = 2
PACKAGED_NATIVE = "cln025_allatom.pdb"

# ----------------------------------------------------------------------------------------------
# RMSD helpers


def stride_for(n: int, max_frames: int) -> int:
    return max(1, math.ceil(n / max_frames))


def ca_bead_indices(reference) -> np.ndarray:
    """Beads named CA in the reference (all beads when none is named CA: a Cα-only map)."""
    names = list(reference.meta.beads.names)
    ca = [i for i, n in enumerate(names) if n.upper() == "CA"]
    return np.asarray(ca if ca else range(len(names)), dtype=np.int64)


def _native_from_pdb(path: Path, residue_names: list[str], required: bool) -> np.ndarray | None:
    import mdtraj

    if not path.is_file():
        if required:
            raise ConfigError(f"native structure not found: {path}", hint="fix evaluate.native_pdb")
        return None
    try:
        t = mdtraj.load(str(path))
    except Exception as exc:  # mdtraj raises many types
        raise ConfigError(f"{path}: cannot read native structure ({str(exc).splitlines()[0]})") from None
    ca = t.topology.select("name CA")
    names = [t.topology.atom(int(i)).residue.name for i in ca]
    if len(ca) != len(residue_names) or [n.upper() for n in names] != [r.upper() for r in residue_names]:
        if required:
            raise ConfigError(f"{path}: its {len(ca)} Cα atoms ({'-'.join(names[:12])}) do not match the reference's "
                              f"{len(residue_names)} Cα beads ({'-'.join(residue_names[:12])})",
                              hint="give the native structure of the reference system")
        return None
    return np.asarray(t.xyz[0, ca], np.float64) * U.NM_TO_ANGSTROM


# ----------------------------------------------------------------------------------------------
# reference summary


@dataclass
class ReferenceSummary:
    """Everything about the reference that scoring needs (computed once by :func:`prepare_reference`)."""

    dataset_hash: str
    n_beads: int
    n_frames: int
    temperature_K: float
    kT: float
    dt_frame_ps: float
    n_components: int
    y: np.ndarray                      # [F, k] reference projection
    weights: np.ndarray | None         # [F] or None
    traj_offsets: np.ndarray
    edges: list[np.ndarray]            # per TIC, bins + 1 edges
    hist2d: np.ndarray                 # [bins, bins] (weighted) counts, TIC 1 x TIC 2
    outside2d: float
    hist1d: list[np.ndarray]
    fes2d: np.ndarray
    basin_edges: list[np.ndarray]
    basin_labels: np.ndarray           # [basin_bins, basin_bins], -1 = none; 0 = deepest well
    basin_min: np.ndarray
    core_grid: np.ndarray
    basin_population: np.ndarray
    transitions_per_trajectory: np.ndarray
    max_basin_fraction: np.ndarray
    ca_index: np.ndarray
    native: np.ndarray                 # [n_ca, 3] Å
    native_source: str
    folded_fraction: float
    mirror_fraction: float
    mirror_folded_fraction: float
    folding_transitions_per_trajectory: np.ndarray   # [T] folding + unfolding events (RMSD hysteresis)
    folding_time_ns: float                           # simulated time those events were counted over
    config: dict[str, Any] = field(default_factory=dict)
    tica_fingerprint: str = ""

    @property
    def total_weight(self) -> float:
        return float(self.n_frames if self.weights is None else self.weights.sum())

    def check_matches(self, reference: CGDataset, tica: ReferenceTICA, config: EvalConfig) -> None:
        """Raise InputError unless this summary was prepared for this dataset, TICA and config."""
        if self.dataset_hash != reference.content_hash:
            raise InputError("the prepared reference summary belongs to another dataset",
                             hint="prepare it again with prepare_reference(dataset, tica, config)")
        if self.tica_fingerprint and self.tica_fingerprint != tica_fingerprint(tica):
            raise InputError("the prepared reference summary was made with another TICA",
                             hint="prepare it again with prepare_reference(dataset, tica, config)")
        want = _reference_config(config)
        have = {k: self.config.get(k) for k in want}
        diff = [k for k in want if have[k] != want[k]]
        if diff:
            raise InputError(f"the prepared reference summary used other evaluation settings ({', '.join(diff)})",
                             hint="prepare it again with this config")

    # --- persistence ---------------------------------------------------------------------------
    _SCALARS = ("dataset_hash", "n_beads", "n_frames", "temperature_K", "kT", "dt_frame_ps", "n_components",
                "outside2d", "native_source", "folded_fraction", "mirror_fraction", "mirror_folded_fraction",
                "folding_time_ns", "config", "tica_fingerprint")
    _ARRAYS = ("y", "traj_offsets", "hist2d", "fes2d", "basin_labels", "basin_min", "core_grid",
               "basin_population", "transitions_per_trajectory", "max_basin_fraction", "ca_index", "native",
               "folding_transitions_per_trajectory")

    def save(self, path: str | os.PathLike) -> Path:
        """Write a versioned ``.npz`` (no pickle; atomic) that :meth:`load` reads back."""
        import io
        import json

        path = Path(path)
        header = {"format": "raycg-reference-summary", "version": SUMMARY_VERSION,
                  **{k: getattr(self, k) for k in self._SCALARS}}
        arrays = {k: np.asarray(getattr(self, k)) for k in self._ARRAYS}
        arrays.update(edges=np.stack(self.edges), hist1d=np.stack(self.hist1d),
                      basin_edges=np.stack(self.basin_edges))
        if self.weights is not None:
            arrays["weights"] = np.asarray(self.weights, np.float64)
        buf = io.BytesIO()
        np.savez(buf, header_json=np.array(json.dumps(header, default=float)), **arrays)
        with atomic_path(path) as tmp:
            tmp.write_bytes(buf.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ReferenceSummary:
        import json

        path = Path(path)
        if not path.is_file():
            raise InputError(f"reference summary not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as z:
                a = {k: np.asarray(z[k]) for k in z.files}
            header = json.loads(str(a.pop("header_json")))
        except (ValueError, OSError, EOFError, KeyError) as exc:
            raise InputError(f"{path}: not a readable reference summary ({exc})",
                             hint="prepare it again with prepare_reference") from None
        if header.get("format") != "raycg-reference-summary":
            raise InputError(f"{path}: not a raycg reference summary")
        if header.get("version") != SUMMARY_VERSION:
            raise InputError(f"{path}: reference summary version {header.get('version')}, this raycg reads "
                             f"version {SUMMARY_VERSION}", hint="prepare it again with prepare_reference")
        kw = {k: header[k] for k in cls._SCALARS}
        kw.update({k: a[k] for k in cls._ARRAYS})
        kw.update(edges=list(a["edges"]), hist1d=list(a["hist1d"]), basin_edges=list(a["basin_edges"]),
                  weights=a.get("weights"))
        return cls(**kw)


#: EvalConfig fields that shape the reference side (a prepared summary must agree on them).
REFERENCE_CONFIG_FIELDS = ("n_components", "bins", "padding", "temperature_K", "folded_rmsd_A", "folding_core_A",
                           "unfolded_core_A", "native_pdb",
                           "rmsd_max_frames", "basin_bins", "basin_merge_kT", "basin_core_kT",
                           "basin_min_population")


def _reference_config(config: EvalConfig) -> dict[str, Any]:
    d = config.model_dump(mode="json")
    return {k: d[k] for k in REFERENCE_CONFIG_FIELDS}


def tica_fingerprint(tica: ReferenceTICA) -> str:
    """Short hash of a TICA's projection (mean, coefficients, lag, features)."""
    import hashlib

    h = hashlib.sha256()
    h.update(f"{tica.lag}|{tica.feature_kind}|{tica.n_beads}".encode())
    for arr in (tica.mean, tica.coefficients):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


def basin_stats(basin_seq: np.ndarray, core_seq: np.ndarray, offsets: np.ndarray, n_basins: int,
                 weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per trajectory: transitions and the fraction of frames in its most-visited basin; and the
    (weighted) population of every basin over all frames (frames outside any basin count in the total)."""
    trans = np.zeros(len(offsets) - 1, np.int64)
    maxfrac = np.full(len(offsets) - 1, np.nan)
    for t in range(len(offsets) - 1):
        a, b = int(offsets[t]), int(offsets[t + 1])
        trans[t] = M.count_transitions(core_seq[a:b])
        lab = basin_seq[a:b]
        lab = lab[lab >= 0]
        if len(lab):
            maxfrac[t] = np.bincount(lab, minlength=max(n_basins, 1)).max() / (b - a)
    ok = basin_seq >= 0
    w = None if weights is None else weights[ok]
    total = len(basin_seq) if weights is None else float(weights.sum())
    pop = np.bincount(basin_seq[ok], weights=w, minlength=n_basins)[:n_basins].astype(np.float64)
    return trans, maxfrac, pop / total if total > 0 else pop


def folding_events(rmsd: np.ndarray, offsets: np.ndarray, config: EvalConfig) -> np.ndarray:
    """Folding + unfolding events (RMSD hysteresis between ``folding_core_A`` and ``unfolded_core_A``)
    per trajectory of an RMSD series cut at ``offsets``."""
    n_fold, n_unfold = count_two_state_transitions_per_trajectory(rmsd, offsets, config.folding_core_A,
                                                                   config.unfolded_core_A)
    return n_fold + n_unfold


def prepare_reference(reference: CGDataset, tica: ReferenceTICA, config: EvalConfig | None = None) -> ReferenceSummary:
    """Project the reference on its TICA and compute its histograms, FES, basins and native statistics."""
    config = config or EvalConfig()
    where = str(reference.path) if getattr(reference, "path", None) else reference.meta.name
    tica.check_compatible(reference, where=where)
    k = config.n_components
    if k > tica.dim:
        raise ConfigError(f"evaluate.n_components = {k} but the reference TICA has only {tica.dim} components",
                          hint="lower n_components or refit the TICA with a larger dim")
    if reference.n_frames == 0:
        raise DatasetError("reference dataset has no frames", where=where)
    temperature = float(config.temperature_K or reference.temperature)
    kT = U.kbt(temperature)
    y = project(tica, reference.coords, k, where=where)
    w = None if reference.weights is None else np.asarray(reference.weights, np.float64)
    edges = M.grid_edges(y, config.bins, config.padding)
    h2, out2 = M.histogram2d(y, edges[0], edges[1], w)
    h1 = [M.histogram1d(y[:, c], edges[c], w)[0] for c in range(k)]
    fes2 = M.free_energy(h2, kT)
    # basins on a coarse grid over the same range
    bedges = [np.linspace(edges[c][0], edges[c][-1], config.basin_bins + 1) for c in (0, 1)]
    hb, _ = M.histogram2d(y, bedges[0], bedges[1], w)
    fb = M.free_energy(hb, kT)
    labels, bmin = M.find_basins(fb, hb / max(hb.sum(), 1e-300), kT, config.basin_merge_kT,
                                 config.basin_min_population)
    cores = M.core_labels(labels, fb, bmin, kT, config.basin_core_kT)
    bseq = M.lookup_grid(y, bedges[0], bedges[1], labels)
    cseq = M.lookup_grid(y, bedges[0], bedges[1], cores)
    offsets = np.asarray(reference.traj_offsets, np.int64)
    trans, maxfrac, bpop = basin_stats(bseq, cseq, offsets, len(bmin), w)
    # native structure and RMSD statistics
    ca = ca_bead_indices(reference)
    res_names = [reference.meta.beads.residue_names[i] for i in ca]
    native, source = None, ""
    if config.native_pdb:
        native = _native_from_pdb(Path(config.native_pdb), res_names, required=True)
        source = str(config.native_pdb)
    else:
        packaged = Path(str(resources.files("raycg").joinpath("resources", PACKAGED_NATIVE)))
        native = _native_from_pdb(packaged, res_names, required=False)
        source = f"packaged {PACKAGED_NATIVE}" if native is not None else ""
    if native is None:
        # the reference frame closest (in TIC space) to the centre of the deepest free-energy bin
        i0, j0 = np.unravel_index(np.nanargmin(np.where(np.isfinite(fes2), fes2, np.inf)), fes2.shape)
        centre = np.array([0.5 * (edges[0][i0] + edges[0][i0 + 1]), 0.5 * (edges[1][j0] + edges[1][j0 + 1])])
        f0 = int(np.argmin(np.sum((y[:, :2] - centre) ** 2, axis=1)))
        native = np.asarray(reference.coords[f0][ca], np.float64)
        source = f"reference frame {f0} (nearest the deepest FES bin)"
    stride = stride_for(reference.n_frames, config.rmsd_max_frames)
    r_nat = rmsd_to(reference.coords, native, atoms=ca, stride=stride)
    r_mir = rmsd_to(reference.coords, mirror(native), atoms=ca, stride=stride)
    ws = None if w is None else w[::stride]
    folded = M.folded_fraction(r_nat, config.folded_rmsd_A, ws)
    mirrored = M.mirror_fraction(r_nat, r_mir, ws)
    mirror_folded = M.folded_fraction(r_mir, config.folded_rmsd_A, ws)
    # trajectory t owns the strided frames whose frame index lies in [offsets[t], offsets[t+1])
    sub_off = np.searchsorted(np.arange(0, reference.n_frames, stride), offsets, side="left")
    fold_ev = folding_events(r_nat, sub_off, config)
    return ReferenceSummary(
        dataset_hash=reference.content_hash, n_beads=reference.n_beads, n_frames=reference.n_frames,
        temperature_K=temperature, kT=kT, dt_frame_ps=float(reference.meta.dt_frame_ps), n_components=k,
        y=y, weights=w, traj_offsets=offsets, edges=edges, hist2d=h2, outside2d=out2, hist1d=h1, fes2d=fes2,
        basin_edges=bedges, basin_labels=labels, basin_min=bmin, core_grid=cores, basin_population=bpop,
        transitions_per_trajectory=trans, max_basin_fraction=maxfrac, ca_index=ca, native=native,
        native_source=source, folded_fraction=folded, mirror_fraction=mirrored, mirror_folded_fraction=mirror_folded,
        folding_transitions_per_trajectory=fold_ev,
        folding_time_ns=float(reference.n_frames * reference.meta.dt_frame_ps / U.NS_TO_PS),
        config=config.model_dump(mode="json"), tica_fingerprint=tica_fingerprint(tica),
    )
