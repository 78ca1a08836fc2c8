"""Results of a study: the trial table (one row per trial), statistics, figures and a Markdown report."""

from raycg.report.analyze import Analysis, analyze, run_analysis
from raycg.report.table import load_fes, load_history, trial_table

__all__ = ["Analysis", "analyze", "load_fes", "load_history", "run_analysis", "trial_table"]
