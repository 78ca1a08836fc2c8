"""Distribution metrics between a reference and a model sample in TIC space, and their building blocks.

Every function is a plain NumPy/SciPy function of arrays, so the metrics can be tested against
closed forms. Conventions: ``p`` is the reference distribution, ``q`` the model's; logarithms are
natural (nats); TIC coordinates are dimensionless (kinetic-map scaled, as deeptime's TICA);
free energies are kcal/mol. See ``METRICS.md`` for the table of every metric ``score`` reports.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: network-simplex iteration cap of :func:`transport_cost` (a 576-cell grid needs ~10^4-10^5)
TRANSPORT_MAX_ITER = 10_000_000

# ----------------------------------------------------------------------------------------------
# grids and histograms


def grid_edges(y_ref: np.ndarray, bins: int, padding: float) -> list[np.ndarray]:
    """Bin edges per column of ``y_ref``: ``bins`` equal bins over ``[min - pad, max + pad]`` where
    ``pad = padding * (max - min)`` (a zero range is widened to ±0.5)."""
    y_ref = np.asarray(y_ref, dtype=np.float64)
    edges = []
    for c in range(y_ref.shape[1]):
        lo, hi = float(np.min(y_ref[:, c])), float(np.max(y_ref[:, c]))
        span = hi - lo
        if not span > 0:
            lo, hi, span = lo - 0.5, hi + 0.5, 1.0
        edges.append(np.linspace(lo - padding * span, hi + padding * span, bins + 1))
    return edges


def bin_index(y: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each value on uniform ``edges`` (``-1`` outside; the last edge is inclusive)."""
    y = np.asarray(y, dtype=np.float64)
    n = len(edges) - 1
    lo, hi = float(edges[0]), float(edges[-1])
    bad = (y < lo) | (y > hi) | ~np.isfinite(y)
    idx = np.floor((np.where(bad, lo, y) - lo) * (n / (hi - lo))).astype(np.int64)
    np.clip(idx, 0, n - 1, out=idx)  # y == hi belongs to the last bin
    idx[bad] = -1
    return idx


