"""Convergence diagnostics of one trial: is the model's sample long enough to speak for its equilibrium?

Four checks, thresholds from :class:`EvalConfig` (METRICS.md, "Convergence"): simulated time vs the
slower of the reference's and the model's slowest implied timescale (ps); folding/unfolding crossings
per replica; drift between the runs' halves and start-basin dependence (two permutation tests,
``Convergence.tests``, which a study holds to a family-wise α). A check that cannot be assessed does not
fail the trial (it is listed in ``notes``); ``Convergence.run_longer_factor`` says how much longer to run.
Each check in detail: docs/architecture.md ("raycg.evaluate.convergence").
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from raycg.evaluate import metrics as M
from raycg.evaluate.config import EvalConfig


@dataclass
class PermutationCheck:
    """A check decided by a permutation test (drift, start basins): its p-value, the α it is held to,
    and what a failure means. Kept apart from the fixed checks so that a study can hold its trials'
    tests to a family-wise α (:func:`raycg.stats.study_convergence_gate`)."""

    p: float
    alpha: float
    finding: str                  # what a failure found, e.g. "the first and second halves of the runs differ ..."
    effect: str                   # its size, e.g. "JS 0.03 vs 0.02 typical under stationarity"
    meaning: str                  # what a failure says about the run, e.g. "the runs still drift"
    p_adjusted: float | None = None   # Holm-adjusted over ``family_size`` trials (None: this trial alone)
    family_size: int = 1

    @property
    def fails(self) -> bool:
        return (self.p if self.p_adjusted is None else self.p_adjusted) < self.alpha

    def reason(self) -> str:
        if self.p_adjusted is None:
            test = f"permutation p = {self.p:.2g} < {self.alpha:g}"
        else:
            test = (f"permutation p = {self.p:.2g}, Holm-adjusted over {self.family_size} trials "
                    f"{self.p_adjusted:.2g} < {self.alpha:g}")
        return f"{self.finding} ({self.effect}, {test}): {self.meaning}"


@dataclass
class Convergence:
    """Verdict of the convergence diagnostics of one trial (saved in scores.json under "convergence").

    ``failed_checks``: the fixed checks (time, crossings) that failed; ``tests``: the assessable
    permutation-test checks by name ("drift", "start_basins"). ``reasons`` joins the failures of both;
    ``converged`` is True when there are none."""

    failed_checks: list[str] = field(default_factory=list)
    diagnostics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)          # checks that could not be assessed
    tests: dict[str, PermutationCheck] = field(default_factory=dict)

    @property
    def reasons(self) -> list[str]:
        """Why not converged (empty when converged)."""
        return list(self.failed_checks) + [t.reason() for t in self.tests.values() if t.fails]

    @property
    def converged(self) -> bool:
        return not self.reasons

    @property
    def run_longer_factor(self) -> float:
        """How much longer to run: the fixed checks' shortfall (``diagnostics["run_longer_factor"]``), at
        least 2 when a tested check fails (a drifting or start-remembering run needs more time than the
        fixed checks can say)."""
        fixed = float(self.diagnostics.get("run_longer_factor", 1.0))
        return max(fixed, 2.0) if any(t.fails for t in self.tests.values()) else fixed

    def to_dict(self) -> dict[str, Any]:
        diag = {**self.diagnostics, "fixed_run_longer_factor": self.diagnostics.get("run_longer_factor", 1.0),
                "run_longer_factor": self.run_longer_factor}
        return {"converged": self.converged, "reasons": self.reasons, "failed_checks": list(self.failed_checks),
                "tests": {k: asdict(t) for k, t in self.tests.items()},
                "diagnostics": {k: (float(v) if v is not None and np.isfinite(v) else None) for k, v in diag.items()},
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Convergence:
        """Read :meth:`to_dict`'s form; a record without ``failed_checks`` (written before tests were kept
        apart) keeps its reasons as fixed failures."""
        diag = {k: (float("nan") if v is None else float(v)) for k, v in d.get("diagnostics", {}).items()}
        if "fixed_run_longer_factor" in diag:
            diag["run_longer_factor"] = diag.pop("fixed_run_longer_factor")
        failed = d.get("failed_checks", d.get("reasons", []))
        tests = {k: PermutationCheck(**v) for k, v in d.get("tests", {}).items()}
        return cls(list(failed), diag, list(d.get("notes", [])), tests)


@dataclass
class ReplicaSeries:
    """What the checks need, per scored replica (after burn-in)."""

    basin_cells: list[np.ndarray]     # per replica: flat cell on the basin grid (last index = outside)
    n_cells: int
    folded_fraction: np.ndarray       # [R] folded fraction after burn-in
    start_rmsd: np.ndarray            # [R] Cα RMSD of each start structure (samples.start_frames) to native (Å)
    events: np.ndarray                # [R] folding + unfolding events
    frames: np.ndarray                # [R] frames after burn-in
    dt_frame_ps: float | None
    slowest_timescale_ps: float       # the reference TICA's slowest implied timescale (ps)
    tics: list[np.ndarray] | None = None    # per replica: [frames, k] reference-TIC coordinates after burn-in
    reference_lag_ps: float = float("nan")  # the reference TICA's lag (ps)
    folding_entries: np.ndarray | None = None    # [R] committed entries into the folded core after burn-in
    unfolding_entries: np.ndarray | None = None  # [R] committed entries into the unfolded core after burn-in
    folded_frames: np.ndarray | None = None      # [R] folded frames after burn-in (of the RMSD frames)
    rmsd_frames: np.ndarray | None = None        # [R] frames with an RMSD after burn-in


def js_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (nats) of every row pair of two count matrices (same as
    :func:`metrics.js_divergence` row by row)."""
    p = p / p.sum(axis=1, keepdims=True)
    q = q / q.sum(axis=1, keepdims=True)
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log(p / m), 0.0).sum(axis=1)
        b = np.where(q > 0, q * np.log(q / m), 0.0).sum(axis=1)
    return np.clip(0.5 * a + 0.5 * b, 0.0, np.log(2.0))


