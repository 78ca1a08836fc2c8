"""Reading a study back, with no Ray: ``status.py`` (``raycg study status``), ``eta.py`` (the ETA from
measured phase durations, also the driver's) and ``aggregate.py`` (``raycg study analyze``: the trial
table, statistics, report)."""

from raycg.study.results.aggregate import aggregate, trial_table
from raycg.study.results.status import format_status, resolve_study, study_status

__all__ = ["aggregate", "format_status", "resolve_study", "study_status", "trial_table"]
