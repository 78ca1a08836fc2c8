"""The driver's progress lines while Tune runs a study: done / running / failed / pending and an ETA."""

from __future__ import annotations

import time
from collections.abc import Callable

from ray import tune

from raycg.study.grid import grid_point
from raycg.study.keys import trial_id_for
from raycg.study.pipelines.base import PHASE_END
from raycg.study.results.eta import PhaseTimer
from raycg.study.results.status import fmt_seconds


def trial_key(trial) -> str:
    """The readable id of a Tune trial (from its grid values)."""
    return trial_id_for(grid_point(trial.config))


class StudyProgress(tune.Callback):
    """One line per change of the counts (or every ``interval_s``), a note on each retry."""

    def __init__(self, n_total: int, concurrency: int | None, log: Callable[[str], None] | None,
                 interval_s: float = 15.0, *, done_before: int = 0, failed_before: int = 0):
        """``n_total``: the study's trials; ``done_before``/``failed_before``: those final before this run."""
        self.n_total, self.concurrency, self.log, self.interval_s = n_total, concurrency, log, interval_s
        self.done_before, self.failed_before = done_before, failed_before
        self.t0 = time.time()
        self.final: dict[str, str] = {}
        self.timer = PhaseTimer(dict(PHASE_END))
        self.last_counts: tuple = ()
        self.last_t = 0.0

    def __getstate__(self) -> dict:  # Tune saves callbacks with its state: the printer is not worth keeping
        return {**self.__dict__, "log": None}

    def on_trial_start(self, iteration, trials, trial, **info):
        self.timer.start(trial_key(trial), time.time())
        self._print(trials)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.timer.forget(trial_key(trial))
        self._print(trials, note=f"{trial_key(trial)} failed; retrying from its last checkpoint")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        key, phase = trial_key(trial), str(result.get("phase", ""))
        self.timer.report(key, phase, float(result.get("progress", 0.0) or 0.0), bool(result.get(f"{phase}_done")),
                          time.time())
        if phase == "done":
            self.final[key] = str(result.get("status", "ok"))
        self._print(trials)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.timer.forget(trial_key(trial))
        self._print(trials)

    def on_trial_error(self, iteration, trials, trial, **info):
        self.final[trial_key(trial)] = "failed"
        self.timer.forget(trial_key(trial))
        self._print(trials, note=f"{trial_key(trial)} errored (retries exhausted)")

    def on_step_end(self, iteration, trials, **info):
        if time.time() - self.last_t > self.interval_s:
            self._print(trials, force=True)

    def _print(self, trials, note: str = "", force: bool = False) -> None:
        keys = [trial_key(t) for t in trials]
        for t, k in zip(trials, keys):
            last = getattr(t, "last_result", None) or {}
            if k not in self.final and t.status == "TERMINATED" and last.get("phase") == "done":
                self.final[k] = str(last.get("status", "ok"))
            elif k not in self.final and t.status == "ERROR":
                self.final[k] = "failed"
        done = self.done_before + sum(1 for k in keys if self.final.get(k) == "ok")
        failed = self.failed_before + sum(1 for k in keys if self.final.get(k) == "failed")
        running = sum(1 for t, k in zip(trials, keys) if t.status == "RUNNING" and k not in self.final)
        pending = max(0, self.n_total - done - failed - running)
        slots = max(1, running, self.concurrency or 0) if running else max(1, self.concurrency or 1)
        eta = self.timer.eta(pending, slots, time.time())
        log = self.log or _stderr
        if note:
            log(f"  {note}")
        counts = (done, running, failed, pending)
        if counts != self.last_counts or force:
            log(f"trials: {done}/{self.n_total} done, {running} running, {failed} failed, {pending} pending"
                f"; elapsed {fmt_seconds(time.time() - self.t0)}; ETA {fmt_seconds(eta)}")
            self.last_counts, self.last_t = counts, time.time()


def _stderr(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)