def _min_p(n_distinct: int) -> float:
    return 1.0 / max(n_distinct, 1)


#: Besag–Clifford stopping count: a permutation test stops once this many permutations reach the observed
#: statistic (p = h / L is then ≥ h / n_max, far above any α the gate uses).
SEQUENTIAL_HITS = 50
#: permutations drawn per block (bounded memory for fine basin grids)
PERMUTATION_BLOCK = 1000


@dataclass
class PermutationResult:
    """A permutation test's p-value and the null statistics it drew."""

    p: float
    null: np.ndarray


def sequential_permutation_p(null_block: Callable[[int], np.ndarray], observed: float, n_max: int,
                             h: int = SEQUENTIAL_HITS) -> PermutationResult:
    """Monte Carlo p-value of ``observed`` against null statistics drawn ``null_block(m)`` at a time, with
    Besag & Clifford's (1991) sequential stopping: after L draws of which h reach ``observed``, p = h / L;
    if ``n_max`` draws hold only g < h, p = (g + 1) / (n_max + 1), the usual fixed-size value. Both are valid
    p-values; a typical statistic stops after a few hundred draws, a small p uses all ``n_max``. Ties within
    1e-12 (relative) count as reaching it."""
    tol = 1e-12 * max(1.0, abs(observed))
    drawn, hits = [], 0
    for m in [min(PERMUTATION_BLOCK, n_max - i) for i in range(0, n_max, PERMUTATION_BLOCK)]:
        null = null_block(m)
        cum = hits + np.cumsum(null >= observed - tol)
        if cum[-1] >= h:
            stop = int(np.argmax(cum >= h)) + 1
            drawn.append(null[:stop])
            total = sum(len(d) for d in drawn)
            return PermutationResult(h / total, np.concatenate(drawn))
        hits = int(cum[-1])
        drawn.append(null)
    return PermutationResult((hits + 1.0) / (n_max + 1.0), np.concatenate(drawn))


def _swapped_halves_js(a: np.ndarray, b: np.ndarray, flips: np.ndarray) -> np.ndarray:
    """JS of the pooled halves after swapping replica r's halves where ``flips[:, r]`` is 1."""
    return js_rows(flips @ b + (1.0 - flips) @ a, flips @ a + (1.0 - flips) @ b)


