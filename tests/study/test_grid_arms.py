"""Grid arms: named conditions x seeds, their points, ids, configs, validation and JSON round trip."""

from __future__ import annotations

import json

import pytest

from raycg.errors import ConfigError
from raycg.study.grid import baseline_point, grid_points, make_trial, point_keys, trial_config
from raycg.study.keys import config_hash, trial_id_for
from raycg.study.spec import StudySpec, spec_from_any

TRAINING = {"epochs": 2, "loss": {"energy_target": "tica-marginal"}}
ARMS = {
    "force-matching": {"energy_weight": 0},
    "published": {"energy_weight": 1, "training.loss.energy_target": "tica-marginal"},
    "corrected": {"energy_weight": 1, "training.loss.energy_target": "fes-corrected",
                  "training.loss.base_model": "force-matched"},
}


def arm_grid(**extra) -> dict:
    return {"seeds": 2, "arms": ARMS, "baseline": "force-matching", "order": ["published", "corrected"], **extra}


def arm_spec(grid: dict | None = None, **extra) -> StudySpec:
    return spec_from_any({"name": "a", "training": TRAINING, "grid": grid or arm_grid(), **extra})


def test_points_are_arms_x_seeds_baseline_first_then_the_declared_order():
    spec = arm_spec(arm_grid(sweep={"training.optim.lr": [1e-3, 1e-4]}))
    pts = grid_points(spec)
    assert len(pts) == spec.grid.n_trials() == 12
    assert [p["arm"] for p in pts[::4]] == ["force-matching", "published", "corrected"]
    assert pts[0] == {"arm": "force-matching", "energy_weight": 0.0, "seed": 0, "training.optim.lr": 1e-3}
    assert trial_id_for(pts[5]) == "published_w1_s0_lr=0.0001"
    assert len({trial_id_for(p) for p in pts}) == 12
    assert point_keys(spec) == ("arm", "energy_weight", "seed", "training.optim.lr")
    assert spec.grid.energy_weights == [0.0, 1.0]  # derived, so readers of energy_weights keep working
    no_order = arm_spec(arm_grid(order=None))
    assert [p["arm"] for p in grid_points(no_order)[::2]] == ["force-matching", "corrected", "published"]


def test_trial_ids_of_a_grid_without_arms_do_not_change():
    spec = spec_from_any({"name": "g", "training": TRAINING, "grid": {"energy_weights": [0.0, 0.5], "seeds": [3]}})
    assert [trial_id_for(p) for p in grid_points(spec)] == ["w0_s3", "w0.5_s3"]
    assert all("arm" not in p for p in grid_points(spec))
    dumped = spec.model_dump(mode="json")["grid"]
    assert dumped == {"energy_weights": [0.0, 0.5], "seeds": [3], "sweep": {}}  # the spec's hash is as before


def test_an_arm_sets_its_values_in_the_trial_config_only():
    spec = arm_spec()
    points = {(p["arm"], p["seed"]): p for p in grid_points(spec)}
    cfg = trial_config(spec, points["corrected", 1])
    loss = cfg.training.loss
    assert (loss.energy_weight, loss.energy_target, loss.base_model) == (1.0, "fes-corrected", "force-matched")
    assert cfg.training.seed == 1 and cfg.simulation.seed == 1
    assert spec.training.loss.energy_target == "tica-marginal" and spec.training.loss.base_model == "priors"
    base = trial_config(spec, points["force-matching", 1]).training.loss
    assert (base.energy_weight, base.energy_target) == (0.0, "tica-marginal")
    pub, cor = make_trial(spec, points["published", 1]), make_trial(spec, points["corrected", 1])
    assert pub.config_json()["arm"] == "published" and pub.config_hash == config_hash(pub.config_json())
    assert pub.config_hash != cor.config_hash
    with pytest.raises(ConfigError, match="no arm 'other'"):
        trial_config(spec, {"arm": "other", "energy_weight": 1.0, "seed": 0})
    with pytest.raises(ConfigError, match="energy_weight is 1, the point says 2"):
        trial_config(spec, {"arm": "published", "energy_weight": 2.0, "seed": 0})


def test_the_baseline_point_is_the_same_seed_in_the_baseline_arm():
    spec = arm_spec(arm_grid(sweep={"simulation.dt_ps": [0.004]}))
    point = {"arm": "corrected", "energy_weight": 1.0, "seed": 1, "simulation.dt_ps": 0.004}
    assert baseline_point(spec, point) == {**point, "arm": "force-matching", "energy_weight": 0.0}
    plain = spec_from_any({"name": "g", "training": TRAINING, "grid": {"energy_weights": [0.0, 1.0], "seeds": 1}})
    assert baseline_point(plain, {"energy_weight": 1.0, "seed": 0}) == {"energy_weight": 0.0, "seed": 0}


def test_the_order_survives_a_json_round_trip_with_sorted_keys():
    spec = arm_spec()
    again = StudySpec.model_validate(json.loads(json.dumps(spec.model_dump(mode="json"), sort_keys=True)))
    assert [trial_id_for(p) for p in grid_points(again)] == [trial_id_for(p) for p in grid_points(spec)]
    assert again.grid.arm_order() == ["force-matching", "published", "corrected"]


