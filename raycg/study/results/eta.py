"""The ETA of a study from measured phase durations (Ray-free): the driver's progress lines and
``raycg study status`` both read it.

A trial's phases (train, simulate, score) take very different shares of its time, and the share
depends on the study (epochs, steps, device), so trial progress alone is a poor clock: the first
wave of the quickstart (train ~10 s, simulate ~35 s, score ~2 s, reported as 0.6/0.9/1.0 progress)
read 14 min a few seconds in and 3.5 min at 28 s for a study that took 4.7 min. Instead each phase
is timed:

- each finished run of a phase is one measurement, and so is each running one that has reported a
  fraction of it (epochs, simulation chunks: elapsed / fraction done at its last report);
- a phase's duration is the mean of its latest measurements, one per slot: the first wave, whose trials
  also compile the simulation step on each worker (the quickstart's took 70–91 s, later ones ~36–40 s),
  stops counting as soon as the next wave has reported;
- a phase not timed yet (nobody reached it, or it reports nothing until its end): unknown, and so is
  the ETA ("?"): scaling it from the others by the pipeline's progress shares read 1 min 17 s for that
  4.7 min study.

The ETA then schedules the rest like Tune does: each running trial finishes its phase and the
phases after it, and each pending trial takes the next free slot.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field


@dataclass
class _Position:
    """A running trial's phase, since when, and the fraction of it done at its last report (``at``)."""

    phase: str
    since: float
    fraction: float = 0.0
    at: float = 0.0


@dataclass
class PhaseTimer:
    """When each running trial entered its phase, how far it is in it, and how long finished phases took.

    ``phase_end``: trial progress (0..1) at the end of each phase, in order (the pipeline's
    ``PHASE_END``); a report carries ``phase``, ``progress`` and ``<phase>_done`` at a phase's end.
    """

    phase_end: dict[str, float]
    #: per phase, (when it ended, its seconds) of every finished run of it
    finished: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    running: dict[str, _Position] = field(default_factory=dict)

    @property
    def phases(self) -> list[str]:
        return list(self.phase_end)

    def start(self, trial: str, now: float) -> None:
        """A trial started (or restarted): it is in its first phase from ``now`` unless already placed."""
        self.running.setdefault(trial, _Position(self.phases[0], now))

    def add_finished(self, phase: str, seconds: float, at: float = 0.0) -> None:
        """A run of ``phase`` that took ``seconds`` and ended at ``at``."""
        self.finished.setdefault(phase, []).append((at, seconds))

    def place(self, trial: str, phase: str, progress: float, since: float, at: float) -> _Position:
        """Put ``trial`` in ``phase`` since ``since``, at ``progress`` as of ``at`` (a restored trial, or one read
        back from storage)."""
        self.running[trial] = _Position(phase, since, self._fraction(phase, progress), at)
        return self.running[trial]

    def forget(self, trial: str) -> None:
        """The trial ended or will be retried (placed again by its next report)."""
        self.running.pop(trial, None)

    def report(self, trial: str, phase: str, progress: float, phase_done: bool, now: float) -> None:
        """A trial's report; ``phase == "done"`` ends it (its last phase is then finished)."""
        pos = self.running.get(trial)
        if phase == "done":
            if pos is not None and pos.phase == self.phases[-1]:
                self.add_finished(pos.phase, now - pos.since, now)
            self.forget(trial)
            return
        if phase not in self.phase_end:
            return
        if pos is None or pos.phase != phase:  # restored mid-study, or a phase whose end we missed
            pos = self.place(trial, phase, progress, now, now)
        pos.fraction, pos.at = self._fraction(phase, progress), now
        if phase_done:
            self.add_finished(phase, now - pos.since, now)
            later = self.phases[self.phases.index(phase) + 1:]
            if later:
                self.running[trial] = _Position(later[0], now)
            else:
                self.forget(trial)

    def _fraction(self, phase: str, progress: float) -> float:
        i = self.phases.index(phase)
        lo, hi = (self.phase_end[self.phases[i - 1]] if i else 0.0), self.phase_end[phase]
        return min(1.0, max(0.0, (progress - lo) / (hi - lo))) if hi > lo else 0.0

    def duration(self, phase: str, recent: int | None = None) -> float | None:
        """Expected seconds of ``phase`` (see the module docstring), None while it is not timed: the mean over
        its finished runs and the extrapolations of the running ones, or over the ``recent`` latest of them
        (the first trial on each worker also compiles; a later wave's running trials are the better clock)."""
        items = list(self.finished.get(phase, []))
        items += [(p.at, (p.at - p.since) / p.fraction) for p in self.running.values()
                  if p.phase == phase and p.fraction > 0]
        if not items:
            return None
        items.sort(key=lambda item: item[0])
        seconds = [d for _, d in (items[-recent:] if recent else items)]
        return sum(seconds) / len(seconds)

    def eta(self, pending: int, slots: int, now: float) -> float:
        """Seconds until every running and ``pending`` trial is done on ``slots`` slots (nan: unknown yet)."""
        durations = {p: self.duration(p, recent=max(1, slots)) for p in self.phases}
        if any(d is None for d in durations.values()):
            return math.nan
        per_trial = sum(durations.values())
        free = []
        for pos in self.running.values():
            i = self.phases.index(pos.phase)
            left = max(0.0, durations[pos.phase] - (now - pos.since))
            free.append(left + sum(durations[p] for p in self.phases[i + 1:]))
        free += [0.0] * max(0, slots - len(free))
        heapq.heapify(free)
        for _ in range(pending):
            heapq.heappush(free, heapq.heappop(free) + per_trial)
        return max(free, default=0.0)