def _halves(s: ReplicaSeries, config: EvalConfig, rng: np.random.Generator) -> tuple[float, float, float, int]:
    """JS of first vs second halves, the median JS under random half swaps, permutation p, replicas used."""
    a, b = [], []
    for c in s.basin_cells:
        h = len(c) // 2
        if h == 0:
            continue
        a.append(np.bincount(c[:h], minlength=s.n_cells))
        b.append(np.bincount(c[len(c) - h:], minlength=s.n_cells))
    if len(a) < 2:
        return float("nan"), float("nan"), float("nan"), len(a)
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    used = (a.sum(0) + b.sum(0)) > 0          # cells empty in both halves add nothing to any JS
    a, b = a[:, used], b[:, used]
    stat = M.js_divergence(a.sum(0), b.sum(0))
    res = sequential_permutation_p(
        lambda m: _swapped_halves_js(a, b, rng.integers(0, 2, size=(m, len(a))).astype(np.float64)),
        stat, config.convergence_permutations)
    return stat, float(np.median(res.null)), res.p, len(a)


def _start_gap(s: ReplicaSeries, config: EvalConfig, rng: np.random.Generator) -> tuple[float, float, int, int]:
    """Folded fraction of folded starts minus that of the others, one-sided permutation p, group sizes."""
    folded_start = s.start_rmsd < config.folded_rmsd_A
    k, n = int(folded_start.sum()), len(folded_start)
    if k == 0 or k == n:
        return float("nan"), float("nan"), k, n - k
    f = s.folded_fraction
    gap = float(f[folded_start].mean() - f[~folded_start].mean())

    def null_gaps(m: int) -> np.ndarray:
        perms = np.argsort(rng.random((m, n)), axis=1)[:, :k]
        return f[perms].mean(1) - (f.sum() - f[perms].sum(1)) / (n - k)

    return gap, sequential_permutation_p(null_gaps, gap, config.convergence_permutations).p, k, n - k


#: Fewest lagged pairs (over all replicas) from which a model's implied timescale is estimated.
MIN_TIMESCALE_PAIRS = 100


def model_slowest_timescale(tics: list[np.ndarray], lag_frames: int, dt_frame_ps: float,
                            n_components: int = 2) -> float:
    """Slowest implied timescale (ps) of a model's own dynamics on the reference TICs.

    deeptime's TICA (reversible covariances, mean removed) at ``lag_frames`` on the first
    ``n_components`` columns of each replica, replicas as separate trajectories (no lagged pair crosses
    a replica boundary). τ = −lag·Δt / ln λ of the largest eigenvalue λ; ``inf`` when λ ≥ 1; NaN when it
    cannot be estimated (fewer than :data:`MIN_TIMESCALE_PAIRS` lagged pairs, constant coordinates,
    λ ≤ 0, unknown spacing)."""
    from deeptime.decomposition import TICA

    lag = int(lag_frames)
    if lag < 1 or not (dt_frame_ps and np.isfinite(dt_frame_ps) and dt_frame_ps > 0):
        return float("nan")
    trajs = [np.ascontiguousarray(np.asarray(t, np.float64)[:, :n_components]) for t in tics if len(t) > lag]
    trajs = [t for t in trajs if np.all(np.isfinite(t))]
    if sum(len(t) - lag for t in trajs) < MIN_TIMESCALE_PAIRS:
        return float("nan")
    try:
        lam = np.asarray(TICA(lagtime=lag, scaling=None).fit(trajs).fetch_model().singular_values, np.float64)
    except Exception:  # noqa: BLE001 - a degenerate (e.g. constant) sample has no timescale
        return float("nan")
    if not len(lam) or not np.isfinite(lam).all():
        return float("nan")
    top = float(lam.max())
    if top >= 1.0:
        return math.inf
    if top <= 0.0:
        return float("nan")
    return float(-lag * dt_frame_ps / math.log(top))


def _model_lag_frames(s: ReplicaSeries) -> int:
    """The reference TICA's lag in frames of the model's spacing (at least 1; 0 when unknown)."""
    if not s.dt_frame_ps or not np.isfinite(s.reference_lag_ps) or s.reference_lag_ps <= 0:
        return 0
    return max(1, int(round(s.reference_lag_ps / s.dt_frame_ps)))


