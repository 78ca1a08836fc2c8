"""Group-sequential paired design: spending functions, boundaries at the looks, the per-look
decision rule across weights, the boundary-adjusted p-value and the repeated confidence interval.

A study analysed at looks of n_1 < ... < n_K pairs has information fractions t_k = n_k / n_K. The
canonical joint distribution (Jennison & Turnbull 2000, "J&T", ch. 3): Z_k ~ N(θ√t_k, 1) with
corr(Z_i, Z_j) = √(t_i/t_j) for i ≤ j. A spending function α(t) (α(0) = 0, α(1) = α) fixes the
error spent by look k; the boundary c_k solves P_0(no crossing before k, crossing at k) = α(t_k) −
α(t_{k−1}) (Lan & DeMets 1983). Look k's nominal level is what c_k means for a p-value: 2(1 −
Φ(c_k)) two-sided, 1 − Φ(c_k) one-sided. The decision test of the fixed design (exact sign-flip or
paired t) gives each look's p-value, compared with that level (J&T §3.8, the significance-level
approach: exact for z, measured by simulation for these tests,
benchmarks/sequential_calibration.py).

Decisions (:func:`decide_look`), per look, only when the look is converged:

- efficacy: Holm across the weights in the group-sequential form of Maurer & Bretz (2013): with r
  hypotheses not yet rejected (weights stopped for equivalence or futility still count: their share
  of α is not handed on), a weight is rejected when its p ≤ the look's nominal level of the design
  at α/r; each rejection lowers r and the look is tested again. Closed testing with Bonferroni
  intersection tests of group-sequential tests: the family-wise error is ≤ α over looks and
  weights.
- equivalence (default futility rule): two one-sided tests of the same kind against ±margin, each
  compared with the one-sided design at α/r (same spending function, same Holm step-down): the
  chance of "equivalent" at a true difference equal to the margin is ≤ α over all looks.
- conditional power (the other futility rule): stop when the chance to cross the final boundary at
  the spec's target effect, given the look's z, is below a stated level. Non-binding, as
  equivalence is: the efficacy boundaries ignore futility stops, so stopping for futility only
  lowers the error.

Reported per weight: the stagewise-ordered boundary-adjusted p-value (J&T §8.4;
:func:`stagewise_p`) and the repeated confidence interval of the look it stopped at (J&T ch. 9;
:func:`repeated_interval`): the decision test inverted at the look's nominal level of the design at
α/m (m weights), so the intervals of all looks and weights cover together with probability ≥ 1 − α
whenever the study stops.

Written here by hand, because neither scipy nor statsmodels has group-sequential boundaries: the
spending functions (two formulas), the recursive numerical integration of the canonical
distribution (Armitage, McPherson & Rowe 1969, on Simpson grids as in J&T ch. 19) and the step-down
bookkeeping. ``scipy.stats.multivariate_normal`` gives the same rectangle probabilities (tested),
but its quasi-Monte Carlo takes seconds per 5-look rectangle and its noise (~1e-7) makes root
finding jagged. From scipy: the normal distribution, ``brentq``; the tests are raycg.stats'
(sign-flip, paired t).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

from raycg.stats.intervals import t_interval
from raycg.stats.paired import paired_t, tost_paired
from raycg.stats.signflip import (
    MC_RESAMPLES,
    is_exact,
    signflip_interval,
    signflip_p,
    signflip_tost,
    smallest_p,
)

#: Spending functions: Lan–DeMets O'Brien–Fleming type (default) and Pocock type.
SPENDING = ("obrien-fleming", "pocock")
#: Futility rules: equivalence TOST against the margin (default), conditional power, none.
FUTILITY = ("equivalence", "conditional-power", "none")
#: Why a weight stopped (codes of :func:`decide_look`'s ``reason``; -1: still running).
REASONS = ("efficacy", "equivalence", "futility", "max")
DECISION_TESTS = ("sign-flip", "paired-t")
#: Simpson nodes per look (odd), and where a side without boundary is cut (SDs from the mean).
_NODES = 201
_TAIL = 12.0


def spent(
    t: float | np.ndarray, alpha: float, spending: str = "obrien-fleming"
) -> np.ndarray | float:
    """Cumulative error spent at information fraction ``t`` (clipped to [0, 1]); α at t = 1.

    ``obrien-fleming``: 2 − 2Φ(z_{1−α/2}/√t) (Lan & DeMets 1983); ``pocock``: α·ln(1 + (e − 1)t).
    The same function serves a two-sided test at α and a one-sided test at α.
    """
    x = np.clip(np.asarray(t, dtype=float), 0.0, 1.0)
    if spending == "obrien-fleming":
        with np.errstate(divide="ignore"):
            out = 2.0 * stats.norm.sf(stats.norm.isf(alpha / 2.0) / np.sqrt(x))
    elif spending == "pocock":
        out = alpha * np.log1p((math.e - 1.0) * x)
    else:
        raise ValueError(f"spending {spending!r} unknown; use one of {', '.join(SPENDING)}")
    return np.where(x > 0, out, 0.0)[()]


def _check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    t = tuple(float(x) for x in fractions)
    if not t or any(not 0 < x <= 1 for x in t) or any(b <= a for a, b in zip(t, t[1:])):
        raise ValueError(
            f"information fractions must increase strictly within (0, 1], got {list(t)}"
        )
    return t


def _simpson(lo: float, hi: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(lo, hi, n)
    w = np.ones(n)
    w[1:-1:2], w[2:-1:2] = 4.0, 2.0
    return x, w * (hi - lo) / (3.0 * (n - 1))


class _Walk:
    """The score S_k = Z_k·√t_k (independent N(θΔ, Δ) increments) continued look by look: the
    density of S on the continuation region of the last look, on Simpson nodes."""

    def __init__(self, fractions: tuple[float, ...], sides: int, drift: float):
        self.t, self.sides, self.drift = fractions, sides, drift
        steps = np.diff((0.0, *fractions))
        self.nodes = max(_NODES, 2 * math.ceil(96.0 / math.sqrt(min(steps))) + 1)  # h ≤ √Δ/8
        self.k = -1
        self.x = self.g = None  # nodes and weight × density after look k

    def _region(self, k: int, c: float) -> tuple[float, float]:
        """Continuation region of S at look k (boundary c on the z scale), cut at ±_TAIL SDs."""
        mean, sd = self.drift * self.t[k], math.sqrt(self.t[k])
        lo, hi = mean - _TAIL * sd, mean + _TAIL * sd
        if math.isfinite(c):
            hi = min(hi, c * sd)
            if self.sides == 2:
                lo = max(lo, -c * sd)
        return lo, hi

    def exits(self, c: float) -> float:
        """P(no crossing before the next look, crossing it at boundary ``c``)."""
        k = self.k + 1
        t = self.t[k]
        if not math.isfinite(c):
            return 0.0
        if k == 0:
            up = stats.norm.sf(c - self.drift * math.sqrt(t))
            low = stats.norm.cdf(-c - self.drift * math.sqrt(t)) if self.sides == 2 else 0.0
            return float(up + low)
        dt = t - self.t[k - 1]
        b, shift, sd = c * math.sqrt(t), self.x + self.drift * dt, math.sqrt(dt)
        p = stats.norm.sf((b - shift) / sd)
        if self.sides == 2:
            p = p + stats.norm.cdf((-b - shift) / sd)
        return float(np.dot(self.g, p))

    def advance(self, c: float) -> None:
        """Move to the next look with boundary ``c`` (∞: no boundary there)."""
        k = self.k + 1
        t = self.t[k]
        lo, hi = self._region(k, c)
        if not hi > lo:  # nothing continues
            self.k, self.x, self.g = k, np.array([lo]), np.array([0.0])
            return
        y, w = _simpson(lo, hi, self.nodes)
        if k == 0:
            f = stats.norm.pdf((y - self.drift * t) / math.sqrt(t)) / math.sqrt(t)
        else:
            dt = t - self.t[k - 1]
            sd = math.sqrt(dt)
            u = (y[:, None] - self.x[None, :] - self.drift * dt) / sd
            f = np.exp(-0.5 * u * u) @ self.g / (sd * math.sqrt(2.0 * math.pi))
        self.k, self.x, self.g = k, y, w * f


def crossing_probabilities(
    bounds: Sequence[float], fractions: Sequence[float], sides: int = 2, drift: float = 0.0
) -> np.ndarray:
    """P(first crossing at look k), k = 1..K, for boundaries ``bounds`` on the z scale (|Z_k| ≥ c_k
    two-sided, Z_k ≥ c_k one-sided; ∞: none) when E[Z_k] = ``drift``·√t_k."""
    t = _check_fractions(fractions)
    if len(bounds) != len(t):
        raise ValueError(f"{len(bounds)} boundaries for {len(t)} looks")
    walk, out = _Walk(t, sides, float(drift)), []
    for c in bounds:
        out.append(walk.exits(float(c)))
        if len(out) < len(t):
            walk.advance(float(c))
    return np.array(out)


@dataclass(frozen=True)
class Boundaries:
    """A design's boundaries: ``z[k]`` (∞ where nothing is spent) and ``cumulative[k]`` = α(t_k)."""

    fractions: tuple[float, ...]
    alpha: float
    spending: str
    sides: int
    z: tuple[float, ...]
    cumulative: tuple[float, ...]

    @property
    def nominal(self) -> tuple[float, ...]:
        """Per-look p-value levels: 2(1 − Φ(c_k)) two-sided, 1 − Φ(c_k) one-sided (0 where
        c_k = ∞)."""
        return tuple(float(self.sides * stats.norm.sf(c)) for c in self.z)


