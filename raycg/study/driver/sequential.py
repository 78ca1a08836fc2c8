"""Waves of a sequential study (``analysis.design: sequential``) on Ray Tune.

A wave is the trials one look still needs: :func:`raycg.study.sequential.plan_next_look` reads the
trial table and the study's ``sequential.json``, analyses every look whose trials have all finished
(the paired decision test, the convergence gate, Holm across weights, the futility rule), records
each decision atomically in ``sequential.json``, and says which (weight, seed) cells the next look
needs: the baseline and the weights still open. Those grid points (:func:`grid_points`, without a
final result) run as a fresh Tuner on the same scheduler (``_tune_grid``); then the next look is
planned, until every weight is decided or the last look is analysed. The storage is the only state,
so ``raycg study resume`` is the same loop again: recorded looks are not re-tested, and the wave
that was running continues from its trials' checkpoints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pandas as pd

from raycg.study.grid import grid_points
from raycg.study.keys import trial_id_for
from raycg.study.storage import Store
from raycg.study.trial.run import FINAL

if TYPE_CHECKING:
    from raycg.study.sequential import SequentialPlan
    from raycg.study.spec import StudySpec


def wave_points(spec: StudySpec, plan: SequentialPlan, store: Store) -> list[dict[str, Any]]:
    """The grid points of ``plan.seeds_to_run`` (every sweep value of each (weight, seed) cell) that
    have no final result in the study storage, in the grid's order."""
    want = {(float(w), int(s)) for w, seeds in plan.seeds_to_run.items() for s in seeds}
    out = []
    for point in grid_points(spec):
        if (float(point["energy_weight"]), int(point["seed"])) not in want:
            continue
        result = store.try_read_json(f"trials/{trial_id_for(point)}/result.json")
        if not (isinstance(result, dict) and result.get("status") in FINAL):
            out.append(point)
    return out


def plan_study(spec: StudySpec, uri: str) -> SequentialPlan:
    """Analyse the looks that are complete (recording them in ``sequential.json``) and plan the next."""
    from raycg.study.results import trial_table
    from raycg.study.results.aggregate import local_copy
    from raycg.study.sequential import gate_convergence, plan_next_look

    store = Store(uri)
    table = trial_table(uri) if store.listdir("trials") else pd.DataFrame()  # no trial yet: nothing to analyse
    return plan_next_look(spec, table, store=store, convergence=gate_convergence(local_copy(uri)))


def _log_looks(plan: SequentialPlan, seen: int, log) -> None:
    for lk in plan.looks[seen:]:
        log(f"look {lk['look']} ({lk['seeds']} seeds): {'converged' if lk['converged'] else 'not converged'}")
    if len(plan.looks) > seen:
        for w, d in plan.decisions.items():
            log(f"  w_E = {w:g}: {d.state if d.decided else 'continue'} ({d.reason})")


#: one wave on Ray Tune: (grid points) -> (interrupted by Ctrl-C, why it stopped early or None)
Wave = Callable[[list[dict[str, Any]]], tuple[bool, "str | None"]]


def run_waves(spec: StudySpec, uri: str, wave: Wave, *, address: str | None, log,
              shutdown: bool | None) -> tuple[bool, str | None, int]:
    """Run waves through ``wave`` until the design is finished or a wave stops early; return
    (interrupted, why it stopped early or None, trials of the current wave left unfinished).

    Ray is started (or joined) once before the first wave and, when started here (or ``shutdown``),
    shut down after the last, with a reaper for a local Ray's leftovers (raycg.cluster.processes).
    """
    from raycg.study.driver.tuner import start_ray, stop_ray

    store = Store(uri)
    plan = plan_study(spec, uri)
    _log_looks(plan, 0, log)
    started, joined = False, False
    try:
        while not plan.finished:
            todo = wave_points(spec, plan, store)
            if not todo:  # the look's trials are final but the plan still waits: nothing Tune can do
                raise RuntimeError(f"look {plan.look}: no trial to run but the look is incomplete")
            if not joined:
                started, joined = start_ray(address, log=log), True
            weights = ", ".join(f"{w:g}" for w in plan.seeds_to_run)
            log(f"study {spec.name}: look {plan.look} of {len(plan.design['looks'])} ({plan.seeds} seeds): "
                f"{len(todo)} trial(s) of w_E {weights}")
            interrupted, reason = wave(todo)
            left = len(wave_points(spec, plan, store))
            if interrupted or reason or left:
                # Tune folds the trials it gave up on into failed results: only Ctrl-C leaves some unfinished
                return interrupted or (reason is None and left > 0), reason, left
            seen = len(plan.looks)
            plan = plan_study(spec, uri)
            _log_looks(plan, seen, log)
    finally:
        if shutdown or (shutdown is None and started):
            stop_ray()
    used, fixed = plan.trials_planned, plan.trials_fixed
    log(f"study {spec.name}: sequential design finished after look {plan.look}: {used} of {fixed} trials "
        f"({fixed - used} saved against the fixed design)")
    return False, None, 0


def run_sequential(spec: StudySpec, uri: str, wave: Wave, incomplete: type[Exception], *, address: str | None,
                   restore: bool, log, out, aggregate_results: bool, shutdown: bool | None) -> pd.DataFrame:
    """The driver's ``_run_grid`` for a sequential design: the waves (each through ``wave``, the
    driver's Tune run), then the same aggregation (the report's sequential section reads
    ``sequential.json``). Raises ``incomplete`` (the driver's StudyIncomplete) when a wave stops early."""
    from raycg.errors import InputError
    from raycg.study.results import aggregate, trial_table
    from raycg.study.storage import is_storage_full

    if restore:
        log(f"study {spec.name}: resuming the sequential design")
    interrupted, reason, left = run_waves(spec, uri, wave, address=address, log=log, shutdown=shutdown)
    if interrupted or reason:
        raise incomplete(spec.name, uri, left, interrupted=interrupted, reason=reason)
    if not aggregate_results:
        return trial_table(uri)
    t0 = time.perf_counter()
    try:
        table = aggregate(uri, log=out)
    except (InputError, OSError) as exc:  # the trials are done; the analysis declined or the storage is full
        if isinstance(exc, OSError) and not is_storage_full(exc):
            raise
        log(f"analysis: {exc}; `raycg study analyze {uri}` writes the report again")
        return trial_table(uri)
    log(f"aggregate: {time.perf_counter() - t0:.1f} s")
    return table
