"""The sequential driver: the waves of grid points a look needs, and a toy study on Ray that stops at
its first look, records the decision, reports it and resumes as finished."""

from __future__ import annotations

import json

import pytest

from raycg.study.driver.sequential import wave_points
from raycg.study.sequential import RECORD, plan_next_look
from raycg.study.spec import spec_from_any
from raycg.study.storage import Store


def toy_spec(tmp_path, **grid) -> dict:
    return {"name": "seq", "pipeline": "toy", "storage": str(tmp_path),
            "grid": {"energy_weights": [0.0, 10.0], "seeds": 8, **grid},
            "toy": {"epochs": 1, "epoch_s": 0.0, "chunks": 1, "chunk_s": 0.0},
            "analysis": {"primary_metric": "js_divergence", "secondary_metrics": [], "design": "sequential",
                         "looks": [6, 8], "spending": "pocock", "futility": "none"},
            "resources": {"cpus": 1}, "concurrency": {"max_concurrent_trials": 2}}


def test_wave_points_are_the_looks_cells_without_a_final_result(tmp_path) -> None:
    spec = spec_from_any(toy_spec(tmp_path, sweep={"toy.lr": [0.01, 0.02]}))
    store = Store(str(tmp_path / "seq"))
    plan = plan_next_look(spec, __import__("pandas").DataFrame())
    points = wave_points(spec, plan, store)
    assert len(points) == 2 * 6 * 2 and {p["seed"] for p in points} == set(range(6))
    done = points[0]
    from raycg.study.keys import trial_id_for

    store.write_json(f"trials/{trial_id_for(done)}/result.json", {"status": "failed"})
    left = wave_points(spec, plan, store)
    assert done not in left and len(left) == len(points) - 1


def test_arms_are_refused_by_the_sequential_design(tmp_path) -> None:
    d = toy_spec(tmp_path)
    d["grid"] = {"seeds": 8, "arms": {"a": {"energy_weight": 0}, "b": {"energy_weight": 1}}, "baseline": "a"}
    with pytest.raises(Exception, match="grid.arms are not supported by the sequential design"):
        spec_from_any(d)


def test_toy_sequential_study_stops_at_the_first_look_and_resumes_finished(ray_local, tmp_path) -> None:
    from raycg.study import resume_study, run_study

    lines: list[str] = []
    table = run_study(toy_spec(tmp_path), log=lines.append, out=lines.append)
    study = tmp_path / "seq"
    # w_E = 10 is better in every seed: sign-flip p = 2/2^6 ≤ the Pocock look-1 level 0.041
    assert len(table) == 12 and set(table["seed"]) == set(range(6))
    rec = json.loads((study / RECORD).read_text())
    assert rec["finished"] and len(rec["looks"]) == 1
    dec = rec["decisions"]["10.0"]
    assert (dec["state"], dec["look"], dec["seeds"]) == ("efficacy", 1, 6)
    assert any("look 1 (6 seeds): converged" in ln for ln in lines)
    assert any("12 of 16 trials (4 saved" in ln for ln in lines)
    report = (study / "results" / "report.md").read_text()
    assert "## Sequential design" in report and "| w_E = 10 | look 1 (6 seeds) | significant" in report
    before = sorted(p.name for p in (study / "trials").iterdir())
    again = resume_study(str(study), log=lines.append, out=lines.append)
    assert len(again) == 12 and sorted(p.name for p in (study / "trials").iterdir()) == before
    assert json.loads((study / RECORD).read_text()) == rec