def test_an_arms_energy_target_gets_the_reference_tica():
    spec = spec_from_any({"name": "a", "evaluation": {"tica_lag": 7}, "grid": {
        "seeds": 1, "baseline": "fm",
        "arms": {"fm": {"energy_weight": 0},
                 "pub": {"energy_weight": 1, "training.loss.energy_target": "tica-joint"}}}})
    assert spec.training.loss.energy_target == "none" and spec.training.tica.lag == 7
    assert trial_config(spec, {"arm": "pub", "energy_weight": 1.0, "seed": 0}).training.loss.energy_target == \
        "tica-joint"


@pytest.mark.parametrize("grid, match", [
    ({"seeds": 1, "arms": {"only": {"energy_weight": 0}}, "baseline": "only"}, "at least 2 arms"),
    ({"seeds": 1, "arms": {"a": {"energy_weight": 0}, "b": {"training.optim.lr": 1e-4}}, "baseline": "a"},
     "arm 'b': energy_weight must be set"),
    ({"seeds": 1, "arms": {"a": {"energy_weight": 0}, "b b": {"energy_weight": 1}}, "baseline": "a"}, "arm name"),
    ({"seeds": 1, "arms": {"a": {"energy_weight": 0}, "b": {"energy_weight": True}}, "baseline": "a"},
     "finite number"),
    ({"seeds": 1, "arms": {"a": {"energy_weight": 0}, "b": {"energy_weight": 0}}, "baseline": "a"},
     "arms 'a' and 'b' set the same values"),
    ({"seeds": 1, "arms": {"a": {"energy_weight": 0}, "b": {"energy_weight": 1, "storage.x": 1}}, "baseline": "a"},
     "cannot set 'storage.x'"),
    ({"seeds": 1, "arms": {"a": {"energy_weight": 0}, "b": {"energy_weight": 1, "training.nope": 1}},
      "baseline": "a"}, "arms.b: 'training.nope' is not a field"),
    ({"seeds": 1, "arms": {"a": {"energy_weight": 0}, "b": {"energy_weight": 1}}}, "baseline: name the arm"),
    ({"seeds": 1, "arms": {"a": {"energy_weight": 0}, "b": {"energy_weight": 1}}, "baseline": "c"},
     "baseline: name the arm"),
    ({"seeds": 1, "arms": {"a": {"energy_weight": 0}, "b": {"energy_weight": 1}}, "baseline": "a",
      "order": ["a", "b"]}, "order: list every arm but the baseline once"),
    ({"seeds": 1, "arms": {"a": {"energy_weight": 0}, "b": {"energy_weight": 1}}, "baseline": "a",
      "multiplicity": "fixed-sequence"}, "give order"),
    ({"seeds": 1, "energy_weights": [0, 1], "multiplicity": "fixed-sequence"}, "needs arms"),
    ({"seeds": 1, "energy_weights": [0, 1], "baseline": "a"}, "baseline and order name arms"),
    ({"seeds": 1}, "give energy_weights"),
    ({"seeds": 1, "energy_weights": [0, 2], "arms": {"a": {"energy_weight": 0}, "b": {"energy_weight": 1}},
      "baseline": "a"}, "leave energy_weights out"),
    ({"seeds": 1, "arms": {"a": {"energy_weight": 0}, "b": {"energy_weight": 1, "training.optim.lr": 1e-4}},
      "baseline": "a", "sweep": {"training.optim.lr": [1e-3]}}, "set by an arm and swept"),
])
def test_a_bad_arms_grid_is_refused_naming_the_problem(grid, match):
    with pytest.raises(ConfigError, match=match):
        spec_from_any({"name": "a", "training": TRAINING, "grid": grid})


def test_the_precheck_refuses_a_bad_arms_grid_before_torch(tmp_path):
    from raycg.study.spec.precheck import precheck_spec

    path = tmp_path / "s.yaml"
    path.write_text("name: a\ngrid:\n  seeds: 1\n  arms: {a: {energy_weight: 0}, b: {energy_weight: 1}}\n")
    with pytest.raises(ConfigError, match=r"s.yaml:\d+: grid: .*baseline: name the arm"):
        precheck_spec(path)


def test_a_force_matched_base_needs_a_baseline_arm_of_weight_0():
    from raycg.study.pipelines import get_pipeline

    arms = {"pub": {"energy_weight": 1}, "cor": {"energy_weight": 2, "training.loss.energy_target": "fes-corrected",
                                                 "training.loss.base_model": "force-matched"}}
    spec = arm_spec({"seeds": 1, "arms": arms, "baseline": "pub"})
    cfg = trial_config(spec, {"arm": "cor", "energy_weight": 2.0, "seed": 0})
    with pytest.raises(ConfigError, match="grid.arms.pub: .*energy_weight must be 0"):
        get_pipeline("cgschnet").check_trial(cfg, source="s.yaml")
    ok = arm_spec()
    for p in grid_points(ok):
        get_pipeline("cgschnet").check_trial(trial_config(ok, p), source="s.yaml")
