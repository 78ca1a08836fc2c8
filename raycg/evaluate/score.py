"""Scoring model trajectories against the reference: projection, FES, metrics, trapping.

``score(reference, tica, samples, config)`` returns a :class:`TrialScore`; ``TrialScore.save(dir)``
writes ``scores.json`` (metrics + counts + config + provenance) and ``fes.npz`` (grids, histograms,
free energies, basins and per-replica trapping arrays; key names documented in ``METRICS.md``).

The reference side (projection of every reference frame, its histograms, basins, native structure
and RMSD statistics) does not depend on the model: :func:`prepare_reference` computes it once and
``score(..., reference_summary=...)`` reuses it across trials.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from raycg import units as U
from raycg.cv.rmsd import RMSD_CHUNK, mirror, rmsd_to  # noqa: F401 - re-exported
from raycg.cv.tica import ReferenceTICA
from raycg.cv.transitions import count_two_state_transitions_per_trajectory
from raycg.errors import ConfigError, DatasetError, InputError
from raycg.evaluate import metrics as M
from raycg.evaluate.config import EvalConfig
from raycg.evaluate.projection import project
from raycg.evaluate.samples import ModelSamples
from raycg.utils.io import atomic_path, atomic_write_json

#: Direction of every metric ``score`` reports: "lower"/"higher" is better, None = compare with the
#: reference value or a count (see METRICS.md). Per-TIC metrics share the direction of their family.
METRIC_DIRECTIONS: dict[str, str | None] = {
    "kl_ref_model": "lower", "kl_model_ref": "lower", "js_divergence": "lower", "w1": "lower",
    "fes_mse": "lower", "fes_mse_aligned": "lower", "coverage": "higher", "coverage_weighted": "higher",
    "outside_grid_fraction": "lower", "folded_fraction_model": None, "folded_fraction_reference": None,
    "folded_fraction_diff": None, "folded_fraction_abs_error": "lower", "mirror_fraction_model": None,
    "mirror_fraction_reference": None, "mirror_folded_fraction_model": "lower",
    "mirror_folded_fraction_reference": None, "rmsd_mean_model_A": None, "n_basins": None,
    "transitions_per_replica_mean": None, "transitions_per_replica_median": None,
    "transitions_per_trajectory_mean_reference": None, "transition_rate_per_ns_model": None,
    "transition_rate_per_ns_reference": None, "transition_rate_ratio": None,
    "folding_transitions_per_replica_mean": "higher", "folding_transitions_per_trajectory_mean_reference": None,
    "folding_transition_rate_per_ns_model": None, "folding_transition_rate_per_ns_reference": None,
    "folding_transition_rate_ratio": None, "folding_transition_rate_log_ratio_abs": "lower",
    "deepest_well_population_model": None, "deepest_well_population_reference": None,
    "deepest_well_excess": None, "max_basin_population_model": None, "trapped_fraction_mean": None,
    "trapped_fraction_mean_reference": None, "n_frames_model": None, "n_replicas_used": None,
    "n_replicas_total": None, "n_blown_up": "lower", "blown_up_fraction": "lower",
}


def metric_direction(name: str) -> str | None:
    """Direction of a metric name (``kl_ref_model_tic1`` -> that of ``kl_ref_model``)."""
    if name in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[name]
    base = name.rsplit("_tic", 1)[0]
    return METRIC_DIRECTIONS.get(base, "lower" if base == "w1" else None)


SCORES_FORMAT = "raycg-trial-scores"
SCORES_VERSION = 1
#: Version of ``ReferenceSummary.save`` files (2: folding transitions per reference trajectory).
SUMMARY_VERSION = 2
#: Events added to both the model and the reference count in ``folding_transition_rate_log_ratio_abs``,
#: so that a model without any folding transition gets a large finite value instead of infinity.
FOLDING_PSEUDO_EVENTS = 0.5
PACKAGED_NATIVE = "cln025_allatom.pdb"


# ----------------------------------------------------------------------------------------------
# RMSD helpers


def _stride_for(n: int, max_frames: int) -> int:
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

    def check_matches(self, reference, tica: ReferenceTICA, config: EvalConfig) -> None:
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


def _basin_stats(basin_seq: np.ndarray, core_seq: np.ndarray, offsets: np.ndarray, n_basins: int,
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


def _folding_events(rmsd: np.ndarray, offsets: np.ndarray, config: EvalConfig) -> np.ndarray:
    """Folding + unfolding events (RMSD hysteresis between ``folding_core_A`` and ``unfolded_core_A``)
    per trajectory of an RMSD series cut at ``offsets``."""
    n_fold, n_unfold = count_two_state_transitions_per_trajectory(rmsd, offsets, config.folding_core_A,
                                                                   config.unfolded_core_A)
    return n_fold + n_unfold


def _folding_rate_ratio(n_model: float, t_model_ns: float, n_ref: float, t_ref_ns: float, pseudo: float = 0.0
                        ) -> float:
    """(n_model / t_model) / (n_ref / t_ref) with ``pseudo`` events added to both counts; NaN when undefined."""
    if not (np.isfinite(t_model_ns) and t_model_ns > 0 and t_ref_ns > 0) or n_ref + pseudo <= 0:
        return float("nan")
    return float(((n_model + pseudo) / t_model_ns) / ((n_ref + pseudo) / t_ref_ns))


def prepare_reference(reference, tica: ReferenceTICA, config: EvalConfig | None = None) -> ReferenceSummary:
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
    trans, maxfrac, bpop = _basin_stats(bseq, cseq, offsets, len(bmin), w)
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
    stride = _stride_for(reference.n_frames, config.rmsd_max_frames)
    r_nat = rmsd_to(reference.coords, native, atoms=ca, stride=stride)
    r_mir = rmsd_to(reference.coords, mirror(native), atoms=ca, stride=stride)
    ws = None if w is None else w[::stride]
    folded = M.folded_fraction(r_nat, config.folded_rmsd_A, ws)
    mirrored = M.mirror_fraction(r_nat, r_mir, ws)
    mirror_folded = M.folded_fraction(r_mir, config.folded_rmsd_A, ws)
    # trajectory t owns the strided frames whose frame index lies in [offsets[t], offsets[t+1])
    sub_off = np.searchsorted(np.arange(0, reference.n_frames, stride), offsets, side="left")
    fold_ev = _folding_events(r_nat, sub_off, config)
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


# ----------------------------------------------------------------------------------------------
# trial score


class _Clock:
    """Wall time of consecutive stages (seconds), reported in ``TrialScore.info['timings_s']``."""

    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        self.times[stage] = round(now - self._t, 4)
        self._t = now


@dataclass
class TrialScore:
    """Metrics of one trial (``metrics``), the arrays behind them (``arrays`` -> ``fes.npz``), and
    bookkeeping (``info``: counts, exclusions, native source, TICA and config)."""

    metrics: dict[str, float]
    arrays: dict[str, np.ndarray]
    info: dict[str, Any]

    @property
    def fes(self) -> dict[str, np.ndarray]:
        return self.arrays

    def save(self, out_dir: str | os.PathLike) -> Path:
        """Write ``scores.json`` and ``fes.npz`` into ``out_dir`` (each atomically)."""
        from raycg.utils.provenance import provenance

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "fes.npz") as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: np.asarray(v) for k, v in self.arrays.items()})
        doc = {
            "format": SCORES_FORMAT, "version": SCORES_VERSION,
            "metrics": {k: (float(v) if v is not None and np.isfinite(v) else None) for k, v in self.metrics.items()},
            "info": self.info,
            "provenance": provenance(self.info.get("config"), self.info.get("reference_hash")),
        }
        atomic_write_json(out / "scores.json", doc)
        return out


def _project_samples(samples: ModelSamples, tica: ReferenceTICA, k: int, burn_in: float
                     ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], int]:
    """Projection of every replica after burn-in: y [N, k], replica offsets, the kept frames per replica."""
    kept, sources, n_short = [], [], 0
    names = samples.replica_sources or [None] * len(samples.replicas)
    for r, name in zip(samples.replicas, names):
        drop = int(math.floor(burn_in * len(r)))
        if len(r) - drop <= 0:
            n_short += 1
            continue
        kept.append(r[drop:])
        sources.append(name)
    lengths = np.array([len(r) for r in kept], np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    y = np.empty((int(offsets[-1]), k), np.float64)
    for i, r in enumerate(kept):
        y[offsets[i] : offsets[i + 1]] = project(tica, r, k, where=sources[i])
    return y, offsets, kept, n_short


def score(reference, tica: ReferenceTICA, samples: ModelSamples, config: EvalConfig | None = None, *,
          reference_summary: ReferenceSummary | None = None) -> TrialScore:
    """Score model ``samples`` against the ``reference`` dataset on the reference ``tica``.

    Each replica loses its first ``burn_in_fraction`` frames, is projected on the first
    ``n_components`` TICs, and every metric of ``METRICS.md`` is computed. ``reference_summary``
    (from :func:`prepare_reference` with the same config) skips the reference-side work.
    """
    config = config or EvalConfig()
    if not isinstance(samples, ModelSamples):
        raise InputError(f"samples must be ModelSamples (see load_model_trajectories), got {type(samples).__name__}")
    where = ", ".join(samples.sources[:2]) or "model trajectories"
    if samples.n_beads != reference.n_beads:
        raise DatasetError(f"trajectories have {samples.n_beads} beads but the reference has {reference.n_beads}",
                           where=where, hint="score trajectories of the same CG system as the reference")
    ref = reference_summary
    if ref is None:
        ref = prepare_reference(reference, tica, config)
    else:
        tica.check_compatible(reference)
        ref.check_matches(reference, tica, config)
    k, kT = ref.n_components, ref.kT
    clock = _Clock()
    y, offsets, kept, n_short = _project_samples(samples, tica, k, config.burn_in_fraction)
    if len(y) == 0:
        raise DatasetError(f"no model frames left after dropping {config.burn_in_fraction:.0%} burn-in "
                           f"({samples.n_replicas} replicas)", where=where,
                           hint="simulate longer or lower evaluate.burn_in_fraction")
    n = len(y)
    clock("projection")
    ex, ey = ref.edges[0], ref.edges[1]
    h2, out2 = M.histogram2d(y, ex, ey)
    h1 = [M.histogram1d(y[:, c], ref.edges[c]) for c in range(k)]
    fes_m = M.free_energy(h2, kT)
    p = M.with_outside(ref.hist2d, ref.outside2d)
    q = M.with_outside(h2, out2)
    m: dict[str, float] = {}
    clock("histograms")
    m["kl_ref_model"] = M.kl_divergence(p, q, config.kl_epsilon)
    m["kl_model_ref"] = M.kl_divergence(q, p, config.kl_epsilon)
    m["js_divergence"] = M.js_divergence(p, q)
    for c in range(k):
        pc = M.with_outside(ref.hist1d[c], 0.0)
        qc = M.with_outside(*h1[c])
        m[f"kl_ref_model_tic{c + 1}"] = M.kl_divergence(pc, qc, config.kl_epsilon)
    clock("kl_js")
    m["w1"] = M.wasserstein_2d_grid(ref.y, y, config.w1_bins, ref.weights)
    for c in range(k):
        m[f"w1_tic{c + 1}"] = M.wasserstein_1d(ref.y[:, c], y[:, c], ref.weights, None)
    clock("w1")
    m["fes_mse"] = M.fes_mse(ref.fes2d, fes_m)
    m["fes_mse_aligned"] = M.fes_mse(ref.fes2d, fes_m, aligned=True)
    m["coverage"] = M.coverage(ref.hist2d, h2)
    m["coverage_weighted"] = M.coverage(ref.hist2d, h2, weighted=True)
    m["outside_grid_fraction"] = out2 / n
    # RMSD-based: folded population and chirality
    ca = ref.ca_index
    total = sum(len(r) for r in kept)
    stride = _stride_for(total, config.rmsd_max_frames)
    # frames [::stride] of every replica, in blocks of whole replicas (bounded memory)
    r_nat_parts, r_mir_parts, block = [], [], []
    mir = mirror(ref.native)

    def rmsd_block() -> None:
        x = np.concatenate(block)
        r_nat_parts.append(rmsd_to(x, ref.native))
        r_mir_parts.append(rmsd_to(x, mir))
        block.clear()

    rows = 0
    for r in kept:
        block.append(r[::stride][:, ca])
        rows += len(block[-1])
        if rows >= RMSD_CHUNK:
            rmsd_block()
            rows = 0
    if block:
        rmsd_block()
    r_nat, r_mir = np.concatenate(r_nat_parts), np.concatenate(r_mir_parts)
    m["folded_fraction_model"] = M.folded_fraction(r_nat, config.folded_rmsd_A)
    m["folded_fraction_reference"] = ref.folded_fraction
    m["folded_fraction_diff"] = m["folded_fraction_model"] - ref.folded_fraction
    m["folded_fraction_abs_error"] = abs(m["folded_fraction_diff"])
    m["mirror_fraction_model"] = M.mirror_fraction(r_nat, r_mir)
    m["mirror_fraction_reference"] = ref.mirror_fraction
    m["mirror_folded_fraction_model"] = M.folded_fraction(r_mir, config.folded_rmsd_A)
    m["mirror_folded_fraction_reference"] = ref.mirror_folded_fraction
    m["rmsd_mean_model_A"] = float(np.mean(r_nat))
    # folding transitions: RMSD hysteresis per replica (on the same [::stride] frames)
    sub_len = np.array([len(range(0, len(r), stride)) for r in kept], np.int64)
    fold_ev = _folding_events(r_nat, np.concatenate([[0], np.cumsum(sub_len)]), config)
    dt_m = samples.dt_frame_ps
    t_model_ns = float(total * dt_m / U.NS_TO_PS) if dt_m else float("nan")
    n_ev_m, n_ev_r = float(fold_ev.sum()), float(ref.folding_transitions_per_trajectory.sum())
    m["folding_transitions_per_replica_mean"] = float(fold_ev.mean())
    m["folding_transitions_per_trajectory_mean_reference"] = float(ref.folding_transitions_per_trajectory.mean())
    m["folding_transition_rate_per_ns_model"] = n_ev_m / t_model_ns if t_model_ns > 0 else float("nan")
    m["folding_transition_rate_per_ns_reference"] = (n_ev_r / ref.folding_time_ns if ref.folding_time_ns > 0
                                                     else float("nan"))
    m["folding_transition_rate_ratio"] = _folding_rate_ratio(n_ev_m, t_model_ns, n_ev_r, ref.folding_time_ns)
    ratio_reg = _folding_rate_ratio(n_ev_m, t_model_ns, n_ev_r, ref.folding_time_ns, pseudo=FOLDING_PSEUDO_EVENTS)
    m["folding_transition_rate_log_ratio_abs"] = abs(math.log(ratio_reg)) if np.isfinite(ratio_reg) else float("nan")
    clock("rmsd")
    # trapping
    n_b = len(ref.basin_min)
    bseq = M.lookup_grid(y, ref.basin_edges[0], ref.basin_edges[1], ref.basin_labels)
    cseq = M.lookup_grid(y, ref.basin_edges[0], ref.basin_edges[1], ref.core_grid)
    trans, maxfrac, bpop = _basin_stats(bseq, cseq, offsets, n_b)
    lengths = np.diff(offsets)
    m["n_basins"] = float(n_b)
    m["transitions_per_replica_mean"] = float(trans.mean())
    m["transitions_per_replica_median"] = float(np.median(trans))
    m["transitions_per_trajectory_mean_reference"] = float(ref.transitions_per_trajectory.mean())
    rate_m = float(trans.sum() / (lengths.sum() * dt_m) * U.NS_TO_PS) if dt_m else float("nan")
    ref_len = np.diff(ref.traj_offsets)
    rate_r = float(ref.transitions_per_trajectory.sum() / (ref_len.sum() * ref.dt_frame_ps) * U.NS_TO_PS)
    m["transition_rate_per_ns_model"] = rate_m
    m["transition_rate_per_ns_reference"] = rate_r
    m["transition_rate_ratio"] = rate_m / rate_r if rate_r > 0 and np.isfinite(rate_m) else float("nan")
    m["deepest_well_population_model"] = float(bpop[0]) if n_b else float("nan")
    m["deepest_well_population_reference"] = float(ref.basin_population[0]) if n_b else float("nan")
    m["deepest_well_excess"] = m["deepest_well_population_model"] - m["deepest_well_population_reference"]
    m["max_basin_population_model"] = float(bpop.max()) if n_b else float("nan")
    m["trapped_fraction_mean"] = float(np.nanmean(maxfrac)) if np.isfinite(maxfrac).any() else float("nan")
    m["trapped_fraction_mean_reference"] = (float(np.nanmean(ref.max_basin_fraction))
                                            if np.isfinite(ref.max_basin_fraction).any() else float("nan"))
    clock("basins")
    # counts
    m["n_frames_model"] = float(n)
    m["n_replicas_used"] = float(len(kept))
    m["n_replicas_total"] = float(samples.n_replicas_total)
    m["n_blown_up"] = float(samples.n_blown_up)
    m["blown_up_fraction"] = samples.n_blown_up / samples.n_replicas_total if samples.n_replicas_total else 0.0

    fes_r1 = [M.free_energy(h, kT) for h in ref.hist1d]
    arrays: dict[str, np.ndarray] = {
        "edges_x": ex, "edges_y": ey,
        "fes_reference": ref.fes2d, "fes_model": fes_m,
        "hist_reference": ref.hist2d, "hist_model": h2,
        "transitions_per_replica": trans.astype(np.int64),
        "folding_transitions_per_replica": fold_ev.astype(np.int64),
        "folding_transitions_per_trajectory_reference": ref.folding_transitions_per_trajectory.astype(np.int64),
        "deepest_well_population_model": np.float64(m["deepest_well_population_model"]),
        "deepest_well_population_reference": np.float64(m["deepest_well_population_reference"]),
        "kT": np.float64(kT), "temperature_K": np.float64(ref.temperature_K),
        "edges_1d": np.stack(ref.edges), "hist1d_reference": np.stack(ref.hist1d),
        "hist1d_model": np.stack([h for h, _ in h1]),
        "fes1d_reference": np.stack(fes_r1), "fes1d_model": np.stack([M.free_energy(h, kT) for h, _ in h1]),
        "basin_edges_x": ref.basin_edges[0], "basin_edges_y": ref.basin_edges[1],
        "basin_labels": ref.basin_labels, "basin_population_reference": ref.basin_population,
        "basin_population_model": bpop, "replica_max_basin_fraction": maxfrac,
        "replica_n_frames": lengths, "transitions_per_trajectory_reference": ref.transitions_per_trajectory,
    }
    info = {
        "reference_hash": ref.dataset_hash, "reference_frames": ref.n_frames,
        "tica": {"lag_frames": tica.lag, "lag_ps": tica.lag_ps, "feature_kind": tica.feature_kind,
                 "dim": tica.dim, "dataset_hash": tica.dataset_hash},
        "native_source": ref.native_source, "kT_kcal_per_mol": kT, "temperature_K": ref.temperature_K,
        "model_dt_frame_ps": dt_m, "rmsd_stride": stride,
        "n_replicas_total": samples.n_replicas_total, "n_blown_up": samples.n_blown_up,
        "n_empty": samples.n_empty, "n_too_short_after_burn_in": n_short, "excluded": samples.excluded,
        "sources": samples.sources, "config": config.model_dump(mode="json"), "timings_s": clock.times,
    }
    return TrialScore(metrics=m, arrays=arrays, info=info)