def histogram2d(y: np.ndarray, edges_x: np.ndarray, edges_y: np.ndarray,
                weights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Counts ``[nx, ny]`` of the first two columns of ``y`` on the grid, and the weight outside it.

    With ``weights``, counts are sums of weights. Uniform edges; O(N) with ``bincount``.
    """
    ix, iy = bin_index(y[:, 0], edges_x), bin_index(y[:, 1], edges_y)
    inside = (ix >= 0) & (iy >= 0)
    nx, ny = len(edges_x) - 1, len(edges_y) - 1
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    flat = ix[inside] * ny + iy[inside]
    h = np.bincount(flat, weights=None if w is None else w[inside], minlength=nx * ny).astype(np.float64)
    total = float(len(y)) if w is None else float(w.sum())
    return h.reshape(nx, ny), total - float(h.sum())


def histogram1d(y: np.ndarray, edges: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Counts of ``y`` on ``edges`` and the weight outside them."""
    i = bin_index(y, edges)
    inside = i >= 0
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    h = np.bincount(i[inside], weights=None if w is None else w[inside], minlength=len(edges) - 1).astype(np.float64)
    total = float(len(y)) if w is None else float(w.sum())
    return h, total - float(h.sum())


def free_energy(hist: np.ndarray, kT: float) -> np.ndarray:
    """``F = -k_B T ln p`` (kcal/mol) of a histogram, shifted so that its minimum is 0; NaN where empty."""
    h = np.asarray(hist, dtype=np.float64)
    total = h.sum()
    f = np.full(h.shape, np.nan)
    if total <= 0:
        return f
    pos = h > 0
    f[pos] = -kT * np.log(h[pos] / total)
    f[pos] -= f[pos].min()
    return f


def with_outside(hist: np.ndarray, outside: float) -> np.ndarray:
    """A probability vector over the grid cells plus one "outside the grid" cell."""
    v = np.append(np.asarray(hist, dtype=np.float64).ravel(), max(float(outside), 0.0))
    s = v.sum()
    return v / s if s > 0 else v


# ----------------------------------------------------------------------------------------------
# divergences


def regularize(p: np.ndarray, eps: float) -> np.ndarray:
    """``(p + ε) / (1 + ε n)``: every one of the ``n`` cells gets pseudo-probability ε, then renormalised."""
    p = np.asarray(p, dtype=np.float64)
    return (p + eps) / (p.sum() + eps * p.size)


def kl_divergence(p: np.ndarray, q: np.ndarray, eps: float = 1e-6) -> float:
    """Kullback-Leibler divergence ``KL(p‖q) = Σ_i p̃_i ln(p̃_i / q̃_i)`` in nats.

    ``p̃, q̃`` are ``p, q`` regularised by :func:`regularize` with ``ε`` (both, so the value is finite
    for empty bins and exactly 0 for identical inputs). Direction: with ``p`` = reference and ``q`` =
    model, KL(ref‖model) is large when the model misses states the reference populates;
    KL(model‖ref) is large when the model populates states the reference does not. ≥ 0, lower is better.
    """
    pp, qq = regularize(p, eps), regularize(q, eps)
    return float(max(np.sum(pp * np.log(pp / qq)), 0.0))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence ``½ KL(p‖m) + ½ KL(q‖m)``, ``m = (p+q)/2``, in nats (0 ≤ JS ≤ ln 2).

    Symmetric and finite without a regulariser (terms with zero probability contribute 0).
    Lower is better (0 for identical distributions, ln 2 for disjoint ones).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def part(a: np.ndarray) -> float:
        k = a > 0
        return float(np.sum(a[k] * np.log(a[k] / m[k])))

    return float(min(max(0.5 * part(p) + 0.5 * part(q), 0.0), np.log(2.0)))


# ----------------------------------------------------------------------------------------------
# Wasserstein-1


def wasserstein_1d(u: np.ndarray, v: np.ndarray, u_weights: np.ndarray | None = None,
                   v_weights: np.ndarray | None = None) -> float:
    """Exact 1-D Wasserstein-1 ``∫ |F_u(x) - F_v(x)| dx`` between two (weighted) samples, all points.

    ``F_u, F_v`` are the empirical CDFs. Units of the inputs (TIC units here); ≥ 0, lower is better.
    """
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(u, v, u_weights, v_weights))


def transport_cost(p: np.ndarray, xp: np.ndarray | None, q: np.ndarray, xq: np.ndarray | None, *,
                   cost: np.ndarray | None = None) -> float:
    """Exact discrete optimal-transport cost ``min_π Σ π_ij c_ij`` between non-negative masses ``p``
    and ``q`` (``q`` is rescaled to the total of ``p``), by POT's network simplex (``ot.emd2``: the
    exact optimum of the transport linear program, in C++; tests check it against scipy's HiGHS).
    ``c_ij = |xp_i - xq_j|`` (Euclidean) unless the ``[len(p), len(q)]`` matrix ``cost`` is given.
    At a trial's ~200 x 200 surplus/deficit cells it takes ~5 ms where the LP through HiGHS took
    ~0.3 s (benchmarks/bench_score.py --w1)."""
    import ot
    from scipy.spatial.distance import cdist

    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    total = p.sum()
    if total <= 0 or q.sum() <= 0:
        return 0.0
    q = q * (total / q.sum())
    cost = cdist(xp, xq) if cost is None else np.asarray(cost, dtype=np.float64)
    value, log = ot.emd2(p, q, np.ascontiguousarray(cost), numItermax=TRANSPORT_MAX_ITER, log=True)
    if log.get("result_code") != 1:  # pragma: no cover - feasible and bounded; iteration cap far above need
        raise RuntimeError(f"optimal transport did not converge: {log.get('warning')}")
    return float(max(value, 0.0))


