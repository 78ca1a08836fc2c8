"""Study specs: the grid, per-trial configs, and bad specs -> one line, exit 2, nothing started."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from raycg.cli import main
from raycg.errors import ConfigError
from raycg.study.grid import grid_points, make_trial, trial_config
from raycg.study.keys import trial_id_for
from raycg.study.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]

GOOD = """\
name: s1
pipeline: toy
grid:
  energy_weights: [0, 0.5]
  seeds: 2
storage: {storage}
resources:
  cpus: 1
  gpu: 0.25
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return p


def test_grid_points_seeds_and_sweeps(tmp_path):
    spec = load_spec(write(tmp_path, GOOD.format(storage=tmp_path)))
    pts = grid_points(spec)
    assert [(p["energy_weight"], p["seed"]) for p in pts] == [(0.0, 0), (0.0, 1), (0.5, 0), (0.5, 1)]
    assert [trial_id_for(p) for p in pts] == ["w0_s0", "w0_s1", "w0.5_s0", "w0.5_s1"]

    data = yaml.safe_load(GOOD.format(storage=tmp_path))
    data["grid"] = {"energy_weights": [1.0], "seeds": [7, 11], "sweep": {"toy.epochs": [2, 3]}}
    spec = load_spec(write(tmp_path, yaml.safe_dump(data)))
    pts = grid_points(spec)
    assert len(pts) == 4 and spec.grid.n_trials() == 4
    assert {(p["seed"], p["toy.epochs"]) for p in pts} == {(7, 2), (7, 3), (11, 2), (11, 3)}
    cfg = trial_config(spec, pts[1])
    assert cfg.toy.epochs == 3 and cfg.toy.seed == 7
    assert spec.toy.epochs == 4 and spec.toy.seed == 0  # the spec itself is untouched
    assert make_trial(spec, pts[1]).config_json()["energy_weight"] == 1.0
    assert trial_id_for(pts[1]) == "w1_s7_epochs=3"


def test_energy_weight_and_seed_reach_the_stage_configs():
    spec = load_spec(ROOT / "studies" / "quickstart.yaml")
    assert spec.grid.energy_weights == [0.0, 1.0] and spec.grid.seed_list() == [0, 1, 2, 3, 4, 5]
    cfg = trial_config(spec, {"energy_weight": 1.0, "seed": 2})
    assert cfg.training.loss.energy_weight == 1.0
    assert cfg.training.seed == 2 and cfg.simulation.seed == 2
    # energy matching uses the study's reference TICA settings
    assert cfg.training.tica.lag == spec.evaluation.tica_lag


def test_paper_scale_spec_is_valid():
    spec = load_spec(ROOT / "studies" / "chignolin_energy_sweep.yaml")
    assert spec.grid.n_trials() == 60 and 0 < spec.resources.gpu < 1
    assert spec.storage.startswith("s3://")


@pytest.mark.parametrize("edit, expect", [
    (lambda d: d["grid"].update(energy_wieghts=[1.0]), "grid.energy_wieghts: unknown field"),
    (lambda d: d.update(simulaton={"replicas": 4}), "simulaton: unknown field"),
    (lambda d: d["grid"].update(energy_weights=[]), "grid.energy_weights: List should have at least 1 item"),
    (lambda d: d["resources"].update(gpu=1.5), "resources.gpu: Input should be less than or equal to 1"),
    (lambda d: d["grid"].update(seeds=0), "grid.seeds"),
    (lambda d: d["grid"].update(sweep={"training.nope": [1, 2]}), "not a field of this spec"),
    (lambda d: d.update(pipeline="cgschnet", dataset="/nonexistent/dataset", grid={"energy_weights": [0]}),
     "dataset: /nonexistent/dataset does not exist"),
    (lambda d: d.update(pipeline="cgschnet", grid={"energy_weights": [0, 1], "seeds": 1}),
     "energy weights > 0 need training.loss.energy_target"),
])
def test_bad_spec_one_line_exit_2_nothing_started(tmp_path, capsys, edit, expect):
    import ray

    storage = tmp_path / "runs"
    data = yaml.safe_load(GOOD.format(storage=storage))
    edit(data)
    path = write(tmp_path, yaml.safe_dump(data, sort_keys=False))
    rc = main(["study", "run", str(path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and "\n" not in err and expect in err, err
    assert str(path) in err  # names the file
    assert not ray.is_initialized()
    assert not (storage / "s1").exists()


def test_unknown_field_names_its_line(tmp_path, capsys):
    text = GOOD.format(storage=tmp_path / "runs").replace("  cpus: 1\n", "  cpus: 1\n  cpu_count: 2\n")
    path = write(tmp_path, text)
    assert main(["study", "run", str(path)]) == 2
    err = capsys.readouterr().err
    line = text.splitlines().index("  cpu_count: 2") + 1
    assert f"{path}:{line}: resources.cpu_count: unknown field" in err


def test_storage_not_writable(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    path = write(tmp_path, GOOD.format(storage=blocker / "runs"))
    assert main(["study", "run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "storage" in err and "\n" not in err
    assert blocker.read_text() == "not a directory"
    # the --storage override is checked the same way
    good = write(tmp_path, GOOD.format(storage=tmp_path / "ok"))
    assert main(["study", "run", str(good), "--storage", str(blocker)]) == 2
    assert "storage" in capsys.readouterr().err


def test_resume_status_of_unknown_study(tmp_path, capsys):
    assert main(["study", "resume", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["study", "status", "nope", "--storage", str(tmp_path)]) == 2


def test_load_spec_api_raises_config_error(tmp_path):
    with pytest.raises(ConfigError, match="grid: required field is missing"):
        load_spec(write(tmp_path, "name: x\n"))