@lru_cache(maxsize=4096)
def _boundaries(t: tuple[float, ...], alpha: float, spending: str, sides: int) -> Boundaries:
    # two-sided: each side is the one-sided design at α/2 (the convention of ldbounds and gsDesign)
    cum = [
        float(2.0 * spent(x, alpha / 2.0, spending) if sides == 2 else spent(x, alpha, spending))
        for x in t
    ]
    walk, z = _Walk(t, sides, 0.0), []
    for k, target in enumerate(np.diff((0.0, *cum))):
        if target <= 1e-15:
            c = math.inf
        else:
            lo = 0.0 if sides == 2 else -10.0
            c = optimize.brentq(lambda c, q=target: walk.exits(c) - q, lo, 40.0, xtol=1e-10)
        z.append(float(c))
        if k < len(t) - 1:
            walk.advance(c)
    return Boundaries(t, alpha, spending, sides, tuple(z), tuple(cum))


def boundaries(
    fractions: Sequence[float], alpha: float, spending: str = "obrien-fleming", sides: int = 2
) -> Boundaries:
    """Error-spending boundaries at ``fractions`` (strictly increasing in (0, 1]) for level
    ``alpha``.

    Each c_k depends on the looks up to k only, so the boundaries of the first looks stay valid
    when more looks follow. Cached. ``sides`` 2: |Z| ≥ c (symmetric); 1: Z ≥ c.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if sides not in (1, 2):
        raise ValueError(f"sides must be 1 or 2, got {sides}")
    if spending not in SPENDING:
        raise ValueError(f"spending {spending!r} unknown; use one of {', '.join(SPENDING)}")
    t = tuple(round(x, 12) for x in _check_fractions(fractions))
    return _boundaries(t, float(alpha), spending, sides)


def constant_boundaries(
    looks: int, alpha: float = 0.05, shape: str = "pocock", sides: int = 2
) -> np.ndarray:
    """Classical boundaries for ``looks`` equally spaced looks: Pocock's (c_k = C) or O'Brien &
    Fleming's (c_k = C·√(K/k)), C solving a total crossing probability of ``alpha`` (J&T tables
    2.1, 2.3)."""
    t = tuple((np.arange(looks) + 1.0) / looks)
    scale = np.ones(looks) if shape == "pocock" else np.sqrt(looks / (np.arange(looks) + 1.0))
    if shape not in ("pocock", "obrien-fleming"):
        raise ValueError(f"shape {shape!r} unknown; use pocock or obrien-fleming")
    c = optimize.brentq(
        lambda c: crossing_probabilities(c * scale, t, sides).sum() - alpha, 0.5, 10.0, xtol=1e-10
    )
    return c * scale


def stagewise_p(bounds: Boundaries, look: int, z: float) -> float:
    """Stagewise-ordered p-value of stopping at ``look`` (0-based) with statistic ``z`` (|z|
    for two sides): 1 − P_0(no crossing before ``look`` and a statistic at ``look`` less extreme
    than ``z``). ≤ α(t_look) exactly when z crossed that look's boundary; at the last look, ≤ α iff
    it did."""
    if math.isnan(z):
        return float("nan")
    zz = abs(z) if bounds.sides == 2 else z
    b = [*bounds.z[:look], zz]
    return float(
        min(1.0, crossing_probabilities(b, bounds.fractions[: look + 1], bounds.sides).sum())
    )


def p_to_z(p: np.ndarray, sides: int = 2) -> np.ndarray:
    """The z a p-value corresponds to: Φ^{-1}(1 − p/2) two-sided, Φ^{-1}(1 − p) one-sided."""
    return stats.norm.isf(np.asarray(p, dtype=float) / sides)[()]


# --- designs over the pairs each weight has at each look ------------------------------------------


def pair_fractions(
    pairs: Sequence[int], max_pairs: int, n_looks: int | None = None
) -> list[float | None]:
    """Information fraction of each look from its complete pairs: n_k / ``max_pairs``; the design's
    last look (index ``n_looks`` − 1; default: the last given) gets 1, as it spends what is left.
    None where a look adds no pair (or has fewer than 2): no test there."""
    last_look = len(pairs) - 1 if n_looks is None else n_looks - 1
    out: list[float | None] = []
    last_n, last_f = 0, 0.0
    for k, n in enumerate(pairs):
        n = int(n)
        frac = 1.0 if k == last_look else min(n / max_pairs, 1.0)
        if n < 2 or n <= last_n or frac <= last_f:
            out.append(None)
            continue
        out.append(frac)
        last_n, last_f = n, frac
    return out


def look_levels(
    pairs: Sequence[int],
    max_pairs: int,
    alpha: float,
    spending: str = "obrien-fleming",
    sides: int = 2,
    n_looks: int | None = None,
) -> np.ndarray:
    """Nominal level of each look (0 where no test: see :func:`pair_fractions`) for level
    ``alpha``."""
    fr = pair_fractions(pairs, max_pairs, n_looks)
    idx = [k for k, f in enumerate(fr) if f is not None]
    out = np.zeros(len(fr))
    if idx:
        out[idx] = boundaries([fr[k] for k in idx], alpha, spending, sides).nominal
    return out


def look_design(
    pairs: Sequence[int],
    max_pairs: int,
    look: int,
    alpha: float,
    spending: str = "obrien-fleming",
    sides: int = 2,
    n_looks: int | None = None,
) -> tuple[Boundaries, int] | None:
    """(boundaries over the tested looks up to ``look``, index of ``look`` in them); None when
    ``look`` has no test."""
    fr = pair_fractions(pairs, max_pairs, n_looks)
    if fr[look] is None:
        return None
    idx = [k for k in range(look + 1) if fr[k] is not None]
    return boundaries([fr[k] for k in idx], alpha, spending, sides), len(idx) - 1


def level_table(
    pairs: np.ndarray,
    max_pairs: int,
    alpha: float,
    spending: str = "obrien-fleming",
    sides: int = 2,
    weights: int = 1,
) -> np.ndarray:
    """(K looks, m Holm steps, m weights): the nominal level at look k of weight i's design at
    α/r, r = 1..m. ``pairs``: (K, m) complete pairs per look and weight, or (K,) shared by
    ``weights``."""
    p = np.asarray(pairs, dtype=int)
    shared = p.ndim == 1
    m = weights if shared else p.shape[1]
    out = np.zeros((p.shape[0], m, m))
    for i in range(1 if shared else m):
        for r in range(1, m + 1):
            out[:, r - 1, i] = look_levels(
                p if shared else p[:, i], max_pairs, alpha / r, spending, sides
            )
    if shared:
        out[:] = out[:, :, :1]
    return out


# --- the decision test at a look, and its interval ------------------------------------------------


def look_tests(
    d: np.ndarray, decision_test: str = "sign-flip", margin: float | None = None
) -> dict[str, np.ndarray]:
    """The decision test of differences ``d`` (..., n): ``p`` (two-sided), ``mean``, ``n`` and,
    with a ``margin``, ``tost_p`` (max of the two one-sided p-values). Vectorised over leading
    axes."""
    a = np.asarray(d, dtype=float)
    if decision_test not in DECISION_TESTS:
        raise ValueError(
            f"decision_test {decision_test!r} unknown; use one of {', '.join(DECISION_TESTS)}"
        )
    n = a.shape[-1]
    zero = np.zeros_like(a)
    if decision_test == "sign-flip":
        p = signflip_p(a) if n >= 2 else np.full(a.shape[:-1], np.nan)[()]
    else:
        p = paired_t(zero, a)["p"] if n >= 2 else np.full(a.shape[:-1], np.nan)[()]
    with np.errstate(invalid="ignore"):
        out = {
            "p": np.asarray(p, dtype=float)[()],
            "mean": a.mean(-1) if n else np.full(a.shape[:-1], np.nan),
            "n": n,
        }
    if margin is not None:
        if n < 2:
            out["tost_p"] = np.full(a.shape[:-1], np.nan)[()]
        elif decision_test == "sign-flip":
            out["tost_p"] = signflip_tost(a, margin)["p"]
        else:
            out["tost_p"] = tost_paired(zero, a, margin)["p"]
    return out


def repeated_interval(
    d: np.ndarray, level: float, decision_test: str = "sign-flip"
) -> tuple[np.ndarray, np.ndarray]:
    """Repeated confidence interval at one look: the decision test inverted at the look's
    nominal two-sided ``level`` (the set of shifts δ it does not reject at that level; sign-flip:
    NaN bounds where it cannot reach ``level`` with these pairs, i.e. (−∞, ∞); paired t: the 1 −
    level t interval)."""
    a = np.asarray(d, dtype=float)
    if not 0 < level < 1:
        nan = np.full(a.shape[:-1], np.nan)[()]
        return nan, nan
    if decision_test == "sign-flip":
        return signflip_interval(a, level)
    return t_interval(a, 1.0 - level)


def smallest_level(n: int, decision_test: str = "sign-flip", sides: int = 2) -> float:
    """Smallest p-value the decision test can give with ``n`` pairs (0: any level is reachable)."""
    if n < 2:
        return 1.0
    if decision_test != "sign-flip":
        return 0.0
    if sides == 2:
        return smallest_p(n)
    return 2.0**-n if is_exact(n) else 1.0 / (1 + MC_RESAMPLES)


def conditional_power(z: np.ndarray, t: float, final_bound: float, drift: float) -> np.ndarray:
    """Chance that the final |Z| crosses ``final_bound`` in the observed direction, given |``z``| at
    information fraction ``t`` < 1 and drift ``drift`` (E[Z at t = 1]) in that direction
    (the B-value: B(1) − B(t) ~ N(drift·(1 − t), 1 − t)). Intermediate looks are ignored."""
    zz = np.abs(np.asarray(z, dtype=float))
    if not t < 1:
        return np.full(zz.shape, np.nan)[()]
    return stats.norm.sf(
        (final_bound - zz * math.sqrt(t) - abs(drift) * (1.0 - t)) / math.sqrt(1.0 - t)
    )[()]


# --- the per-look decision ------------------------------------------------------------------------


def new_state(shape: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Decision state of studies of shape ``shape[:-1]`` with ``shape[-1]`` weights: nothing
    decided."""
    return {
        "stopped": np.zeros(shape, bool),
        "rejected": np.zeros(shape, bool),
        "eq_rejected": np.zeros(shape, bool),
        "look": np.full(shape, -1),
        "reason": np.full(shape, -1),
        "status": np.full(shape, -1),
        "r": np.full(shape, shape[-1]),
        "level": np.full(shape, np.nan),
        "eq_level": np.full(shape, np.nan),
        "cp": np.full(shape, np.nan),
    }


