"""The outcome of a search: one row per trial, Optuna's importances, a history plot, the best spec.

Written to the search directory: ``hpo/trials.csv``, ``hpo/importances.csv``, ``hpo/history.png``,
``hpo/summary.json`` (best configuration, importances, provenance) and ``best_spec.yaml`` (the input
spec with the best values filled in and no ``search:`` section, ready for ``raycg study run``).
"""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path
from typing import Any

import yaml

from raycg.study.grid import grid_point
from raycg.study.hpo.spec import SearchSpec, objective_keys
from raycg.study.keys import trial_id_for
from raycg.study.spec import StudySpec
from raycg.study.storage import Store, node_cache_dir
from raycg.utils.provenance import provenance

OUT_DIR = "hpo"
BEST_SPEC = "best_spec.yaml"


def trial_rows(results, spec: StudySpec, search: SearchSpec, log=None) -> list[dict[str, Any]]:
    """One row per Tune trial: params, status (ok / failed / stopped / errored), objective, epochs run."""
    per_epoch, final_key = objective_keys(spec, search)
    rows = []
    missing: set[str] = set()
    for r in results:
        cfg = r.config or {}
        last = r.metrics or {}
        try:
            df = r.metrics_dataframe
        except Exception:  # noqa: BLE001
            df = None
        epochs, started = 0, float("inf")
        inter: dict[int, float] = {}
        if df is not None and len(df) and "timestamp" in df.columns:
            started = float(df["timestamp"].min())
        if df is not None and len(df) and "epoch" in df.columns:
            ep = df[df["phase"] == "train"] if "phase" in df.columns else df
            ep = ep[ep["epoch"].notna()]
            epochs = int(ep["epoch"].nunique())
            if per_epoch in ep.columns:
                inter = {int(i): float(v) for i, v in zip(ep["training_iteration"], ep[per_epoch])
                         if v == v}
        if r.error is not None:
            status = "errored"
        elif last.get("phase") == "done":
            status = "ok" if last.get("status") == "ok" else "failed"
        else:
            status = "stopped"
        value = last.get(final_key) if status == "ok" else None
        if status == "ok" and final_key not in last:
            status = "no objective"  # e.g. a misspelt search.objective: the trial's metrics lack it
            missing.update(k for k, v in last.items() if isinstance(v, float))
        value = float(value) if value is not None and math.isfinite(float(value)) else None
        tid = trial_id_for(grid_point(cfg)) if cfg else "?"
        rows.append({"trial": tid, "tune_trial_id": (r.path or "").rstrip("/").split("_")[-1] if r.path else "",
                     "_started": started,
                     "status": status, "objective": value, "epochs": epochs,
                     "iterations": int(last.get("training_iteration") or 0),
                     "last_intermediate": inter[max(inter)] if inter else None, "intermediate": inter,
                     "error": (last.get("error") or (str(r.error).splitlines()[0] if r.error else "")) or "",
                     **{k: cfg.get(k) for k in search.params}})
    if missing and log:
        log(f"hpo: the finished trials report no {final_key!r}; check search.objective (their metrics include: "
            f"{', '.join(sorted(missing)[:12])})")
    rows.sort(key=lambda x: (x.pop("_started"), x["tune_trial_id"]))  # in the order the trials started
    for i, row in enumerate(rows):
        row["number"] = i
    return rows


def rebuild_optuna_study(rows: list[dict[str, Any]], search: SearchSpec):
    """An in-memory Optuna study of the finished trials (completed and ASHA-pruned)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if search.mode == "min" else "maximize")
    dists = {k: p.distribution() for k, p in search.params.items()}
    for row in rows:
        params = {k: (int(row[k]) if isinstance(dists[k], optuna.distributions.IntDistribution) else row[k])
                  for k in search.params if row.get(k) is not None}
        if len(params) != len(dists):
            continue
        if row["status"] == "ok" and row["objective"] is not None:
            state, value = optuna.trial.TrialState.COMPLETE, row["objective"]
        elif row["status"] == "stopped":
            state, value = optuna.trial.TrialState.PRUNED, None
        else:
            state, value = optuna.trial.TrialState.FAIL, None
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value, state=state,
                                                  intermediate_values=row["intermediate"]))
    return study


def param_importances(study) -> tuple[dict[str, float], str]:
    """Optuna's fANOVA importances (PED-ANOVA if fANOVA is unavailable); empty with < 2 completed trials."""
    import optuna
    from optuna.importance import get_param_importances

    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(done) < 2:
        return {}, "none (fewer than 2 completed trials)"
    for name in ("FanovaImportanceEvaluator", "PedAnovaImportanceEvaluator"):
        try:
            evaluator = getattr(optuna.importance, name)(seed=0) if name.startswith("Fanova") \
                else getattr(optuna.importance, name)()
            imp = get_param_importances(study, evaluator=evaluator)
            return {k: float(v) for k, v in imp.items()}, name.replace("ImportanceEvaluator", "")
        except Exception:  # noqa: BLE001 - try the next evaluator
            continue
    return {}, "none (no evaluator could run)"


