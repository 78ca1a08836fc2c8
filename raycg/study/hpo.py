"""HPO mode: tune CGSchNet's model and training hyperparameters before a replica study.

``raycg study tune SPEC`` reads a study spec with an extra ``search:`` section::

    search:
      objective: val_loss          # or a score metric (kl_ref_model, fes_mse, ...): short simulation + score
      mode: min
      num_samples: 30              # Optuna trials
      max_concurrent_trials: 4     # pending trials an autoscaler can see
      sampler_seed: 0              # TPE is seeded: the same search suggests the same configs
      energy_weight: 0.0           # the arm the search runs at (default: the grid's first weight)
      asha: {grace_period: 2, reduction_factor: 3}
      params:
        training.optim.lr: {loguniform: [1.0e-4, 3.0e-3]}
        training.model.hidden_channels: {choice: [32, 64, 128]}
        training.model.num_interactions: {int: [1, 3]}

Each Optuna (TPE) suggestion is one ordinary raycg trial (the same trainable as the replica study,
so reporting, checkpoints, dashboard gauges and retries are identical) running inside Ray Tune;
ASHA stops poor trials early on the per-epoch validation loss. With ``objective: val_loss`` the
trials only train; with a score metric they also run the (shortened: ``search.simulation``)
simulation and score it, ASHA still judging the training epochs.

Outputs, in the search directory ``STORAGE/NAME/`` (next to its Tune state, so running the same
command again resumes an interrupted search): ``hpo/trials.csv``, ``hpo/summary.json`` (best
configuration, parameter importances, provenance), ``hpo/importances.csv``, ``hpo/history.png``
and ``best_spec.yaml``: the input spec with the best values filled in and no ``search:``
section, ready for ``raycg study run``.
"""

from __future__ import annotations

import builtins
import copy
import math
import os
import time
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, field_validator, model_validator

from raycg.config import StrictModel, read_yaml, validate_config
from raycg.errors import ConfigError
from raycg.study.spec import StudySpec, config_hash, get_dotted, trial_config, trial_id_for
from raycg.study.storage import Store, join, normalize
from raycg.utils.provenance import provenance

TUNE_DIR = "tune"
OUT_DIR = "hpo"
BEST_SPEC = "best_spec.yaml"
#: objective -> (per-epoch key ASHA judges, key of the trial's final result), per pipeline
VAL_KEYS = {"cgschnet": ("best_val_loss", "train_best_val_loss"), "toy": ("train_loss", "final_train_loss")}


# --- the search section -----------------------------------------------------------------------------
class ParamSpec(StrictModel):
    """One searched field: exactly one of uniform, loguniform, int, logint (bounds inclusive), choice."""

    uniform: tuple[float, float] | None = None
    loguniform: tuple[float, float] | None = None
    int: tuple[builtins.int, builtins.int] | None = None  # (the field shadows the builtin here)
    logint: tuple[builtins.int, builtins.int] | None = None
    choice: list[Any] | None = None

    @model_validator(mode="after")
    def _one(self) -> ParamSpec:
        given = [k for k in ("uniform", "loguniform", "int", "logint", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of uniform, loguniform, int, logint, choice "
                             f"(got {', '.join(given) or 'none'})")
        kind = given[0]
        if kind == "choice":
            if not self.choice:
                raise ValueError("choice needs at least one value")
            return self
        lo, hi = getattr(self, kind)
        if not lo < hi:
            raise ValueError(f"{kind}: low ({lo}) must be below high ({hi})")
        if kind in ("loguniform", "logint") and lo <= 0:
            raise ValueError(f"{kind}: low must be > 0")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("uniform", "loguniform", "int", "logint", "choice") if getattr(self, k) is not None)

    def values_to_check(self) -> list[Any]:
        return list(self.choice) if self.kind == "choice" else list(getattr(self, self.kind))

    def tune_domain(self):
        from ray import tune

        k = self.kind
        if k == "choice":
            return tune.choice(list(self.choice))
        lo, hi = getattr(self, k)
        return {"uniform": lambda: tune.uniform(lo, hi), "loguniform": lambda: tune.loguniform(lo, hi),
                "int": lambda: tune.randint(lo, hi + 1), "logint": lambda: tune.lograndint(lo, hi + 1)}[k]()

    def distribution(self):
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        k = self.kind
        if k == "choice":
            return CategoricalDistribution(list(self.choice))
        lo, hi = getattr(self, k)
        if k in ("int", "logint"):
            return IntDistribution(int(lo), int(hi), log=k == "logint")
        return FloatDistribution(float(lo), float(hi), log=k == "loguniform")


