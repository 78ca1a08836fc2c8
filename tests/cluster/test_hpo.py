"""HPO mode on a local Ray: a tiny Optuna + ASHA search on the embedded tiny data.

One search serves every check: it is interrupted (SIGINT, as Ctrl-C) once three trials have
finished, then resumed by running it again; ASHA stops some trials early; the exported best spec
loads and runs as a replica study. The preflight checks against this (CPU-only, no autoscaler)
Ray live here too, to share its start-up.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pandas as pd
import pytest
import yaml

from raycg.errors import ConfigError

pytestmark = pytest.mark.ray

EPOCHS = 3
N = 6
SEARCH = {
    "num_samples": N,
    "max_concurrent_trials": 1,  # one at a time: ASHA sees rungs in a fixed order (2 made stopping timing-dependent)
    "n_startup_trials": 3,
    "sampler_seed": 1,
    "asha": {"grace_period": 1, "reduction_factor": 2},
    "params": {
        "training.optim.lr": {"loguniform": [1.0e-5, 3.0e-2]},
        "training.model.hidden_channels": {"choice": [8, 16]},
    },
}


def _interrupter(after: int):
    from ray import tune

    class Interrupt(tune.Callback):
        """Ctrl-C once ``after`` trials have finished (Tune saves its state and returns)."""

        def __init__(self):
            self.n = 0

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.n += 1
            if self.n == after:
                os.kill(os.getpid(), signal.SIGINT)

    return Interrupt()


@pytest.fixture(scope="module")
def search(ray_local, tiny_dataset, tiny_cg_spec, tmp_path_factory):
    from raycg.study.hpo import run_hpo

    storage = tmp_path_factory.mktemp("hpo")
    spec = tiny_cg_spec("hpo", tiny_dataset, storage)
    spec["training"]["epochs"] = EPOCHS
    spec["search"] = json.loads(json.dumps(SEARCH))
    lines: list[str] = []
    first = run_hpo(spec, log=lines.append, callbacks=[_interrupter(3)])
    study = storage / "hpo"
    finished_before = {p.parent.name: p.read_bytes() for p in (study / "trials").glob("*/result.json")}
    resumed = run_hpo(spec, log=lines.append)
    return {"first": first, "resumed": resumed, "dir": study, "lines": lines, "finished_before": finished_before,
            "storage": storage}


def test_interrupted_search_resumes_and_completes(search):
    first, resumed = search["first"], search["resumed"]
    assert not first["complete"] and 3 <= first["n_finished"] < N, first["counts"]
    assert any("run the same command again to continue" in ln for ln in search["lines"])
    assert any("resuming the search" in ln for ln in search["lines"])
    assert resumed["complete"] and resumed["n_finished"] == N and resumed["n_trials"] == N, resumed["counts"]
    trials = pd.read_csv(search["dir"] / "hpo" / "trials.csv")
    assert len(trials) == N and trials["tune_trial_id"].is_unique
    # trials that had finished before the interruption were not run again
    for tid, before in search["finished_before"].items():
        assert (search["dir"] / "trials" / tid / "result.json").read_bytes() == before, tid


def test_asha_stops_some_trials_early(search):
    trials = pd.read_csv(search["dir"] / "hpo" / "trials.csv")
    stopped = trials[trials["status"] == "stopped"]
    done = trials[trials["status"] == "ok"]
    assert len(stopped) >= 1, trials[["trial", "status", "epochs"]]
    assert (stopped["epochs"] < EPOCHS).all() and stopped["objective"].isna().all()
    assert len(done) >= 1 and (done["epochs"] == EPOCHS).all() and done["objective"].notna().all()
    for tid in done["trial"]:  # objective val_loss: the trials only trained (no simulation, no scoring)
        res = json.loads((search["dir"] / "trials" / tid / "result.json").read_text())
        assert res["status"] == "ok" and list(res["stage_times"]) == ["train"]
    s = search["resumed"]
    assert s["counts"]["stopped"] == len(stopped) and s["asha_metric"] == "best_val_loss"
    best = done.loc[done["objective"].idxmin()]
    assert s["best"]["value"] == pytest.approx(best["objective"])
    assert s["best"]["params"]["training.optim.lr"] == pytest.approx(best["training.optim.lr"])


def test_summary_importances_and_history(search):
    out = search["dir"] / "hpo"
    summary = json.loads((out / "summary.json").read_text())
    imp = summary["importances"]
    assert set(imp) == set(SEARCH["params"]) and sum(imp.values()) == pytest.approx(1.0, abs=1e-6)
    assert summary["provenance"]["data_hash"] and summary["provenance"]["packages"]["optuna"]
    assert (out / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(out / "importances.csv")) == len(SEARCH["params"])


def test_exported_spec_runs_as_replica_study(search):
    from raycg.study import load_spec, run_study

    path = Path(search["resumed"]["best"]["spec"])
    assert path == search["dir"] / "best_spec.yaml"
    assert "search" not in yaml.safe_load(path.read_text())  # a plain replica-study spec
    spec = load_spec(path)
    best = search["resumed"]["best"]["params"]
    assert spec.name == "hpo_best" and spec.training.optim.lr == pytest.approx(best["training.optim.lr"])
    assert spec.training.model.hidden_channels == best["training.model.hidden_channels"]
    table = run_study(path, log=lambda s: None)
    assert len(table) == 1 and table["status"].tolist() == ["ok"], table[["trial_id", "status", "error"]]
    assert table["kl_ref_model"].notna().all()


def test_search_spec_errors_are_one_line(tiny_dataset, tiny_cg_spec, tmp_path):
    from raycg.study.hpo import run_hpo

    spec = tiny_cg_spec("bad", tiny_dataset, tmp_path)
    for search, match in [
        ({"params": {"training.optim.lrr": {"uniform": [0.1, 0.2]}}}, "search.params.training.optim.lrr: not a field"),
        ({"params": {"training.optim.lr": {"uniform": [0.2, 0.1]}}}, "low .* must be below high"),
        ({"params": {"training.optim.lr": {"uniform": [0.1, 0.2], "choice": [1]}}}, "exactly one of"),
        ({"params": {"training.optim.lr": {"uniform": [-1.0, 0.2]}}}, "search.params.training.optim.lr=-1.0"),
        ({"params": {"simulation.dt_ps": {"choice": [0.002]}}}, "objective val_loss"),
        ({"params": {}}, "search.params"),
    ]:
        with pytest.raises(ConfigError, match=match) as err:
            run_hpo({**spec, "search": search}, log=lambda s: None)
        assert "\n" not in str(err.value)
    assert not (tmp_path / "bad").exists()  # nothing was written


def test_gpu_request_on_cpu_only_ray_without_autoscaler_fails_before_starting(ray_local, tiny_dataset,
                                                                               tiny_cg_spec, tmp_path):
    from raycg.study import run_study

    spec = tiny_cg_spec("gpu", tiny_dataset, tmp_path, resources={"cpus": 1, "gpu": 1})
    with pytest.raises(ConfigError, match=r"resources\.gpu: each trial asks for 1 GPU .* no autoscaler") as err:
        run_study(spec, log=lambda s: None)
    assert "\n" not in str(err.value) and "resources.gpu: 0" in str(err.value)
    assert not (tmp_path / "gpu").exists()  # nothing written, nothing started


def test_local_storage_with_nodes_on_several_machines_is_refused(ray_local, tiny_dataset, tiny_cg_spec, tmp_path):
    """The live snapshot of this Ray, plus a node on a second machine: local storage cannot serve both."""
    from raycg.study.preflight import ClusterSnapshot, cluster_snapshot, preflight
    from raycg.study.spec import spec_from_any

    snap = cluster_snapshot()
    assert len(snap.hosts) == 1 and not snap.autoscaler
    spec = spec_from_any(tiny_cg_spec("two", tiny_dataset, tmp_path))
    preflight(spec, snapshot=snap)  # one machine: a local directory is fine
    two = ClusterSnapshot(nodes=[*snap.nodes, {"host": "other-machine", "resources": {"CPU": 8.0}}],
                          where="the cluster at 10.0.0.1:6379")
    with pytest.raises(ConfigError, match=r"storage: .* local directory .* nodes on 2 machines") as err:
        preflight(spec, snapshot=two)
    assert "\n" not in str(err.value) and "s3://" in str(err.value)
