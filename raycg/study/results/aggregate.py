"""``raycg study analyze``: the trial table, the statistics and the report over the finished trials.

The report is ``raycg.report``'s (``STUDY/results/``: trials.parquet, summary.csv, report.md,
figures/); for object-store studies it is computed on a local copy of the trial files and
uploaded. What is printed: a short table (headline metrics first), the verdict, the report path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from raycg.study.results.status import resolve_study
from raycg.study.storage import Store, is_remote, join, node_cache_dir, normalize

TABLE_METRICS = 6
_COPIED = ("result.json", "config.json", "scores.json", "fes.npz")


def _uri(name_or_path: str) -> str:
    uri = normalize(name_or_path)
    return uri if Store(uri).exists("study.json") else resolve_study(name_or_path)


def local_copy(uri: str) -> str:
    """A local directory with the study's files (the study itself when storage is local)."""
    if not is_remote(uri):
        return uri
    store = Store(uri)
    dest = node_cache_dir() / "studies" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    rels = [rel for rel in ("study.json", "spec.yaml", "sequential.json", "prepared/noise_floor.json")
            if store.exists(rel)]
    rels += [f"trials/{tid}/{f}" for tid in store.listdir("trials") for f in _COPIED
             if store.exists(f"trials/{tid}/{f}")]
    for rel in rels:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(store.read_bytes(rel))
    return str(dest)


def trial_table(name_or_path: str) -> pd.DataFrame:
    """One row per trial from the ``result.json`` files (config columns, status, error, metrics)."""
    from raycg.report import trial_table as report_table

    return report_table(local_copy(_uri(name_or_path)))


def aggregate(name_or_path: str, *, log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Run the statistics and the report over all finished trials; return the trial table.

    Prints (through ``log``, default stdout) the table, the verdict lines of
    ``raycg.report.run_analysis`` and the report path.
    """
    from raycg.report.analyze import run_analysis

    log = log or print
    uri = _uri(name_or_path)
    local = local_copy(uri)
    table = trial_table(uri)
    study = Store(uri).read_json("study.json")
    analysis = run_analysis(local)  # reads the spec's analysis: section
    if is_remote(uri):
        Store(uri).upload_dir(Path(local) / "results", "results")
    lead = (study["spec"].get("evaluation") or {}).get("metrics") or [
        analysis.settings.primary_metric, *analysis.settings.secondary_metrics]
    log(format_table(table, lead))
    log("verdict:")
    for line in analysis.verdict_lines:
        log(line)
    report = analysis.report_path
    log(f"report: {join(uri, 'results', report.name) if is_remote(uri) else report}")
    return table


def format_table(table: pd.DataFrame, metrics: list[str]) -> str:
    """The trials with the first few of ``metrics`` found (else any numeric columns), errors shortened."""
    if table.empty:
        return "(no trials)"
    cols = [c for c in ("trial_id", "arm", "energy_weight", "seed", "status") if c in table.columns]
    metric_cols = [c for c in metrics if c in table.columns][:TABLE_METRICS]
    if not metric_cols:
        metric_cols = [c for c in table.columns if c not in cols and pd.api.types.is_numeric_dtype(table[c])]
        metric_cols = metric_cols[:TABLE_METRICS]
    show = table[cols + metric_cols].copy()
    if "error" in table.columns and (table.get("status") == "failed").any():
        show["error"] = table["error"].fillna("").astype(str).str.slice(0, 60)
    with pd.option_context("display.width", 200, "display.max_columns", 14, "display.float_format", "{:.4g}".format):
        return show.to_string(index=False)
