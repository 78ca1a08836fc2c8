"""Read a study directory: one row per trial, plus each trial's FES arrays and training history.

Layout (docs/architecture.md): ``STUDY/trials/<id>/result.json`` (finished: ``status`` ok|failed),
``status.json`` (running: phase/progress), ``config.json``, ``scores.json``, ``fes.npz``,
``train_history.csv``. Trials without ``result.json`` appear as ``running`` (a ``status.json``
marker exists) or ``unfinished``; an unreadable ``result.json`` appears as ``unreadable``.
Nothing is dropped.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raycg.errors import InputError

#: Statuses a trial row can have.
STATUSES = ("ok", "failed", "running", "unfinished", "unreadable")
FES_KEYS = ("edges_x", "edges_y", "fes_reference", "fes_model", "hist_reference", "hist_model")
_BASE_COLUMNS = ("trial_id", "status", "error", "failed_phase", "phase")


def trials_dir(study_dir: str | Path) -> Path:
    """``STUDY/trials`` after checking there is at least one trial in it (InputError otherwise)."""
    study = Path(study_dir)
    if not study.is_dir():
        raise InputError(f"{study}: no such study directory", hint="pass the directory a study wrote (it has trials/)")
    tdir = study / "trials"
    if not tdir.is_dir() or not any(p.is_dir() for p in tdir.iterdir()):
        raise InputError(f"{study}: no trials found (expected {tdir}/<trial_id>/result.json)",
                         hint="run the study first or point at a study directory")
    return tdir


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text()), None
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        return None, f"{path.name} unreadable: {exc}".replace("\n", " ")


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _scalar_config(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    return json.dumps(v, sort_keys=True, default=str)


def _numeric_metrics(d: Any) -> dict[str, float]:
    """Numeric entries of a metrics dict (nested dicts flattened with dots; lists skipped)."""
    if not isinstance(d, dict):
        return {}
    if isinstance(d.get("metrics"), dict):  # scores.json may wrap them
        d = d["metrics"]
    out = {}
    for k, v in _flatten(d).items():
        if isinstance(v, bool):
            out[k] = float(v)
        elif isinstance(v, (int, float)) or v is None:
            out[k] = float("nan") if v is None else float(v)
    return out


def _trial_row(tdir: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """(base fields, config, metrics) of one trial directory."""
    result, err = _read_json(tdir / "result.json")
    base: dict[str, Any] = {"trial_id": tdir.name, "status": None, "error": None, "failed_phase": None,
                            "phase": None, "runtime_s": float("nan")}
    config: dict[str, Any] = {}
    metrics: dict[str, float] = {}
    stage: dict[str, float] = {}
    if isinstance(result, dict):
        base["trial_id"] = str(result.get("trial_id") or tdir.name)
        status = str(result.get("status") or "failed")
        base["status"] = status if status in ("ok", "failed") else "failed"
        base["error"] = result.get("error") or (None if status in ("ok", "failed") else f"unknown status {status!r}")
        base["failed_phase"] = result.get("failed_phase")
        base["runtime_s"] = float(result.get("runtime_s") or float("nan"))
        base["phase"] = "done"
        config = dict(result.get("config") or {})
        metrics = _numeric_metrics(result.get("metrics"))
        stage = {f"stage_time_s.{k}": float(v) for k, v in (result.get("stage_times") or {}).items()
                 if isinstance(v, (int, float))}
    elif err or result is not None:
        base["status"], base["error"] = "unreadable", err or "result.json is not a JSON object"
    else:
        marker, _ = _read_json(tdir / "status.json")
        if isinstance(marker, dict):
            base["status"] = "running"
            base["phase"] = marker.get("phase")
        else:
            base["status"] = "unfinished"
    if not config:
        cfg, _ = _read_json(tdir / "config.json")
        if isinstance(cfg, dict):
            config = dict(cfg.get("grid_point") or _flatten(cfg.get("config") or {}))
    if base["status"] == "ok":  # scores.json (evaluate) fills metrics that result.json lacks
        scores, _ = _read_json(tdir / "scores.json")
        metrics = {**_numeric_metrics(scores), **metrics}
    base.update(stage)
    return base, {k: _scalar_config(v) for k, v in config.items()}, metrics


def trial_table(study_dir: str | Path) -> pd.DataFrame:
    """One row per trial: trial_id, status, error, config columns (flat dotted keys), seed, every metric,
    runtime_s and per-stage times. Failed/running trials are kept (metrics NaN where absent).

    ``df.attrs["metrics"]`` and ``df.attrs["config_columns"]`` list the metric and config columns.
    A metric whose name clashes with a config key is stored as ``metric.<name>``.
    """
    tdir = trials_dir(study_dir)
    rows, config_keys, metric_keys = [], {}, {}
    for d in sorted(p for p in tdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        base, config, metrics = _trial_row(d)
        clash = set(config) | set(_BASE_COLUMNS) | {"runtime_s"}
        metrics = {(f"metric.{k}" if k in clash else k): v for k, v in metrics.items()}
        config_keys.update(dict.fromkeys(config))
        metric_keys.update(dict.fromkeys(metrics))
        rows.append({**base, **config, **metrics})
    df = pd.DataFrame(rows)
    if "seed" not in df.columns:
        df["seed"] = np.nan
        config_keys["seed"] = None
    stage_cols = sorted(c for c in df.columns if c.startswith("stage_time_s."))
    cfg_cols = list(config_keys)
    order = list(_BASE_COLUMNS) + cfg_cols + list(metric_keys) + ["runtime_s"] + stage_cols
    df = df.reindex(columns=order)
    for m in metric_keys:
        df[m] = pd.to_numeric(df[m], errors="coerce").astype(float)
    sort_cols = [c for c in ("energy_weight", "seed") if c in df.columns]
    try:
        df = df.sort_values(sort_cols + ["trial_id"], kind="stable", na_position="last").reset_index(drop=True)
    except TypeError:  # mixed types in a config column
        df = df.sort_values("trial_id", kind="stable").reset_index(drop=True)
    df.attrs["metrics"] = list(metric_keys)
    df.attrs["config_columns"] = cfg_cols
    return df


def load_fes(trial_dir: str | Path) -> dict[str, np.ndarray] | None:
    """The arrays of ``trial_dir/fes.npz`` (edges Å-free TIC units, F in kcal/mol), or None if absent/bad."""
    path = Path(trial_dir) / "fes.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: np.asarray(z[k]) for k in z.files}
    except (OSError, ValueError):
        return None
    return out if all(k in out for k in FES_KEYS) else None


def load_history(trial_dir: str | Path) -> pd.DataFrame | None:
    """``train_history.csv`` of a trial (per-epoch losses), or None if absent/unreadable."""
    path = Path(trial_dir) / "train_history.csv"
    if not path.is_file():
        return None
    try:
        h = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    return h if "epoch" in h.columns and len(h) else None


def parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    """Copy whose object columns hold one type each (mixed values become strings), for Parquet."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype != object:
            continue
        vals = [v for v in out[c] if v is not None and not (isinstance(v, float) and math.isnan(v))]
        kinds = {type(v) for v in vals}
        if kinds and kinds <= {int, float}:
            out[c] = pd.to_numeric(out[c], errors="coerce")
        elif len(kinds) > 1 or (kinds and not kinds <= {str, bool}):
            out[c] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in out[c]]
    return out


