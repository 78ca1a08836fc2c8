"""The grid and typed trial configs: points, ids, where the weight and seed land, rejected values."""

from __future__ import annotations

import pytest

from raycg.errors import ConfigError
from raycg.study.grid import grid_point, grid_points, make_trial, trial_config
from raycg.study.keys import config_hash, trial_id_for
from raycg.study.spec import StudySpec, spec_from_any

TINY_TRAINING = {"epochs": 2, "loss": {"energy_target": "tica-marginal"}}


def cg_spec(**extra) -> StudySpec:
    return spec_from_any({"name": "g", "training": TINY_TRAINING, "grid": {"energy_weights": [0.0, 0.5], "seeds": 2},
                          **extra})


def test_points_are_weights_x_seeds_x_sweeps_in_a_stable_order():
    spec = cg_spec(grid={"energy_weights": [0.0, 0.5], "seeds": [3, 4],
                         "sweep": {"training.optim.lr": [1e-3, 1e-4], "simulation.dt_ps": [0.002]}})
    pts = grid_points(spec)
    assert len(pts) == spec.grid.n_trials() == 8
    assert pts[0] == {"energy_weight": 0.0, "seed": 3, "training.optim.lr": 1e-3, "simulation.dt_ps": 0.002}
    assert [(p["energy_weight"], p["seed"]) for p in pts[::2]] == [(0.0, 3), (0.0, 4), (0.5, 3), (0.5, 4)]
    assert trial_id_for(pts[1]) == "w0_s3_dt_ps=0.002_lr=0.0001"
    assert len({trial_id_for(p) for p in pts}) == 8
    long = {"energy_weight": 1.0, "seed": 0, **{f"training.x{i}": "v" * 10 for i in range(8)}}
    assert len(trial_id_for(long)) <= 80 and trial_id_for(long) == trial_id_for(dict(long))


def test_trial_config_is_the_typed_spec_with_the_point_set():
    spec = cg_spec(grid={"energy_weights": [0.5], "seeds": 1, "sweep": {"training.optim.lr": [1e-4]}})
    point = grid_points(spec)[0]
    cfg = trial_config(spec, point)
    assert type(cfg) is StudySpec and cfg is not spec
    assert cfg.training.loss.energy_weight == 0.5 and cfg.training.optim.lr == 1e-4
    assert cfg.training.seed == 0 and cfg.simulation.seed == 0
    assert spec.training.loss.energy_weight == 0.0 and spec.training.optim.lr != 1e-4  # the spec is untouched
    trial = make_trial(spec, point)
    data = trial.config_json()
    assert data["training"]["loss"]["energy_weight"] == 0.5 and data["energy_weight"] == 0.5
    assert "grid" not in data and "storage" not in data
    assert trial.config_hash == config_hash(data) != make_trial(spec, {**point, "seed": 1}).config_hash


def test_the_toy_pipeline_puts_the_seed_in_its_own_section_only():
    spec = spec_from_any({"name": "t", "pipeline": "toy", "grid": {"energy_weights": [2.0], "seeds": [5]}})
    cfg = trial_config(spec, {"energy_weight": 2.0, "seed": 5})
    assert cfg.toy.seed == 5
    assert cfg.training.seed == 0 and cfg.training.loss.energy_weight == 0.0  # not its sections


@pytest.mark.parametrize("point, match", [
    ({"simulation.dt_ps": -1.0}, "simulation.dt_ps: Input should be greater than 0"),
    ({"training.optim.lr": "fast"}, "training.optim.lr: Input should be a valid number"),
    ({"training.loss.force_weight": 0.0}, "nothing to train"),
])
def test_a_bad_swept_value_is_rejected_naming_its_field(point, match):
    spec = cg_spec()
    with pytest.raises(ConfigError, match=match) as err:
        trial_config(spec, {"energy_weight": 0.0, "seed": 0, **point}, source="s.yaml")
    assert str(err.value).startswith("s.yaml: ") and "\n" not in str(err.value)


def test_an_energy_weight_without_an_energy_target_is_rejected():
    spec = spec_from_any({"name": "g", "grid": {"energy_weights": [0.0], "seeds": 1}})
    with pytest.raises(ConfigError, match="training.loss.*needs an energy_target"):
        trial_config(spec, {"energy_weight": 1.0, "seed": 0})


def test_grid_point_drops_the_internal_keys():
    assert grid_point({"study": "/x", "phases": ["train"], "energy_weight": 1.0, "seed": 2, "toy.lr": 0.1}) == \
        {"energy_weight": 1.0, "seed": 2, "toy.lr": 0.1}


def test_simulation_runs_at_the_dataset_temperature_unless_the_spec_sets_one():
    """Issue 12 defect 1: a defaulted temperature was 300 K, and trials simulated at it against 350 K data."""
    from raycg.study.pipelines.cgschnet.simulate import engine_config

    prepared = {"temperature_K": 350.0, "max_bond_A": 6.0}
    spec = cg_spec()
    assert spec.simulation.temperature_K is None  # "not set" survives the study.json round trip
    spec = StudySpec.model_validate(spec.model_dump(mode="json"))
    cfg = engine_config(trial_config(spec, {"energy_weight": 0.5, "seed": 1}).simulation, prepared)
    assert cfg.temperature_K == 350.0 and cfg.seed == 1 and cfg.blowup_max_bond_A == 6.0
    for explicit in (300.0, [300.0]):
        spec = cg_spec(simulation={"temperature_K": explicit})
        assert engine_config(spec.simulation, prepared).temperature_K == explicit
    with pytest.raises(ConfigError, match="simulation.temperature_K"):
        cg_spec(simulation={"temperature_K": -5.0})


def test_the_noise_floor_samples_like_the_trials():
    from raycg.study.pipelines.cgschnet.prepare import sampling_protocol

    spec = cg_spec(simulation={"replicas": 8, "n_steps": 1000, "save_every": 25, "dt_ps": 0.004,
                               "start_method": "kcenters"})
    p = sampling_protocol(spec)
    assert (p.n_replicas, p.frames_per_replica, p.start_method) == (8, 40, "kcenters")
    assert p.frame_interval_ps == pytest.approx(0.1)
    assert spec.evaluation.noise_floor_repeats is None  # raycg.evaluate.noise_floor's own default
    assert sampling_protocol(cg_spec(simulation={"n_steps": 5, "save_every": 10})) is None  # no saved frame
    with pytest.raises(ConfigError, match="evaluation.noise_floor_repeats"):
        cg_spec(evaluation={"noise_floor_repeats": 1})