def _time_check(s: ReplicaSeries, config: EvalConfig, d: dict, reasons: list[str]) -> None:
    tau_ref = s.slowest_timescale_ps
    d["slowest_timescale_ps"] = d["reference_slowest_timescale_ps"] = tau_ref
    lag = _model_lag_frames(s)
    tau_m = (model_slowest_timescale(s.tics, lag, s.dt_frame_ps or float("nan"), config.n_components)
             if s.tics is not None and lag else float("nan"))
    d["model_slowest_timescale_ps"] = tau_m
    d["model_timescale_lag_frames"] = float(lag) if lag else float("nan")
    if not s.dt_frame_ps:
        d["replica_time_ps"] = d["time_over_timescale"] = float("nan")
        reasons.append("frame spacing unknown: the simulated time cannot be compared with the reference's "
                       "slowest timescale (give the frame spacing)")
        return
    t = float(np.median(s.frames) * s.dt_frame_ps)
    d["replica_time_ps"] = t
    if tau_m == math.inf:
        d["time_over_timescale"] = 0.0
        reasons.append(f"the model's slowest implied timescale on the reference TICs is not finite (TICA eigenvalue "
                       f"≥ 1 at lag {lag} frames): its replicas drift or never relax, so no run length can be "
                       f"shown to exceed it")
        return
    model_limits = np.isfinite(tau_m) and tau_m > 0 and not (np.isfinite(tau_ref) and tau_ref >= tau_m)
    tau = tau_m if model_limits else tau_ref
    ratio = t / tau if np.isfinite(tau) and tau > 0 else float("nan")
    d["time_over_timescale"] = ratio
    if not np.isfinite(ratio):
        reasons.append("the reference's slowest implied timescale is not finite: no run length can be "
                       "shown to exceed it")
    elif ratio < config.min_time_over_timescale:
        need = config.min_time_over_timescale / ratio
        d["run_longer_factor"] = max(d.get("run_longer_factor", 1.0), need)
        if model_limits:
            which = (f"the model's own slowest implied timescale on the reference TICs ({tau:.4g} ps; the "
                     f"reference's is {tau_ref:.4g} ps)")
        else:
            own = f"; the model's own is {tau_m:.4g} ps" if np.isfinite(tau_m) else ""
            which = f"the reference's slowest implied timescale ({tau:.4g} ps{own})"
        reasons.append(f"replicas ran {t:.4g} ps after burn-in (median), {ratio:.2g}× {which}; needs ≥ "
                       f"{config.min_time_over_timescale:g}× (run {need:.2g}× longer)")


def _one_state_departures(s: ReplicaSeries, config: EvalConfig, d: dict, notes: list[str]) -> bool:
    """A one-state model (pooled folded fraction near 0 or 1) whose replicas started in the other state
    all left it (each one's fraction in that state after burn-in within ``one_state_fraction``): the
    starts no longer bias the depleted state's population, so it passes without crossings. Committed
    returns into the depleted state after burn-in are samples of it, not a reason to fail (a rule
    that failed with returns and passed without would penalise sampling more); the note states the
    returns and depleted-state frames observed."""
    if not len(s.frames) or s.frames.sum() <= 0:
        return False
    pooled = float(np.average(s.folded_fraction, weights=s.frames))
    f, lo = s.folded_fraction, config.one_state_fraction
    started_folded = s.start_rmsd < config.folded_rmsd_A
    if pooled <= lo:
        depleted, left, state = started_folded, f[started_folded] <= lo, "folded"
        entries = s.folding_entries
    elif pooled >= 1.0 - lo:
        depleted, left, state = ~started_folded, f[~started_folded] >= 1.0 - lo, "unfolded"
        entries = s.unfolding_entries
    else:
        return False
    n = int(depleted.sum())
    # committed entries into the depleted state after burn-in; without the split, every event counts
    returns = int(np.sum(s.events if entries is None else entries))
    rmsd_frames = s.frames if s.rmsd_frames is None else s.rmsd_frames
    folded = np.rint(f * rmsd_frames) if s.folded_frames is None else s.folded_frames
    in_state = float(folded.sum() if state == "folded" else (rmsd_frames - folded).sum())
    d["one_state_departures"] = float(left.sum())
    d["one_state_returns"] = float(returns)
    d["one_state_depleted_frames"] = in_state
    if n < config.min_one_state_departures or not bool(np.all(left)):
        return False
    agg = float(s.frames.sum() * s.dt_frame_ps) if s.dt_frame_ps else float("nan")
    seen = f"{in_state:.0f} of {float(rmsd_frames.sum()):.0f} frames with an RMSD after burn-in {state}"
    head = (f"one-state model: pooled folded fraction {pooled:.3f}; all {n} replicas started {state} left that "
            f"state (within burn-in)")
    if returns == 0:
        notes.append(f"{head} and none returned in {agg:.4g} ps of aggregate sampling after burn-in "
                     f"(0 committed returns; {seen}), so the {state} population is settled near "
                     f"{'0' if state == 'folded' else '1'} without crossings")
        return True
    notes.append(f"{head}; {returns} committed return{'s' if returns != 1 else ''} into the {state} state "
                 f"after burn-in in {agg:.4g} ps of aggregate sampling ({seen}): the {state} population is "
                 f"sampled by those returns and stays within {lo:g} of {'0' if state == 'folded' else '1'}, "
                 "with no start left in it")
    return True