class AshaSpec(StrictModel):
    enabled: bool = True
    grace_period: int = Field(1, ge=1, description="epochs every trial runs before it can be stopped")
    reduction_factor: float = Field(3.0, gt=1)
    max_t: int | None = Field(None, ge=1, description="epochs (default: training.epochs)")


class SearchSpec(StrictModel):
    params: dict[str, ParamSpec] = Field(min_length=1)
    objective: str = Field("val_loss", description="val_loss, or a score metric (runs a short simulation)")
    mode: Literal["min", "max"] = "min"
    num_samples: int = Field(20, ge=1)
    max_concurrent_trials: int = Field(2, ge=1)
    sampler_seed: int = 0
    n_startup_trials: int = Field(10, ge=1, description="random trials before TPE models the results")
    energy_weight: float | None = Field(None, ge=0)
    seed: int | None = None
    asha: AshaSpec = Field(default_factory=AshaSpec)
    simulation: dict[str, Any] = Field(default_factory=dict,
                                       description="overrides of the simulation section for a score objective")
    export_name: str | None = Field(None, description="name of the exported replica study (default NAME_best)")

    @field_validator("params")
    @classmethod
    def _keys(cls, v: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for key in v:
            if key.split(".")[0] not in ("training", "simulation", "evaluation", "toy"):
                raise ValueError(f"cannot search {key!r}: searched fields live under training. (model, optimiser, "
                                 "loss), or simulation./evaluation. with a score objective")
        return v

    @property
    def trains_only(self) -> bool:
        return self.objective == "val_loss"


class _SearchSection(StrictModel):
    """Validates ``search:`` so that errors name ``search.<field>`` and its YAML line."""

    search: SearchSpec


def load_hpo_spec(path: str | os.PathLike, **overrides: Any) -> tuple[StudySpec, SearchSpec, dict[str, Any]]:
    """Read a study spec with a ``search:`` section: (study spec, search, the raw study mapping)."""
    data, lines = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a spec must be a mapping of sections (name, dataset, grid, search, ...)")
    return hpo_from_mapping(data, source=str(path), lines=lines, **overrides)


def hpo_from_mapping(data: dict[str, Any], *, source: str = "spec", lines: dict | None = None,
                     **overrides: Any) -> tuple[StudySpec, SearchSpec, dict[str, Any]]:
    data = copy.deepcopy(data)
    search_raw = data.pop("search", None)
    if search_raw is None:
        raise ConfigError(f"{source}: search: required field is missing",
                          hint="add a search: section with params to tune (see studies/hpo_quickstart.yaml), "
                               "or use `raycg study run` for a plain study")
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    spec = validate_config(StudySpec, data, source=source, lines=lines)
    search = validate_config(_SearchSection, {"search": search_raw}, source=source, lines=lines).search
    check_search(spec, search, source=source, lines=lines)
    return spec, search, data


def check_search(spec: StudySpec, search: SearchSpec, *, source: str = "spec", lines: dict | None = None) -> None:
    """Every searched field exists, means something for this objective, and its bounds are valid configs."""

    def _where(key: str) -> str:
        line = (lines or {}).get(("search", "params", key))
        return f"{source}{f':{line}' if line else ''}: search.params.{key}"

    dump = spec.model_dump(mode="json")
    for key in search.params:
        try:
            get_dotted(dump, key)
        except KeyError:
            raise ConfigError(f"{_where(key)}: not a field of this spec",
                              hint="use the dotted path of an existing field, e.g. training.optim.lr") from None
        if search.trains_only and key.split(".")[0] in ("simulation", "evaluation"):
            raise ConfigError(f"{_where(key)}: with objective val_loss the trials only train, so "
                              f"{key.split('.')[0]} settings have no effect",
                              hint="search training.* fields, or set search.objective to a score metric")
    base = hpo_study_spec(spec, search, source=source)
    for key, p in search.params.items():
        for value in p.values_to_check():
            point = {"energy_weight": base.grid.energy_weights[0], "seed": base.grid.seed_list()[0], key: value}
            cfg = trial_config(base, point)
            if spec.pipeline == "toy":
                from raycg.study.pipelines import toy_settings

                toy_settings(cfg)
            else:
                from raycg.study import adapters

                adapters.check_trial_config(cfg, source=f"{source}: search.params.{key}={value!r}")
    if search.energy_weight is not None and spec.pipeline == "cgschnet" and search.energy_weight > 0:
        loss = getattr(spec.training, "loss", None)
        if loss is not None and loss.energy_target == "none":
            raise ConfigError(f"{source}: search.energy_weight: > 0 needs training.loss.energy_target")


def hpo_study_spec(spec: StudySpec, search: SearchSpec, *, source: str = "spec") -> StudySpec:
    """The spec the search trials run: one energy weight, one seed, the simulation overrides applied."""
    data = spec.model_dump(mode="json")
    w = search.energy_weight if search.energy_weight is not None else spec.grid.energy_weights[0]
    s = search.seed if search.seed is not None else spec.grid.seed_list()[0]
    data["grid"] = {"energy_weights": [float(w)], "seeds": [int(s)], "sweep": {}}
    data["concurrency"] = {"max_concurrent_trials": search.max_concurrent_trials}
    data["simulation"] = {**data["simulation"], **search.simulation}
    return validate_config(StudySpec, data, source=f"{source} (search trials)")


# --- running ----------------------------------------------------------------------------------------
def _optuna_search_class():
    from ray.tune.search.optuna import OptunaSearch

    class _Search(OptunaSearch):
        """OptunaSearch that records the per-epoch value (for pruned trials) and tolerates rows without it."""

        def __init__(self, *args, intermediate: str, **kwargs):
            super().__init__(*args, **kwargs)
            self._intermediate = intermediate

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            v = result.get(self._intermediate)
            if trial_id in self._completed_trials or trial_id not in self._ot_trials or v is None:
                return
            try:
                if math.isfinite(float(v)):
                    self._ot_trials[trial_id].report(float(v), int(result.get("training_iteration", 0)))
            except Exception:  # noqa: BLE001 - a reporting hiccup must not stop the search
                pass

    return _Search


def _progress_callback(log, n_total: int, final_key: str, mode: str):
    from ray import tune

    class _HPOProgress(tune.Callback):
        def __init__(self):
            self.done: dict[str, str] = {}
            self.best: tuple[float, str] | None = None

        def __reduce__(self):  # not part of the saved state worth keeping
            return (_progress_callback, (None, n_total, final_key, mode))

        def on_trial_complete(self, iteration, trials, trial, **info):
            last = trial.last_result or {}
            if last.get("phase") == "done":
                kind = "ok" if last.get("status") == "ok" else "failed"
            else:
                kind = "stopped early"
            self.done[trial.trial_id] = kind
            v = last.get(final_key)
            name = _trial_name(trial)
            if kind == "ok" and v is not None and math.isfinite(float(v)):
                better = self.best is None or (float(v) < self.best[0] if mode == "min" else float(v) > self.best[0])
                if better:
                    self.best = (float(v), name)
            n_stopped = sum(1 for k in self.done.values() if k == "stopped early")
            best = f"; best {final_key} {self.best[0]:.4g} ({self.best[1]})" if self.best else ""
            (log or print)(f"hpo: {len(self.done)}/{n_total} trials finished ({n_stopped} stopped early by ASHA): "
                           f"{name} {kind}{best}")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.done[trial.trial_id] = "errored"
            (log or print)(f"hpo: {_trial_name(trial)} errored (retries exhausted)")

    return _HPOProgress()


def _point(config: dict[str, Any]) -> dict[str, Any]:
    from raycg.study.trial import grid_point

    return grid_point(config)


def _trial_name(trial) -> str:
    return trial_id_for(_point(trial.config))


def _trial_dirname(trial) -> str:
    return f"{trial_id_for(_point(trial.config))[:70]}_{trial.trial_id.split('_')[-1]}"


def search_uri(spec: StudySpec) -> str:
    return join(normalize(spec.storage), spec.name)


def run_hpo(spec_or_path: str | os.PathLike | dict, *, address: str | None = None, storage: str | None = None,
            name: str | None = None, num_samples: int | None = None, export: str | None = None, log=None,
            callbacks: list | None = None, shutdown: bool | None = None) -> dict[str, Any]:
    """Run (or resume) a search; return the summary (also written to ``NAME/hpo/summary.json``)."""
    from raycg.study import runner

    log = log or (lambda s: print(s, flush=True))
    source = str(spec_or_path) if not isinstance(spec_or_path, dict) else "spec"
    overrides = {"storage": storage, "name": name}
    if isinstance(spec_or_path, dict):
        spec, search, raw = hpo_from_mapping(spec_or_path, source=source, **overrides)
    else:
        spec, search, raw = load_hpo_spec(spec_or_path, **overrides)
    if num_samples is not None:
        search = search.model_copy(update={"num_samples": int(num_samples)})
    base = hpo_study_spec(spec, search, source=source)
    runner.validate_study(base, source=source)
    from raycg.study.preflight import preflight

    preflight(base, address=address, source=source, log=log)
    uri = search_uri(spec)
    store = Store(uri)
    key = config_hash({"spec": spec.model_dump(mode="json"), "search": search.model_dump(mode="json",
                                                                                          exclude={"num_samples"})})
    old = store.try_read_json("study.json")
    if old is not None and (old.get("kind") != "hpo" or old.get("search_hash") != key):
        raise ConfigError(f"{source}: a different study or search named {spec.name!r} already exists at {uri}",
                          hint="pick another --name, or delete the old directory")
    from raycg.study.prepare import prepare

    prepared = prepare(base, uri, log=log)
    record = runner._study_record(base, uri, prepared)
    record.update(kind="hpo", search_hash=key, search=search.model_dump(mode="json"), source_spec=raw,
                  trial_ids=[], n_trials=search.num_samples)
    store.write_json("study.json", record)

    started = runner._ensure_ray(address, log=log)
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"  # train/sim/final rows carry different keys
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    per_epoch, final_key = _keys(spec, search)
    tune_path = join(uri, TUNE_DIR)
    progress = _progress_callback(log, search.num_samples, final_key, search.mode)
    trainable = runner._trainable(base)
    t0 = time.time()
    interrupted = False
    try:
        if tune.Tuner.can_restore(tune_path):
            log(f"hpo {spec.name}: resuming the search in {tune_path}")
            tuner = tune.Tuner.restore(tune_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
            tuner._local_tuner._run_config.callbacks = [progress, *(callbacks or [])]
        else:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            sampler = optuna.samplers.TPESampler(seed=search.sampler_seed,
                                                 n_startup_trials=min(search.n_startup_trials, search.num_samples))
            searcher = _optuna_search_class()(metric=final_key, mode=search.mode, sampler=sampler,
                                              intermediate=per_epoch)
            epochs = _epochs(spec)
            if search.asha.enabled:
                scheduler = ASHAScheduler(time_attr="training_iteration", metric=per_epoch, mode=search.mode,
                                          max_t=search.asha.max_t or epochs, grace_period=search.asha.grace_period,
                                          reduction_factor=search.asha.reduction_factor, stop_last_trials=False)
            else:
                scheduler = FIFOScheduler()
            space: dict[str, Any] = {"study": uri, "energy_weight": base.grid.energy_weights[0],
                                     "seed": base.grid.seed_list()[0]}
            if search.trains_only:
                space["phases"] = ["train"]
            space.update({k: p.tune_domain() for k, p in search.params.items()})
            log(f"hpo {spec.name}: {search.num_samples} trials, TPE (seed {search.sampler_seed}) over "
                f"{len(search.params)} parameter(s), objective {final_key} ({search.mode}), "
                f"{'ASHA on ' + per_epoch if search.asha.enabled else 'no early stopping'}, "
                f"at most {search.max_concurrent_trials} at once -> {uri}")
            tuner = tune.Tuner(
                trainable, param_space=space,
                tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=search.num_samples,
                                            max_concurrent_trials=search.max_concurrent_trials, reuse_actors=True,
                                            trial_name_creator=_trial_name, trial_dirname_creator=_trial_dirname),
                run_config=tune.RunConfig(name=TUNE_DIR, storage_path=uri, verbose=0,
                                          failure_config=tune.FailureConfig(max_failures=spec.retries.max_failures),
                                          checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                                          callbacks=[progress, *(callbacks or [])]),
            )
        try:
            results = tuner.fit()
        except KeyboardInterrupt:
            interrupted, results = True, None
        if results is None:
            results = tune.Tuner.restore(tune_path, trainable=trainable).get_results()
    finally:
        if shutdown or (shutdown is None and started):
            import ray

            ray.shutdown()
    summary = summarize(uri, spec, search, raw, results, export=export, log=log, elapsed_s=time.time() - t0)
    if interrupted or not summary["complete"]:
        log(f"hpo {spec.name}: interrupted with {summary['n_finished']}/{search.num_samples} trials finished; run "
            "the same command again to continue the search")
        if interrupted:
            raise KeyboardInterrupt
    return summary


def _keys(spec: StudySpec, search: SearchSpec) -> tuple[str, str]:
    per_epoch, final = VAL_KEYS.get(spec.pipeline, VAL_KEYS["cgschnet"])
    return per_epoch, (final if search.trains_only else search.objective)


def _epochs(spec: StudySpec) -> int:
    if spec.pipeline == "toy":
        from raycg.study.pipelines import toy_settings

        return int(toy_settings({"toy": spec.toy})["epochs"])
    return int(getattr(spec.training, "epochs", None) or spec.training.get("epochs", 50))


# --- results ----------------------------------------------------------------------------------------
def trial_rows(results, spec: StudySpec, search: SearchSpec, log=None) -> list[dict[str, Any]]:
    """One row per Tune trial: params, status (ok / failed / stopped / errored), objective, epochs run."""
    per_epoch, final_key = _keys(spec, search)
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
        tid = trial_id_for(_point(cfg)) if cfg else "?"
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
        import hashlib

        from raycg.study.storage import node_cache_dir

        local = node_cache_dir() / "hpo" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    else:
        local = Path(uri)
    out = local / OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    per_epoch, final_key = _keys(spec, search)
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
                     + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in b["params"].items()))
    if s["importances"]:
        lines.append(f"importances ({s['importance_evaluator']}): "
                     + ", ".join(f"{k} {v:.2f}" for k, v in s["importances"].items()))
    lines.append(f"history: {s['files']['history']}")
    if s["best"]:
        lines.append(f"best spec: {s['best']['spec']}  ->  raycg study run {s['best']['spec']}")
    return "\n".join(lines)

def summarize_existing(spec_path: str | os.PathLike, *, storage: str | None = None, name: str | None = None,
                       export: str | None = None, log=None) -> dict[str, Any]:
    """Rewrite the summary of a search from its saved Tune state (no trials run)."""
    from ray import tune

    from raycg.study import runner

    spec, search, raw = load_hpo_spec(spec_path, storage=storage, name=name)
    uri = search_uri(spec)
    tune_path = join(uri, TUNE_DIR)
    if not tune.Tuner.can_restore(tune_path):
        raise ConfigError(f"{spec_path}: no search state at {tune_path}", hint="run `raycg study tune SPEC` first")
    results = tune.Tuner.restore(tune_path, trainable=runner._trainable(hpo_study_spec(spec, search))).get_results()
    return summarize(uri, spec, search, raw, results, export=export, log=log)
