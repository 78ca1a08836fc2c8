"""One trial, Ray-free at its core: ``run.py`` (phases, reports, result.json), ``session.py`` (the
Tune side: report/checkpoint/restore), ``metrics.py`` (dashboard gauges)."""

from raycg.study.trial.run import run_trial

__all__ = ["run_trial"]