def w1_grid_edges(y_p: np.ndarray, y_q: np.ndarray, bins: int = 24) -> list[np.ndarray] | None:
    """The ``bins × bins`` grid of :func:`wasserstein_2d_grid`: the range of ``y_p`` (the reference)
    joined with the 0.1–99.9% quantile range of ``y_q`` (finite rows of the first two columns);
    None when either sample has no finite row."""
    y_p = np.asarray(y_p, dtype=np.float64)[:, :2]
    y_q = np.asarray(y_q, dtype=np.float64)[:, :2]
    y_p = y_p[np.all(np.isfinite(y_p), 1)]
    y_q = y_q[np.all(np.isfinite(y_q), 1)]
    if len(y_p) == 0 or len(y_q) == 0:
        return None
    lo = np.minimum(y_p.min(0), np.quantile(y_q, 0.001, axis=0))
    hi = np.maximum(y_p.max(0), np.quantile(y_q, 0.999, axis=0))
    return grid_edges(np.stack([lo, hi]), bins, 0.0)


def w1_cells(y: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
    """Flat cell index (``ix * ny + iy``) of each finite row of ``y`` on a W1 grid; rows beyond the grid
    are clipped onto its border cells, non-finite rows get -1."""
    y = np.asarray(y, dtype=np.float64)[:, :2]
    ok = np.all(np.isfinite(y), 1)
    lo = np.array([edges[0][0], edges[1][0]])
    hi = np.array([edges[0][-1], edges[1][-1]])
    yc = np.clip(np.where(ok[:, None], y, lo), lo, hi)
    ix, iy = bin_index(yc[:, 0], edges[0]), bin_index(yc[:, 1], edges[1])
    return np.where(ok, ix * (len(edges[1]) - 1) + iy, -1)


def w1_from_histograms(hp: np.ndarray, hq: np.ndarray, edges: list[np.ndarray], *, lost: float = 0.0,
                       lost_distance: float = 0.0) -> float:
    """Wasserstein-1 between two histograms on one W1 grid (cells as point masses at their centres).

    ``lost``: extra model mass (same units as ``hq``) that is nowhere on the grid (replica-time lost to
    blow-ups); it sits at distance ``lost_distance`` from every cell, so the reference mass it stands
    in for is transported there at that cost. W1 depends only on ``p - q`` (Kantorovich-Rubinstein):
    the surplus cells are moved onto the deficit cells (and the lost mass); shared mass stays put.
    """
    hp = np.asarray(hp, dtype=np.float64).ravel()
    hq = np.asarray(hq, dtype=np.float64).ravel()
    total_q = hq.sum() + max(float(lost), 0.0)
    if hp.sum() <= 0 or total_q <= 0:
        return float("nan")
    d = hp / hp.sum() - hq / total_q
    q_out = max(float(lost), 0.0) / total_q
    tol = 1e-14
    pos, neg = d > tol, d < -tol
    if not pos.any() or (not neg.any() and q_out <= tol):
        return 0.0
    cx = 0.5 * (edges[0][1:] + edges[0][:-1])
    cy = 0.5 * (edges[1][1:] + edges[1][:-1])
    gx, gy = np.meshgrid(cx, cy, indexing="ij")
    centres = np.column_stack([gx.ravel(), gy.ravel()])
    if q_out <= tol:
        return transport_cost(d[pos], centres[pos], -d[neg], centres[neg])
    from scipy.spatial.distance import cdist

    cost = np.column_stack([cdist(centres[pos], centres[neg]), np.full(int(pos.sum()), float(lost_distance))])
    return transport_cost(d[pos], None, np.append(-d[neg], q_out), None, cost=cost)


def wasserstein_2d_grid(y_p: np.ndarray, y_q: np.ndarray, bins: int = 24,
                        p_weights: np.ndarray | None = None) -> float:
    """Wasserstein-1 between two 2-D samples, exact on a coarse grid.

    Both samples (first two columns) are histogrammed on one ``bins × bins`` grid spanning the range
    of ``y_p`` (the reference) joined with the 0.1–99.9% quantile range of ``y_q`` (so one far outlier
    frame cannot make the grid coarse; the few frames beyond it are clipped onto the border cells,
    which can only lower the value). Each populated cell is a point mass at its centre; the exact
    transport cost between the two cell distributions (Euclidean ground metric, :func:`transport_cost`
    on the surplus/deficit cells of ``p - q``) is returned. Identical samples give exactly 0; the
    discretisation error is below one cell diagonal and in practice ≲ 1% for smooth densities (two
    unit Gaussians 1 apart: 1.0005 at 24 bins). Units of the inputs (TIC units here); ≥ 0, lower is better.
    """
    edges = w1_grid_edges(y_p, y_q, bins)
    if edges is None:
        return float("nan")
    n_cells = bins * bins
    cp, cq = w1_cells(y_p, edges), w1_cells(y_q, edges)
    w = None if p_weights is None else np.asarray(p_weights, dtype=np.float64)[cp >= 0]
    hp = np.bincount(cp[cp >= 0], weights=w, minlength=n_cells).astype(np.float64)
    hq = np.bincount(cq[cq >= 0], minlength=n_cells).astype(np.float64)
    return w1_from_histograms(hp, hq, edges)


# ----------------------------------------------------------------------------------------------
# FES comparison


def fes_mse(f_ref: np.ndarray, f_model: np.ndarray, *, aligned: bool = False) -> float:
    """Mean squared FES difference over bins populated in both, in (kcal/mol)².

    Both surfaces are as given (each shifted to min 0 by :func:`free_energy`). With ``aligned`` the
    constant offset that minimises the MSE (the mean difference) is removed first, which makes the
    value independent of the arbitrary zero of each free energy. NaN if no bin is shared.
    Lower is better.
    """
    a, b = np.asarray(f_ref, dtype=np.float64), np.asarray(f_model, dtype=np.float64)
    both = np.isfinite(a) & np.isfinite(b)
    if not both.any():
        return float("nan")
    d = b[both] - a[both]
    if aligned:
        d = d - d.mean()
    return float(np.mean(d * d))


def coverage(h_ref: np.ndarray, h_model: np.ndarray, *, weighted: bool = False) -> float:
    """Fraction of reference-populated bins that the model visits (0-1, higher is better).

    With ``weighted``: the reference probability mass in those bins instead of their number.
    """
    r, m = np.asarray(h_ref) > 0, np.asarray(h_model) > 0
    if not r.any():
        return float("nan")
    if weighted:
        h = np.asarray(h_ref, dtype=np.float64)
        return float(h[r & m].sum() / h[r].sum())
    return float(np.count_nonzero(r & m) / np.count_nonzero(r))


# ----------------------------------------------------------------------------------------------
# structure: folded population and chirality


def folded_fraction(rmsd_native_A: np.ndarray, threshold_A: float, weights: np.ndarray | None = None) -> float:
    """Fraction of frames with Cα RMSD to native below ``threshold_A`` (Å); (weighted) mean of an
    indicator, 0-1. Compare model with reference: the error |model - reference| is lower-is-better."""
    return float(np.average(np.asarray(rmsd_native_A) < threshold_A, weights=weights))


def mirror_fraction(rmsd_native_A: np.ndarray, rmsd_mirror_A: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Fraction of frames closer to the mirror image of native than to native,
    ``mean[RMSD(x, mirror) < RMSD(x, native)]`` (0-1). Unfolded frames fall on either side by
    chance; a folded model with the wrong hand gives values near 1. Compare with the reference."""
    return float(np.average(np.asarray(rmsd_mirror_A) < np.asarray(rmsd_native_A), weights=weights))


# ----------------------------------------------------------------------------------------------
# basins and transitions (trapping)


_NEIGHBOURS = [(-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1)]


def _shift(a: np.ndarray, dx: int, dy: int, fill: float) -> np.ndarray:
    """``out[i, j] = a[i + dx, j + dy]`` (``fill`` outside)."""
    out = np.full(a.shape, fill, dtype=a.dtype)
    nx, ny = a.shape
    xs_dst = slice(max(-dx, 0), nx - max(dx, 0))
    ys_dst = slice(max(-dy, 0), ny - max(dy, 0))
    xs_src = slice(max(dx, 0), nx - max(-dx, 0))
    ys_src = slice(max(dy, 0), ny - max(-dy, 0))
    out[xs_dst, ys_dst] = a[xs_src, ys_src]
    return out


def find_basins(fes: np.ndarray, prob: np.ndarray, kT: float, merge_kT: float = 1.5,
                min_population: float = 0.01) -> tuple[np.ndarray, np.ndarray]:
    """Basins of a 2-D free-energy surface: steepest descent to local minima, then merging.

    1. every populated bin (finite ``fes``) follows its lowest 8-neighbour downhill to a local minimum;
    2. two adjacent basins are merged while the barrier of the shallower one (its saddle to the other,
       the lowest ``max(F_u, F_v)`` over adjacent bin pairs, minus its minimum) is below ``merge_kT·kT``;
    3. basins holding less than ``min_population`` of ``prob`` are merged into their
       lowest-saddle neighbour (isolated ones are dropped: label -1).

    Returns ``labels`` (same shape as ``fes``, -1 = no basin) with basins numbered by increasing
    minimum free energy (basin 0 = the deepest well), and each basin's minimum free energy.
    """
    f = np.asarray(fes, dtype=np.float64)
    pop = np.isfinite(f)
    if not pop.any():
        return np.full(f.shape, -1, np.int64), np.zeros(0)
    fz = np.where(pop, f, np.inf)
    labels, roots = _descend_to_minima(fz, pop)
    n_b = len(roots)
    prob = np.asarray(prob, dtype=np.float64).ravel()
    merger = _BasinMerger(parent=list(range(n_b)), minf=fz.ravel()[roots],
                          pop=np.bincount(labels[labels >= 0], weights=prob[labels >= 0], minlength=n_b),
                          saddle=_saddles(labels.reshape(f.shape), fz))
    merger.merge_shallow(merge_kT * kT)
    merger.absorb_small(min_population)
    final = np.array([merger.find(a) for a in range(n_b)], dtype=np.int64)
    keep = sorted({int(x) for x in final if x >= 0}, key=lambda r: merger.minf[r])
    order = {r: k for k, r in enumerate(keep)}
    out = np.array([order.get(int(final[x]), -1) if x >= 0 else -1 for x in labels], dtype=np.int64)
    return out.reshape(f.shape), np.array([merger.minf[r] for r in keep])


def _descend_to_minima(fz: np.ndarray, pop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each bin follows its lowest 8-neighbour (itself if none is lower) to a local minimum: flat labels
    0..n−1 of the minima reached (−1 = unpopulated bin) and the flat index of each minimum."""
    nx, ny = fz.shape
    flat_idx = np.arange(nx * ny).reshape(nx, ny)
    best_val, best_idx = fz.copy(), flat_idx.copy()
    for dx, dy in _NEIGHBOURS:
        v = _shift(fz, dx, dy, np.inf)
        better = v < best_val
        best_val = np.where(better, v, best_val)
        best_idx = np.where(better, _shift(flat_idx, dx, dy, -1), best_idx)
    ptr = best_idx.ravel().copy()
    for _ in range(nx * ny):  # pointer jumping to the minima
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            break
        ptr = nxt
    lab = np.where(pop.ravel(), ptr, -1)
    roots = np.unique(lab[lab >= 0])
    remap = {int(r): k for k, r in enumerate(roots)}
    return np.array([remap.get(int(x), -1) for x in lab], dtype=np.int64), roots


def _saddles(lab2: np.ndarray, fz: np.ndarray) -> dict[tuple[int, int], float]:
    """Saddle of each pair of adjacent basins: the lowest max(F_u, F_v) over adjacent bins u, v across them."""
    saddle: dict[tuple[int, int], float] = {}
    for dx, dy in _NEIGHBOURS[4:]:  # each unordered neighbour direction once
        other = _shift(lab2, dx, dy, -1)
        fo = _shift(fz, dx, dy, np.inf)
        m = (lab2 >= 0) & (other >= 0) & (lab2 != other)
        for a, b, h in zip(lab2[m], other[m], np.maximum(fz[m], fo[m])):
            key = (min(int(a), int(b)), max(int(a), int(b)))
            if h < saddle.get(key, np.inf):
                saddle[key] = float(h)
    return saddle


@dataclass
class _BasinMerger:
    """Basins being merged: union-find ``parent`` (−1 = dropped), each root's minimum free energy and
    population, and the saddles between the current roots."""

    parent: list[int]
    minf: np.ndarray
    pop: np.ndarray
    saddle: dict[tuple[int, int], float]

    def find(self, a: int) -> int:
        """Root of a's basin, or -1 if it was dropped."""
        while self.parent[a] != a:
            if self.parent[a] == -1:
                return -1
            a = self.parent[a]
        return a

    def merge(self, a: int, b: int) -> None:
        """Merge basin b into a (the merged basin keeps the deeper minimum's root)."""
        if self.minf[b] < self.minf[a]:
            a, b = b, a
        self.parent[b] = a
        self.minf[a] = min(self.minf[a], self.minf[b])
        self.pop[a] += self.pop[b]
        for (u, v), h in list(self.saddle.items()):
            if b in (u, v):
                del self.saddle[(u, v)]
                c = v if u == b else u
                if c == a:
                    continue
                key = (min(a, c), max(a, c))
                self.saddle[key] = min(self.saddle.get(key, np.inf), h)

    def barrier(self, pair: tuple[int, int]) -> float:
        """The shallower basin's barrier to the other: saddle − its minimum."""
        a, b = pair
        return self.saddle[pair] - max(self.minf[a], self.minf[b])

    def merge_shallow(self, threshold: float) -> None:
        """Merge the pair with the lowest barrier while that barrier is below ``threshold``."""
        while self.saddle:
            pair = min(self.saddle, key=self.barrier)
            if self.barrier(pair) >= threshold:
                break
            self.merge(*pair)

    def absorb_small(self, min_population: float) -> None:
        """Merge the smallest basin below ``min_population`` into its lowest-saddle neighbour (drop it if
        it has none), while such a basin and another basin exist."""
        while True:
            alive = [a for a in range(len(self.parent)) if self.parent[a] == a]
            small = [a for a in alive if self.pop[a] < min_population]
            if not small or len(alive) <= 1:
                break
            a = min(small, key=lambda x: self.pop[x])
            nbrs = [(h, v if u == a else u) for (u, v), h in self.saddle.items() if a in (u, v)]
            if nbrs:
                self.merge(min(nbrs)[1], a)
            else:
                self.parent[a] = -1  # isolated and tiny: not a basin
                self.pop[a] = np.inf


def core_labels(labels: np.ndarray, fes: np.ndarray, basin_min: np.ndarray, kT: float,
                core_kT: float = 1.0) -> np.ndarray:
    """Per bin: its basin if ``F - F_min(basin) <= core_kT·kT`` (the basin's core), else -1."""
    f = np.asarray(fes, dtype=np.float64)
    lab = np.asarray(labels)
    out = np.full(lab.shape, -1, np.int64)
    ok = lab >= 0
    depth = np.where(ok, f - np.asarray(basin_min)[np.clip(lab, 0, None)], np.inf)
    core = ok & np.isfinite(depth) & (depth <= core_kT * kT)
    out[core] = lab[core]
    return out


def count_transitions(core_seq: np.ndarray) -> int:
    """Transitions between cores along one trajectory (milestoning: frames outside every core keep
    the last core visited; the frames before the first core are ignored)."""
    c = np.asarray(core_seq)
    c = c[c >= 0]
    return int(np.count_nonzero(c[1:] != c[:-1])) if len(c) > 1 else 0


def lookup_grid(y: np.ndarray, edges_x: np.ndarray, edges_y: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Value of an integer ``grid`` at each frame's bin (first two TICs); -1 outside the grid."""
    ix, iy = bin_index(y[:, 0], edges_x), bin_index(y[:, 1], edges_y)
    out = np.full(len(y), -1, np.int64)
    inside = (ix >= 0) & (iy >= 0)
    out[inside] = grid[ix[inside], iy[inside]]
    return out