def _crossing_check(s: ReplicaSeries, config: EvalConfig, d: dict, reasons: list[str],
                    notes: list[str] | None = None) -> None:
    x = float(np.mean(s.events)) if len(s.events) else 0.0
    d["crossings_per_replica"] = x
    d["replicas_with_crossing_fraction"] = float(np.mean(s.events > 0)) if len(s.events) else 0.0
    if x < config.min_crossings_per_replica and _one_state_departures(s, config, d, notes if notes is not None else []):
        return
    if x < config.min_crossings_per_replica:
        need = config.min_crossings_per_replica / x if x > 0 else math.inf
        if np.isfinite(need):
            d["run_longer_factor"] = max(d.get("run_longer_factor", 1.0), need)
        reasons.append(f"{x:.2g} folding/unfolding transitions per replica (needs ≥ "
                       f"{config.min_crossings_per_replica:g}): the folded population still reflects the starts")


def assess_convergence(s: ReplicaSeries, config: EvalConfig) -> Convergence:
    """Run the four checks (module docstring) on one trial's replicas."""
    d: dict[str, float] = {"run_longer_factor": 1.0, "n_replicas": float(len(s.frames))}
    reasons: list[str] = []
    notes: list[str] = []
    tests: dict[str, PermutationCheck] = {}
    rng_halves, rng_starts = (np.random.default_rng(q) for q in np.random.SeedSequence(config.bootstrap_seed).spawn(2))
    _time_check(s, config, d, reasons)
    _crossing_check(s, config, d, reasons, notes)
    js, js_null, p, n_used = _halves(s, config, rng_halves)
    d.update(halves_js=js, halves_js_null_median=js_null, halves_p=p)
    if not np.isfinite(p) or _min_p(2 ** (n_used - 1)) >= config.drift_alpha:
        notes.append(f"first/second-half agreement not assessable with {n_used} replicas (the permutation test "
                     f"needs ≥ {2 + math.floor(math.log2(1 / config.drift_alpha))} "
                     f"to reach p < {config.drift_alpha:g})")
    else:
        tests["drift"] = PermutationCheck(
            p, config.drift_alpha, "the first and second halves of the runs differ beyond replica-to-replica noise",
            f"JS {js:.3g} vs {js_null:.3g} typical under stationarity", "the runs still drift")
    gap, p_gap, n_f, n_u = _start_gap(s, config, rng_starts)
    d.update(start_folded_gap=gap, start_gap_p=p_gap, n_folded_starts=float(n_f), n_unfolded_starts=float(n_u))
    if not np.isfinite(p_gap) or _min_p(math.comb(n_f + n_u, n_f)) >= config.start_basin_alpha:
        notes.append(f"start-basin agreement not assessable ({n_f} replicas started folded, {n_u} not)")
    else:
        f = s.folded_fraction
        fs = s.start_rmsd < config.folded_rmsd_A
        tests["start_basins"] = PermutationCheck(
            p_gap, config.start_basin_alpha, "replicas started folded stay more folded than those started unfolded",
            f"folded fraction {f[fs].mean():.2f} vs {f[~fs].mean():.2f}", "memory of the starts")
    return Convergence(reasons, d, notes, tests)
