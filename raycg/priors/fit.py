"""Fit priors by Boltzmann inversion of streamed, Jacobian-corrected float64 histograms.

For each parameter group the data free energy is F(x) = −k_BT ln[p(x) / J(x)] with J = r² for
distances, sin θ for angles and 1 for dihedrals (the volume element of the coordinate: an
unconstrained distance is r²-weighted even without any force). The functional form is then
fitted by weighted linear least squares (weights = effective bin counts, since
Var F ≈ (k_BT)²/n): harmonic terms as a quadratic a t² + b t + c (k = 2a, x0 = x̄ − b/2a),
dihedrals as a Fourier series. Repulsion σ is a low percentile of the pair's distances.

Memory and time: coordinates are read in chunks of ``chunk_frames`` (memory-mapped datasets
are never loaded whole); each chunk adds to fixed-size histograms with one ``np.bincount``
per term kind. A first, subsampled pass sets the histogram ranges.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from raycg import units as U
from raycg.errors import InputError
from raycg.priors.config import PriorConfig
from raycg.priors.geometry import from_numpy, term_index
from raycg.priors.prior_set import PriorSet, TermFit, TermTable
from raycg.priors.terms import Histogram, Term, term_class
from raycg.priors.terms.boltzmann import ConstantFeature, SparseHistogram
from raycg.priors.topology import build_topology

if TYPE_CHECKING:
    from raycg.data.format import CGDataset


@dataclass
class _Kind:
    cls: type[Term]
    atoms: np.ndarray          # [N, m]
    group: np.ndarray          # [N] group index
    labels: list[str]          # per group
    members: list[list[list[int]]]  # per group: the terms' bead indices
    lo: np.ndarray | None = None
    hi: np.ndarray | None = None
    nbins: int = 0
    counts: np.ndarray | None = None   # [G, nbins + 2] (under, bins..., over)
    sumw2: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return self.cls.kind

    @property
    def n_groups(self) -> int:
        return len(self.labels)

    def features(self, x) -> np.ndarray:
        """The terms' feature [N, F] of coordinates x (torch [3, B, F])."""
        import torch

        with torch.no_grad():
            return self.cls.features(x, term_index(self.atoms, self.cls.arity)).numpy()

    def histogram(self, g: int) -> Histogram:
        return Histogram(self.counts[g], self.sumw2[g], float(self.lo[g]), float(self.hi[g]))


def _bead_labels(ds) -> list[str]:
    b = ds.meta.beads
    if len(b.residue_names) == ds.n_beads and len(b.residue_ids) == ds.n_beads:
        return [f"{b.residue_names[i]}{b.residue_ids[i]}" for i in range(ds.n_beads)]
    return [str(i) for i in range(ds.n_beads)]


def _type_names(ds) -> dict[int, str]:
    b = ds.meta.beads
    types = [int(t) for t in b.types] if len(b.types) == ds.n_beads else list(range(ds.n_beads))
    names: dict[int, str] = {}
    for i, t in enumerate(types):
        if b.type_names and 0 <= t < len(b.type_names):
            names[t] = b.type_names[t]
        elif t not in names:
            names[t] = b.residue_names[i] if len(b.residue_names) == ds.n_beads else f"t{t}"
    return names


def _groups(cls: type[Term], atoms: np.ndarray, cfg: PriorConfig, types: np.ndarray,
            bead_labels: list[str], type_names: dict[int, str]
            ) -> tuple[np.ndarray, list[str], list[list[list[int]]]]:
    """Parameter groups: one per term, per bead-type tuple (either direction) or all in one."""
    grouping = cls.grouping(cfg)
    if grouping == "all":
        return np.zeros(len(atoms), dtype=np.int64), [cls.pooled_label()], [atoms.tolist()]
    if grouping == "term":
        labels = ["-".join(bead_labels[i] for i in a) for a in atoms]
        return np.arange(len(atoms), dtype=np.int64), labels, [[a.tolist()] for a in atoms]
    keys: dict[tuple, int] = {}
    group = np.empty(len(atoms), dtype=np.int64)
    members: list[list[list[int]]] = []
    labels: list[str] = []
    for n, a in enumerate(atoms):
        t = tuple(int(types[i]) for i in a)
        key = min(t, t[::-1])
        if key not in keys:
            keys[key] = len(keys)
            members.append([])
            labels.append("-".join(type_names.get(x, f"t{x}") for x in key))
        group[n] = keys[key]
        members[keys[key]].append(a.tolist())
    return group, labels, members