def plot_history(rows: list[dict[str, Any]], search: SearchSpec, final_key: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from raycg.utils.io import atomic_path

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ok = [(r["number"], r["objective"]) for r in rows if r["objective"] is not None]
    stopped = [(r["number"], r["last_intermediate"]) for r in rows
               if r["status"] == "stopped" and r["last_intermediate"] is not None]
    if ok:
        ax.plot(*zip(*ok), "o", color="C0", label=f"completed ({final_key})")
        best, line = None, []
        for n, v in sorted(ok):
            best = v if best is None else (min(best, v) if search.mode == "min" else max(best, v))
            line.append((n, best))
        line.append((len(rows) - 1, best))
        ax.step(*zip(*line), where="post", color="C3", label="best so far")
    if stopped:
        ax.plot(*zip(*stopped), "x", color="0.5", label="stopped early by ASHA (last epoch value)")
    ax.set_xlabel("trial")
    ax.set_ylabel(final_key)
    ax.set_title("optimization history")
    if ok or stopped:
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)


def best_spec_mapping(raw: dict[str, Any], best: dict[str, Any], name: str) -> dict[str, Any]:
    out = copy.deepcopy(raw)
    out["name"] = name
    for key, value in best.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def summarize(uri: str, spec: StudySpec, search: SearchSpec, raw: dict[str, Any], results, *,
              export: str | None = None, log=None, elapsed_s: float | None = None) -> dict[str, Any]:
    """Write trials.csv, importances, the history plot, summary.json and best_spec.yaml."""
    import pandas as pd

    from raycg.utils.io import atomic_path, atomic_write_json, atomic_write_text

    log = log or print
    store = Store(uri)
    if store.remote:  # write locally, upload at the end
        local = node_cache_dir() / "hpo" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    else:
        local = Path(uri)
    out = local / OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    per_epoch, final_key = objective_keys(spec, search)
    rows = trial_rows(results, spec, search, log=log)
    table = pd.DataFrame([{k: v for k, v in r.items() if k != "intermediate"} for r in rows])
    with atomic_path(out / "trials.csv") as tmp:
        table.to_csv(tmp, index=False)
    study = rebuild_optuna_study(rows, search)
    importances, evaluator = param_importances(study)
    with atomic_path(out / "importances.csv") as tmp:
        pd.DataFrame({"param": list(importances), "importance": list(importances.values())}).to_csv(tmp, index=False)
    plot_history(rows, search, final_key, out / "history.png")
    ok = [r for r in rows if r["objective"] is not None]
    best = (min if search.mode == "min" else max)(ok, key=lambda r: r["objective"]) if ok else None
    counts = {s: sum(1 for r in rows if r["status"] == s)
              for s in ("ok", "stopped", "failed", "errored", "no objective")}
    finished = sum(counts.values())
    summary: dict[str, Any] = {
        "name": spec.name, "uri": uri, "objective": final_key, "mode": search.mode,
        "asha_metric": per_epoch if search.asha.enabled else None, "num_samples": search.num_samples,
        "n_trials": len(rows), "n_finished": finished, "counts": counts,
        "complete": finished >= search.num_samples,
        "best": None, "importances": importances, "importance_evaluator": evaluator,
        "elapsed_s": elapsed_s, "files": {"trials": str(out / "trials.csv"), "history": str(out / "history.png"),
                                          "importances": str(out / "importances.csv")},
    }
    if best is not None:
        params = {k: best[k] for k in search.params}
        params = {k: (v.item() if hasattr(v, "item") else v) for k, v in params.items()}
        export_name = search.export_name or f"{spec.name}_best"
        mapping = best_spec_mapping(raw, params, export_name)
        StudySpec.model_validate(mapping)  # the exported spec must load as a replica study
        header = (f"# Replica study with the best configuration of the search {spec.name!r}\n"
                  f"# ({final_key} = {best['objective']:.6g}, trial {best['trial']}, {finished} trials).\n"
                  f"# Run it with: raycg study run {Path(export) if export else local / BEST_SPEC}\n")
        text = header + yaml.safe_dump(mapping, sort_keys=False)
        atomic_write_text(local / BEST_SPEC, text)
        if export:
            atomic_write_text(Path(export), text)
        summary["best"] = {"trial": best["trial"], "value": best["objective"], "params": params,
                           "spec": str(Path(export) if export else local / BEST_SPEC), "export_name": export_name}
    summary["provenance"] = provenance({"spec": spec.model_dump(mode="json"), "search": search.model_dump(mode="json")},
                                       data_hash=(store.try_read_json("prepared/prepared.json") or {}).get("data_hash"))
    atomic_write_json(out / "summary.json", summary)
    if store.remote:
        store.upload_dir(out, OUT_DIR)
        if (local / BEST_SPEC).is_file():
            store.write_bytes(BEST_SPEC, (local / BEST_SPEC).read_bytes())
    log(format_summary(summary))
    return summary


def format_summary(s: dict[str, Any]) -> str:
    c = s["counts"]
    lines = [f"hpo {s['name']}: {s['n_finished']}/{s['num_samples']} trials finished ({c['ok']} completed, "
             f"{c['stopped']} stopped early by ASHA, {c['failed'] + c['errored']} failed"
             + (f", {c['no objective']} without the objective" if c.get("no objective") else "") + ")"]
    if s["best"]:
        b = s["best"]
        lines.append(f"best {s['objective']} = {b['value']:.5g} ({b['trial']}): "
                     + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in b["params"].items()))
    if s["importances"]:
        lines.append(f"importances ({s['importance_evaluator']}): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in s["importances"].items()))
    lines.append(f"history: {s['files']['history']}")
    if s["best"]:
        lines.append(f"best spec: {s['best']['spec']}  ->  raycg study run {s['best']['spec']}")
    return "\n".join(lines)
