"""``run_trial`` without Ray: the toy pipeline's phases, result.json, failures, skips and a restore.

A fake Tune session stands in for Ray: it records every report and can die after N of them; the
trial's checkpoints are in its own folder of the study (``trials/<id>/checkpoints``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from raycg.study.driver import create_study
from raycg.study.spec import spec_from_any
from raycg.study.trial import run as trial_run
from raycg.study.trial import run_trial
from raycg.study.trial.session import TrialSession

FAST_TOY = {"epochs": 3, "epoch_s": 0.0, "chunks": 2, "chunk_s": 0.0}


def make_study(tmp_path: Path, **toy) -> Path:
    spec = spec_from_any({"name": "unit", "pipeline": "toy", "storage": str(tmp_path),
                          "grid": {"energy_weights": [0.0, 1.0], "seeds": 2}, "toy": {**FAST_TOY, **toy}})
    uri = tmp_path / "unit"
    create_study(spec, str(uri), log=lambda s: None)
    return uri


class FakeSession(TrialSession):
    """Records reports; can die after N reports (a lost node)."""

    in_tune = True

    def __init__(self, die_after: int | None = None):
        super().__init__(node_id="node-a")
        self.die_after = die_after
        self.rows: list[dict] = []

    def report(self, row):
        self.rows.append(dict(row))
        if self.die_after is not None and len(self.rows) >= self.die_after:
            raise RuntimeError("node lost")


def read(path: Path):
    return json.loads(path.read_text())


def test_toy_trial_writes_its_files_and_reports(tmp_path, monkeypatch):
    study = make_study(tmp_path)
    session = FakeSession()
    monkeypatch.setattr(trial_run, "current_session", lambda: session)
    final = run_trial({"study": str(study), "energy_weight": 1.0, "seed": 1})

    tdir = study / "trials" / "w1_s1"
    res = read(tdir / "result.json")
    assert res["status"] == "ok" and res["error"] is None and res["attempts"] == 1
    assert res["config"] == {"energy_weight": 1.0, "seed": 1, "pipeline": "toy"}
    assert set(res["stage_times"]) == {"train", "simulate", "score"}
    assert res["convergence"] == {"converged": True, "reasons": [], "diagnostics": {}}
    assert (res["metrics"]["kl_ref_model_ci_low"] <= res["metrics"]["kl_ref_model"]
            <= res["metrics"]["kl_ref_model_ci_high"])
    assert final["status"] == "ok" and final["kl_ref_model"] == res["metrics"]["kl_ref_model"]
    cfg = read(tdir / "config.json")
    assert cfg["config"]["toy"]["seed"] == 1 and cfg["config"]["energy_weight"] == 1.0
    assert cfg["grid_point"] == {"energy_weight": 1.0, "seed": 1}
    assert read(tdir / "status.json")["phase"] == "done"
    assert (tdir / "scores.json").is_file() and (tdir / "fes.npz").is_file() and (tdir / "model").is_dir()
    # a report per epoch and per chunk, each with a checkpoint, then the final row
    epochs = [r["epoch"] for r in session.rows if r.get("phase") == "train" and "epoch" in r]
    chunks = [r["chunk"] for r in session.rows if r.get("phase") == "simulate" and "chunk" in r]
    assert epochs == [1, 2, 3] and chunks == [1, 2]
    assert session.rows[-1]["phase"] == "done" and session.rows[-1]["status"] == "ok"
    assert all(r["trial_key"] == "w1_s1" for r in session.rows)


def test_finished_trial_is_not_run_again(tmp_path):
    study = make_study(tmp_path)
    run_trial({"study": str(study), "energy_weight": 0.0, "seed": 0})
    before = (study / "trials" / "w0_s0" / "result.json").read_bytes()
    again = run_trial({"study": str(study), "energy_weight": 0.0, "seed": 0})
    assert again["skipped_already_done"] is True
    assert (study / "trials" / "w0_s0" / "result.json").read_bytes() == before
    assert len(list((study / "trials" / "w0_s0" / "attempts").iterdir())) == 1


@pytest.mark.parametrize("toy, phase, reason", [
    ({"lr": 30.0}, "train", "training diverged at epoch 1"),
    ({"dt_ps": 0.1}, "simulate", "simulation blew up: all 8 replicas died in chunk 0"),
])
def test_expected_failures_end_the_trial_with_a_reason(tmp_path, toy, phase, reason):
    study = make_study(tmp_path, **toy)
    final = run_trial({"study": str(study), "energy_weight": 0.0, "seed": 0})
    res = read(study / "trials" / "w0_s0" / "result.json")
    assert res["status"] == "failed" and res["failed_phase"] == phase and res["error"].startswith(reason)
    assert final["status"] == "failed" and final["error"] == res["error"]


def test_phases_subset_trains_only(tmp_path):
    study = make_study(tmp_path)
    run_trial({"study": str(study), "energy_weight": 0.0, "seed": 0, "phases": ["train"]})
    res = read(study / "trials" / "w0_s0" / "result.json")
    assert list(res["stage_times"]) == ["train"] and "final_train_loss" in res["metrics"]
    assert "kl_ref_model" not in res["metrics"]


def test_restored_trial_continues_from_its_checkpoint(tmp_path, monkeypatch):
    """The first attempt dies after its first simulation chunk; the second resumes there."""
    study = make_study(tmp_path)
    first = FakeSession(die_after=FAST_TOY["epochs"] + 2)  # 3 epochs, train_done, chunk 1
    monkeypatch.setattr(trial_run, "current_session", lambda: first)
    with pytest.raises(RuntimeError, match="node lost"):
        run_trial({"study": str(study), "energy_weight": 0.0, "seed": 1})
    assert first.rows[-1] == {"chunk": 1, "phase": "simulate", "progress": pytest.approx(0.75), "trial_key": "w0_s1"}

    stored = study / "trials" / "w0_s1" / "checkpoints"
    assert sorted(p.name for p in stored.iterdir()) == ["000004", "000005"]  # the two newest of 5
    second = FakeSession()
    monkeypatch.setattr(trial_run, "current_session", lambda: second)
    run_trial({"study": str(study), "energy_weight": 0.0, "seed": 1})
    res = read(study / "trials" / "w0_s1" / "result.json")
    assert res["status"] == "ok" and res["attempts"] == 2
    assert res["restored_from"] == {"phase": "simulate", "step": 1}
    assert "final_train_loss" in res["metrics"]  # kept from the first attempt's state
    assert not [r for r in second.rows if r.get("phase") == "train"]  # training did not run again
    assert [r["chunk"] for r in second.rows if "chunk" in r] == [2]
    assert not stored.exists()  # the result is final: its checkpoints are gone