def _step_down(
    ok: np.ndarray, p: np.ndarray, levels: np.ndarray, done: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Holm step-down at one look: (rejected now, the level each weight was last compared with, and
    the r of that level). ``levels``: (m steps, m weights); ``done``: rejected at earlier looks."""
    m = p.shape[-1]
    now = np.zeros(p.shape, bool)
    lvl_at, r_at = np.full(p.shape, np.nan), np.full(p.shape, m)
    while True:
        r = np.maximum(m - (done | now).sum(-1), 1)
        lvl = np.take_along_axis(
            np.broadcast_to(levels, p.shape[:-1] + levels.shape[-2:]),
            (r - 1)[..., None, None],
            axis=-2,
        )[..., 0, :]
        lvl_at = np.where(now, lvl_at, lvl)
        r_at = np.where(now, r_at, r[..., None])
        cand = ok & ~now & ~done & (p <= lvl)
        if not cand.any():
            return now, lvl_at, r_at
        now |= cand


def decide_look(
    state: dict[str, np.ndarray],
    look: int,
    p: np.ndarray,
    better: np.ndarray,
    eff_levels: np.ndarray,
    *,
    final: bool,
    converged: np.ndarray | bool = True,
    tost_p: np.ndarray | None = None,
    eq_levels: np.ndarray | None = None,
    cp: np.ndarray | None = None,
    futility_power: float | None = None,
) -> dict[str, np.ndarray]:
    """One look's decisions for the weights still running (vectorised over studies, last axis the
    m weights); returns the updated ``state`` (:func:`new_state`).

    ``p``/``tost_p``: the decision test's two-sided / TOST p-values at this look; ``better``: the
    difference is in the metric's good direction; ``eff_levels``/``eq_levels``: (m, m) nominal
    levels [Holm step r − 1, weight] of the two- and one-sided designs at α/r; ``cp``: conditional
    power (stop below ``futility_power``). An unconverged look (``converged`` False) stops nothing
    for efficacy, equivalence or futility; at the ``final`` look every running weight stops ("max").
    Statuses index raycg.stats.study.STATUSES.
    """
    s = {k: v.copy() for k, v in state.items()}
    p = np.asarray(p, dtype=float)
    running = ~s["stopped"]
    conv = np.broadcast_to(
        np.asarray(converged, bool)[..., None]
        if np.ndim(converged)
        else np.asarray(converged, bool),
        p.shape,
    )
    ok = running & conv & np.isfinite(p)
    rej, lvl, r_at = _step_down(ok, p, np.asarray(eff_levels, float), s["rejected"])
    s["level"] = np.where(running, lvl, s["level"])
    s["r"] = np.where(running, r_at, s["r"])
    eq = np.zeros(p.shape, bool)
    if tost_p is not None and eq_levels is not None:
        tp = np.asarray(tost_p, dtype=float)
        eq, eq_lvl, _ = _step_down(
            running & conv & np.isfinite(tp), tp, np.asarray(eq_levels, float), s["eq_rejected"]
        )
        s["eq_level"] = np.where(running, eq_lvl, s["eq_level"])
    fut = np.zeros(p.shape, bool)
    if cp is not None and futility_power is not None and not final:
        c = np.asarray(cp, dtype=float)
        s["cp"] = np.where(running, c, s["cp"])
        fut = ok & ~rej & ~eq & (c < futility_power)
    s["rejected"] |= rej
    s["eq_rejected"] |= eq
    better = np.asarray(better, bool)
    stop = [(rej, 0, np.where(better, 0, 1)), (eq & ~rej, 1, 2), (fut, 2, 3)]
    if final:
        unknown = ~conv | ~np.isfinite(p)
        stop.append((running & ~rej & ~eq & ~fut, 3, np.where(unknown, 4, 3)))
    for mask, reason, status in stop:
        mask = mask & ~s["stopped"]
        s["stopped"] |= mask
        s["look"] = np.where(mask, look, s["look"])
        s["reason"] = np.where(mask, reason, s["reason"])
        s["status"] = np.where(mask, status, s["status"])
    return s


def sequential_decisions(
    p: np.ndarray,
    better: np.ndarray,
    eff_levels: np.ndarray,
    *,
    converged: np.ndarray | None = None,
    tost_p: np.ndarray | None = None,
    eq_levels: np.ndarray | None = None,
    cp: np.ndarray | None = None,
    futility_power: float | None = None,
) -> dict[str, np.ndarray]:
    """:func:`decide_look` over all K looks: ``p``, ``better``, ``tost_p``, ``cp``: (..., K,
    m); ``eff_levels``/``eq_levels``: (K, m, m) (:func:`level_table`); ``converged``: (..., K).
    Returns the final state: ``look`` (0-based look each weight stopped at), ``reason``,
    ``status``."""
    p = np.asarray(p, dtype=float)
    k_looks = p.shape[-2]
    state = new_state(p.shape[:-2] + p.shape[-1:])
    for k in range(k_looks):
        state = decide_look(
            state,
            k,
            p[..., k, :],
            np.asarray(better)[..., k, :],
            eff_levels[k],
            final=k == k_looks - 1,
            converged=True if converged is None else converged[..., k],
            tost_p=None if tost_p is None else tost_p[..., k, :],
            eq_levels=None if eq_levels is None else eq_levels[k],
            cp=None if cp is None else cp[..., k, :],
            futility_power=futility_power,
        )
    return state
