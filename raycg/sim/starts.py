"""Start structures for simulations: frames drawn from the reference, and the blow-up envelope.

``equilibrium`` (the default of studies) draws frames *from the reference distribution*, stratified
over a 1-D/2-D feature (the leading TICs): each cell of an even grid gets a number of replicas
proportional to its reference probability (largest-remainder rounding, so the expected count of a
cell is exactly n·p_cell), each replica a random frame of its cell. The starts are then a sample of
the equilibrium distribution with less spread than plain random frames, so a short run measures the
model's dynamics rather than relaxation from outlying conformations. ``kcenters`` (farthest-point)
and ``stratified`` (one frame per occupied cell, uniform over cells) spread starts across
conformations instead: rare states are over-represented, which a free-energy comparison must then
wait out (DESIGN §8).

Lengths in Å. Velocities come from :func:`raycg.sim.maxwell_boltzmann`.
"""

from __future__ import annotations

import math

import numpy as np

from raycg.errors import InputError

METHODS = ("equilibrium", "kcenters", "stratified", "random")


def _coords_of(dataset) -> np.ndarray:
    coords = getattr(dataset, "coords", dataset)
    if not hasattr(coords, "shape") or len(coords.shape) != 3 or coords.shape[-1] != 3:
        raise InputError("select_start_frames needs a CGDataset or coordinates [frames, beads, 3]")
    return coords


def _pair_distances(x: np.ndarray) -> np.ndarray:
    from raycg.cv import pair_distances

    return pair_distances(x)


