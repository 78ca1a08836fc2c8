"""Ray's non-public API that raycg uses still exists and behaves, and pyproject pins the tested range.

If this fails after a Ray upgrade, the study would have lost a feature (progress after resume,
Optuna's intermediate values, preflight checks): fix ``raycg/ray_compat.py`` before
widening the pin. No Ray is started here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib

from raycg import ray_compat

ROOT = Path(__file__).resolve().parents[2]


def test_every_private_name_exists_in_the_installed_ray():
    assert ray_compat.check_api() == []


def test_pyproject_pins_ray_to_the_tested_range():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    ray_dep = next(d for d in deps if d.startswith("ray["))
    lo, hi = ray_compat.TESTED
    assert re.search(rf">={lo[0]}\.{lo[1]}\b", ray_dep), ray_dep
    assert re.search(rf"<{hi[0]}\.{hi[1] + 1}\b", ray_dep), ray_dep  # below the next, untested minor
    assert ray_compat.is_tested_version(), "the installed ray is outside the tested range"


def test_restored_tuner_gets_its_callbacks_back(tmp_path):
    from ray import tune

    tuner = tune.Tuner(lambda config: None, run_config=tune.RunConfig(storage_path=str(tmp_path), name="t",
                                                                     verbose=2))
    marker = tune.Callback()
    ray_compat.attach_callbacks(tuner, [marker])
    assert tuner._local_tuner._run_config.callbacks == [marker]
    assert tuner._local_tuner._run_config.verbose == 0

    class Other:  # an object without Tune's internals: a loud, specific error
        pass

    with pytest.raises(ray_compat.RayAPIChanged, match=r"changed Tuner\._local_tuner\._run_config"):
        ray_compat.attach_callbacks(Other(), [marker])


def test_optuna_trial_of_a_running_and_a_completed_tune_trial():
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from raycg.study.hpo.search import IntermediateOptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = IntermediateOptunaSearch(space={"x": optuna.distributions.FloatDistribution(0, 1)}, metric="final",
                                      mode="min", sampler=optuna.samplers.RandomSampler(seed=0),
                                      intermediate="per_epoch")
    assert isinstance(search, OptunaSearch)
    assert search.suggest("t1") is not None
    ot_trial = ray_compat.optuna_trial(search, "t1")
    assert ot_trial is not None and ray_compat.optuna_trial(search, "nope") is None
    search.on_trial_result("t1", {"per_epoch": 0.5, "training_iteration": 1})
    search.on_trial_result("t1", {"other": 1.0, "training_iteration": 2})  # rows without it are fine
    search.on_trial_complete("t1", {"final": 0.4, "per_epoch": 0.4, "training_iteration": 3})
    assert ray_compat.optuna_trial(search, "t1") is None
    done = search._ot_study.trials[0]
    assert done.intermediate_values == {1: 0.5} and done.value == 0.4


def test_local_gpu_count_and_cluster_yaml_validation():
    from raycg.cluster.local_cluster import fake_cluster_config

    assert ray_compat.local_gpu_count() >= 0
    cfg = ray_compat.validate_cluster_config(fake_cluster_config(23456), complete=True)
    assert cfg["provider"]["type"] == "fake_multinode"