def _selected_frames(n_frames: int, max_frames: int | None) -> np.ndarray | None:
    if max_frames is None or n_frames <= max_frames:
        return None
    return np.unique(np.linspace(0, n_frames - 1, max_frames).round().astype(np.int64))


def _read(ds, frames: np.ndarray | None, start: int, stop: int, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Coordinates (torch [3, B, F], ≥ float32) and weights of selected frames start:stop; checks
    finiteness."""
    sel = slice(start, stop) if frames is None else frames[start:stop]
    x = np.asarray(ds.coords[sel])
    if not np.isfinite(x).all():
        f, b = np.argwhere(~np.isfinite(x).all(axis=2))[0]
        frame = (start + int(f)) if frames is None else int(frames[start + int(f)])
        raise InputError(f"non-finite coordinate at frame {frame}, bead {int(b)}", where=where,
                         hint="run 'raycg data validate' and fix or drop the frame")
    w = None
    if ds.weights is not None:
        w = np.asarray(ds.weights[sel], dtype=np.float64)
        if not (np.isfinite(w).all() and (w >= 0).all()):
            f = int(np.flatnonzero(~(np.isfinite(w) & (w >= 0)))[0])
            frame = (start + f) if frames is None else int(frames[start + f])
            raise InputError(f"frame weight at frame {frame} is {w[f]} (must be finite and >= 0)", where=where,
                             hint="fix weights.npy")
    # geometry in the precision of the data (float32 coordinates stay float32: the rounding of the
    # data already dominates); histograms accumulate in float64
    return from_numpy(x), w


def _set_ranges(k: _Kind, values: np.ndarray, cfg: PriorConfig, bins: int, where: str) -> None:
    g = k.group
    gmin = np.full(k.n_groups, np.inf)
    gmax = np.full(k.n_groups, -np.inf)
    np.minimum.at(gmin, g, values.min(axis=1))
    np.maximum.at(gmax, g, values.max(axis=1))
    cls = k.cls
    k.nbins = cls.n_bins(cfg, bins)
    if cls.periodic:
        k.lo, k.hi = np.full(k.n_groups, cls.domain[0]), np.full(k.n_groups, cls.domain[1])
    elif (fixed := cfg.ranges.get(k.kind)) is not None:
        lo, hi = fixed
        k.lo, k.hi = np.full(k.n_groups, float(lo)), np.full(k.n_groups, float(hi))
    else:
        try:
            k.lo, k.hi = cls.histogram_range(gmin, gmax, cfg)
        except ConstantFeature as exc:
            i = exc.index
            raise InputError(f"{cls.noun} {k.labels[i]} is constant ({gmin[i]:.6g} {cls.unit} in "
                             f"every sampled frame); a harmonic fit needs a distribution",
                             where=where,
                             hint=f"disable it ({cfg.switch_hint(k.kind)}) or use data where it "
                                  f"fluctuates") from None


def _accumulate(k: _Kind, values: np.ndarray, w: np.ndarray | None) -> None:
    """Add values [N terms, F frames] (optional frame weights [F]) to the group histograms."""
    nb = k.nbins
    lo = k.lo[k.group][:, None]
    inv = (nb / (k.hi - k.lo)[k.group])[:, None]
    b = np.floor((values - lo) * inv)
    if k.cls.periodic:   # φ = π belongs to the last bin
        np.clip(b, 0, nb - 1, out=b)
    else:
        np.clip(b, -1, nb, out=b)
    flat = (b.astype(np.int64) + (1 + k.group * (nb + 2))[:, None]).ravel()
    size = k.n_groups * (nb + 2)
    counts, sumw2 = k.counts.reshape(-1), k.sumw2.reshape(-1)   # views of the [G, nb+2] arrays
    if w is None:
        c = np.bincount(flat, minlength=size).astype(np.float64)
        counts += c
        sumw2 += c
    else:
        ww = np.broadcast_to(w[None, :], values.shape).ravel()
        counts += np.bincount(flat, weights=ww, minlength=size)
        sumw2 += np.bincount(flat, weights=ww * ww, minlength=size)


# ----------------------------------------------------------------------------------------------
# per-group fits


def _fit_group(k: _Kind, g: int, kbt: float, cfg: PriorConfig, n_frames: int, where: str) -> TermFit:
    """The term class's Boltzmann-inversion fit of group g, with the histogram diagnostics."""
    counts = k.counts[g]
    total = float(counts.sum())
    s2 = float(k.sumw2[g].sum())
    base = dict(kind=k.kind, label=k.labels[g], members=k.members[g], range=(float(k.lo[g]), float(k.hi[g])),
                bins=k.nbins, n_samples=total, n_eff=(total * total / s2) if s2 > 0 else 0.0,
                out_of_range=float((counts[0] + counts[-1]) / total) if total > 0 else 0.0,
                histogram=[float(v) for v in counts[1:-1]] if cfg.store_histograms else None)
    try:
        return TermFit(**k.cls.fit(k.histogram(g), kbt, cfg), **base)
    except SparseHistogram as exc:
        raise InputError(
            f"{k.cls.noun} {k.labels[g]}: only {exc.have} histogram bin(s) hold >= "
            f"{cfg.min_bin_count:g} samples, the fit needs >= {exc.need} ({n_frames} frames used)",
            where=where,
            hint="use more frames, or fewer bins (priors.bins) / a lower priors.min_bin_count",
        ) from None


# ----------------------------------------------------------------------------------------------


def fit_priors(dataset: CGDataset, config: PriorConfig | None = None, *, progress: bool = False) -> PriorSet:
    """Fit bonds, angles, Fourier dihedrals, (σ/r)⁶ repulsion (and ``config.extra_terms``) to a
    :class:`CGDataset`.

    Boltzmann inversion at the dataset temperature (or ``config.temperature_K``) with Jacobian
    corrections, streamed in chunks of ``config.chunk_frames`` frames; frame weights are used
    when the dataset has them. The dataset is never modified. Raises :class:`InputError` for a
    dataset without bonds, too few frames/bins for a histogram fit, or non-finite input.
    """
    from raycg.utils.provenance import provenance

    cfg = config or PriorConfig()
    where = f"dataset {dataset.path}" if getattr(dataset, "path", None) else f"dataset {dataset.meta.name!r}"
    n_frames_all = int(dataset.n_frames)
    n_beads = int(dataset.n_beads)
    if n_frames_all < cfg.min_frames:
        raise InputError(f"only {n_frames_all} frame(s); fitting priors from histograms needs >= {cfg.min_frames}",
                         where=where, hint="use a larger dataset (or lower priors.min_frames)")
    temperature = float(cfg.temperature_K or dataset.temperature)
    kbt = U.kbt(temperature)
    topo = build_topology(dataset.bonds, n_beads, cfg.repulsion_min_bond_separation, where=where)
    bead_labels = _bead_labels(dataset)
    types = dataset.bead_types if len(dataset.bead_types) == n_beads else np.arange(n_beads)
    kinds = _term_kinds(topo, cfg, types, bead_labels, _type_names(dataset))
    n_use = _histograms(dataset, kinds, cfg, where, progress)
    terms: dict[str, TermTable] = {}
    fits: dict[str, list[TermFit]] = {}
    for k in kinds:
        fits[k.kind] = [_fit_group(k, g, kbt, cfg, n_use, where) for g in range(k.n_groups)]
        terms[k.kind] = _term_table(k, fits[k.kind])
    _warn_fallbacks(fits)
    info = {"name": dataset.meta.name, "path": str(dataset.path) if getattr(dataset, "path", None) else None,
            "content_hash": dataset.content_hash, "n_frames": n_frames_all, "n_frames_used": n_use,
            "weighted": dataset.weights is not None, "temperature_K": float(dataset.temperature)}
    return PriorSet(n_beads=n_beads, temperature_K=temperature, terms=terms, fits=fits, config=cfg,
                    bead_types=[int(t) for t in types], bead_labels=bead_labels,
                    bonds=topo.bonds.tolist(), dataset=info,
                    provenance=provenance(cfg, info["content_hash"]))


def _term_kinds(topo, cfg: PriorConfig, types, bead_labels, type_names) -> list[_Kind]:
    """The enabled term kinds that have terms in this topology, with their groups of shared parameters."""
    for name in cfg.ranges:
        if term_class(name, where="priors.ranges").periodic:
            raise InputError(f"priors.ranges.{name}: a periodic histogram spans its period",
                             where="priors config", hint=f"remove ranges.{name}")
    kinds: list[_Kind] = []
    for name in cfg.term_kinds():
        cls = term_class(name, where="priors config")
        atoms = np.asarray(cls.select(topo, cfg), dtype=np.int64).reshape(-1, cls.arity)
        if len(atoms):
            group, labels, members = _groups(cls, atoms, cfg, types, bead_labels, type_names)
            kinds.append(_Kind(cls, atoms, group, labels, members))
    return kinds


def _histograms(dataset, kinds: list[_Kind], cfg: PriorConfig, where: str, progress: bool) -> int:
    """Fill each kind's histograms (counts, sum of squared weights) over the selected frames; returns their
    number. Pass 1 sets the histogram ranges from an evenly spaced subsample; pass 2 streams every selected
    frame in chunks."""
    from raycg.utils.progress import Progress

    n_frames_all = int(dataset.n_frames)
    frames = _selected_frames(n_frames_all, cfg.max_frames)
    n_use = n_frames_all if frames is None else len(frames)
    n_range = min(n_use, cfg.range_sample_frames)
    pos_in_sel = np.unique(np.linspace(0, n_use - 1, n_range).round().astype(np.int64))
    sample_frames = pos_in_sel if frames is None else frames[pos_in_sel]
    x, _ = _read(dataset, sample_frames, 0, len(sample_frames), where)
    for k in kinds:
        _set_ranges(k, k.features(x), cfg, cfg.resolved_bins(n_use), where)
        k.counts = np.zeros((k.n_groups, k.nbins + 2))
        k.sumw2 = np.zeros((k.n_groups, k.nbins + 2))
    del x
    with Progress(n_use, desc="priors", unit="frames", disable=not progress) as bar:
        for start in range(0, n_use, cfg.chunk_frames):
            stop = min(start + cfg.chunk_frames, n_use)
            x, w = _read(dataset, frames, start, stop, where)
            for k in kinds:
                _accumulate(k, k.features(x), w)
            bar.update(stop - start)
    if dataset.weights is not None and all(k.counts.sum() <= 0 for k in kinds):
        raise InputError("all frame weights are zero", where=where, hint="fix weights.npy")
    return n_use


def _term_table(k: _Kind, gf: list[TermFit]) -> TermTable:
    """Each term's parameters (the class's schema), taken from its group's fit."""
    params = {name: np.array([gf[g].params[name] for g in k.group], dtype=np.float64)
              for name in k.cls.param_names}
    return TermTable(k.kind, k.atoms, k.group, params)


def _warn_fallbacks(fits: dict[str, list[TermFit]]) -> None:
    fallbacks = [f"{f.kind} {f.label}" for fl in fits.values() for f in fl
                 if f.method in ("moments", "not-fitted") or "reduced" in f.note]
    if fallbacks:
        warnings.warn(f"priors: {len(fallbacks)} term group(s) had too few populated histogram bins or a "
                      f"non-convex histogram and used a fallback (see each fit's 'method'/'note'): "
                      f"{', '.join(fallbacks[:5])}{' ...' if len(fallbacks) > 5 else ''}", stacklevel=3)