def _kcenters(feat: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy farthest-point (k-centers) selection of ``n`` distinct rows of ``feat``."""
    first = int(rng.integers(len(feat)))
    chosen = [first]
    d = np.linalg.norm(feat - feat[first], axis=1)
    for _ in range(1, n):
        nxt = int(np.argmax(d))
        if d[nxt] <= 0:  # only duplicates left
            break
        chosen.append(nxt)
        np.minimum(d, np.linalg.norm(feat - feat[nxt], axis=1), out=d)
    return np.asarray(chosen, dtype=np.int64)


def _stratified(feat: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """One random frame per occupied bin of an even grid over a 1-D/2-D feature, round robin to ``n``."""
    dim = feat.shape[1]
    per_dim = n if dim == 1 else max(1, math.ceil(math.sqrt(n)))
    cell = np.zeros(len(feat), dtype=np.int64)
    for k in range(dim):
        lo, hi = float(feat[:, k].min()), float(feat[:, k].max())
        width = (hi - lo) / per_dim if hi > lo else 1.0
        idx = np.clip(((feat[:, k] - lo) / width).astype(np.int64), 0, per_dim - 1)
        cell = cell * per_dim + idx
    members = {c: rng.permutation(np.flatnonzero(cell == c)) for c in np.unique(cell)}
    cells = sorted(members)
    # visit cells in random order so that, with more occupied cells than n, the choice is unbiased
    order = [cells[i] for i in rng.permutation(len(cells))]
    out: list[int] = []
    depth = 0
    while len(out) < n:
        took = False
        for c in order:
            if depth < len(members[c]):
                out.append(int(members[c][depth]))
                took = True
                if len(out) == n:
                    break
        if not took:
            break
        depth += 1
    return np.asarray(out, dtype=np.int64)


def _cells(feat: np.ndarray, per_dim: int) -> np.ndarray:
    cell = np.zeros(len(feat), dtype=np.int64)
    for k in range(feat.shape[1]):
        lo, hi = float(feat[:, k].min()), float(feat[:, k].max())
        width = (hi - lo) / per_dim if hi > lo else 1.0
        cell = cell * per_dim + np.clip(((feat[:, k] - lo) / width).astype(np.int64), 0, per_dim - 1)
    return cell


def _equilibrium(feat: np.ndarray, n: int, rng: np.random.Generator, weights: np.ndarray | None,
                 per_dim: int = 10) -> np.ndarray:
    """Proportional stratified sample of ``n`` frames (frame probabilities ∝ ``weights``)."""
    w = np.ones(len(feat)) if weights is None else np.asarray(weights, dtype=np.float64)
    cell = _cells(feat, per_dim)
    ids, inverse = np.unique(cell, return_inverse=True)
    p = np.bincount(inverse, weights=w, minlength=len(ids))
    p = p / p.sum()
    quota = n * p
    count = np.floor(quota).astype(np.int64)
    rest = n - int(count.sum())
    if rest > 0:                                   # largest remainders, ties broken at random
        frac = quota - count + rng.random(len(quota)) * 1e-9
        count[np.argsort(-frac)[:rest]] += 1
    out = []
    for c in np.flatnonzero(count):
        members = np.flatnonzero(inverse == c)
        pm = w[members] / w[members].sum()
        out.append(rng.choice(members, size=int(count[c]), replace=count[c] > len(members), p=pm))
    return rng.permutation(np.concatenate(out)).astype(np.int64)


def select_start_frames(dataset, n: int, method: str = "kcenters", seed: int = 0, features=None, *,
                        max_candidates: int = 20000, weights=None) -> np.ndarray:
    """Indices (int64, length ``n``) of dataset frames to start ``n`` replicas from.

    ``equilibrium``: a proportional stratified sample of the reference distribution over a 1-D or
    2-D ``features`` (e.g. the leading TICs) on a 10-per-axis grid, frame probabilities ∝ ``weights``
    (default: the dataset's frame weights, else uniform);
    ``kcenters``: greedy farthest-point selection on ``features`` (default: pair distances, Å) of
    at most ``max_candidates`` randomly chosen frames; ``stratified``: even grid over a 1-D or 2-D
    ``features`` [F] / [F, 1|2] (e.g. TIC projections or RMSD), one random frame per occupied cell,
    then more from the same cells round robin; ``random``: uniform. If the data have fewer distinct
    frames than ``n``, frames are reused (replicas then differ by their velocities).
    Deterministic for a seed.
    """
    coords = _coords_of(dataset)
    n_frames = int(coords.shape[0])
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"number of start frames must be a positive integer, got {n!r}", where="select_start_frames")
    if method not in METHODS:
        raise InputError(f"unknown start-frame method {method!r}", where="select_start_frames",
                         hint=f"use one of {', '.join(METHODS)}")
    if n_frames == 0:
        raise InputError("the dataset has no frames", where="select_start_frames")
    rng = np.random.default_rng(seed)
    feat = None
    if features is not None:
        feat = np.asarray(features, dtype=np.float64)
        if feat.ndim == 1:
            feat = feat[:, None]
        if feat.ndim != 2 or feat.shape[0] != n_frames:
            raise InputError(f"features must be [frames] or [frames, dim] with {n_frames} frames, got "
                             f"{tuple(np.shape(features))}", where="select_start_frames")
        if not np.all(np.isfinite(feat)):
            raise InputError("features contain NaN or inf", where="select_start_frames")
    if method == "random":
        return np.sort(rng.choice(n_frames, size=n, replace=n > n_frames)).astype(np.int64)
    if method in ("stratified", "equilibrium"):
        if feat is None:
            raise InputError(f"method {method!r} needs features", where="select_start_frames",
                             hint="pass a 1-D or 2-D feature per frame, e.g. TIC projections or RMSD")
        if feat.shape[1] > 2:
            raise InputError(f"method {method!r} takes a 1-D or 2-D feature, got {feat.shape[1]} dimensions",
                             where="select_start_frames", hint="pass the leading 1-2 TICs, or use kcenters")
        if method == "stratified":
            chosen = _stratified(feat, n, rng)
        else:
            w = weights if weights is not None else getattr(dataset, "weights", None)
            if w is not None and (np.shape(w) != (n_frames,) or not np.all(np.asarray(w) >= 0)):
                raise InputError(f"weights must be [frames] = [{n_frames}] and non-negative",
                                 where="select_start_frames")
            return _equilibrium(feat, n, rng, None if w is None else np.asarray(w, dtype=np.float64))
    else:
        cand = np.arange(n_frames) if n_frames <= max_candidates else np.sort(
            rng.choice(n_frames, size=max_candidates, replace=False))
        f = feat[cand] if feat is not None else _pair_distances(np.asarray(coords[cand], dtype=np.float32))
        chosen = cand[_kcenters(np.asarray(f, dtype=np.float64), n, rng)]
    if len(chosen) < n:  # fewer distinct frames than replicas: reuse them
        chosen = np.resize(chosen, n)
    return chosen.astype(np.int64)


def max_bond_from_data(dataset, factor: float = 1.5, max_frames: int = 20000, seed: int = 0) -> float:
    """A blow-up envelope (Å): ``factor`` × the largest bonded distance seen in (a sample of) the data."""
    coords = _coords_of(dataset)
    bonds = np.asarray(getattr(dataset, "bonds", np.zeros((0, 2))), dtype=np.int64).reshape(-1, 2)
    if bonds.shape[0] == 0:
        raise InputError("the dataset has no bonds to derive a bond envelope from", where="max_bond_from_data")
    n = int(coords.shape[0])
    idx = np.arange(n) if n <= max_frames else np.sort(np.random.default_rng(seed).choice(n, max_frames, replace=False))
    x = np.asarray(coords[idx], dtype=np.float64)
    d = np.linalg.norm(x[:, bonds[:, 1]] - x[:, bonds[:, 0]], axis=-1)
    return float(factor * np.max(d))