def load_convergence(trial_dir: str | Path) -> dict[str, Any] | None:
    """A trial's convergence verdict: ``{"converged": bool, "reasons": [...], "diagnostics": {...}}`` (with
    ``failed_checks`` and ``tests`` where the trial recorded its permutation tests apart; see
    :class:`raycg.evaluate.Convergence`).

    From ``result.json`` → ``convergence`` (the study copies it there), else ``scores.json`` →
    ``convergence``, else the ``converged`` metric (1/0, no reasons); None when none is recorded.
    """
    d = Path(trial_dir)
    for name in ("result.json", "scores.json"):
        obj, _ = _read_json(d / name)
        if isinstance(obj, dict) and isinstance(obj.get("convergence"), dict) and "converged" in obj["convergence"]:
            c = obj["convergence"]
            diag = {k: float("nan") if v is None else v for k, v in (c.get("diagnostics") or {}).items()
                    if v is None or isinstance(v, (int, float))}
            out = {"converged": bool(c["converged"]), "reasons": [str(r) for r in c.get("reasons") or []],
                   "diagnostics": diag, "notes": [str(n) for n in c.get("notes") or []]}
            if isinstance(c.get("failed_checks"), list) and isinstance(c.get("tests"), dict):
                out.update(failed_checks=[str(r) for r in c["failed_checks"]], tests=c["tests"])
            return out
    obj, _ = _read_json(d / "result.json")
    flag = (obj or {}).get("metrics", {}).get("converged") if isinstance(obj, dict) else None
    if isinstance(flag, (bool, int, float)) and math.isfinite(flag):
        return {"converged": bool(flag), "reasons": [] if flag else ["not converged (no reasons recorded)"],
                "diagnostics": {}, "notes": []}
    return None
