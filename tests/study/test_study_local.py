"""End to end on a local Ray: the quickstart pipeline at tiny size, and failing trials."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

TINY_TRAINING = {
    "epochs": 2,
    "batch_size": 64,
    "progress": False,
    "model": {"hidden_channels": 8, "num_filters": 8, "num_interactions": 1, "num_rbf": 8, "num_types": 32},
    "loss": {"energy_target": "tica-marginal"},
}


def tiny_spec(name: str, dataset: Path, storage: Path, **extra) -> dict:
    spec = {
        "name": name,
        "dataset": str(dataset),
        "priors": {"bins": 24, "min_bin_count": 2, "dihedral_order": 1},
        "training": json.loads(json.dumps(TINY_TRAINING)),
        "simulation": {"replicas": 4, "n_steps": 200, "save_every": 10, "dt_ps": 0.004, "chunks": 2},
        "evaluation": {"tica_lag": 2, "bins": 20, "noise_floor_repeats": 3},
        "grid": {"energy_weights": [0.0, 1.0], "seeds": 2},
        "resources": {"cpus": 1},
        "concurrency": {"max_concurrent_trials": 2},
        "retries": {"max_failures": 1},
        "storage": str(storage),
    }
    spec.update(extra)
    return spec


def tune_rows(study: Path, trial_id: str) -> list[dict]:
    """What the trial reported to Tune (Tune's own log of it, in the run's disposable experiment)."""
    (path,) = study.glob(f"tune/run-*/{trial_id}/result.json")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_quickstart_pipeline_end_to_end(ray_local, study_dataset, tmp_path, capsys):
    from raycg.study import run_study

    spec = tiny_spec("e2e", study_dataset, tmp_path)
    lines: list[str] = []
    table = run_study(spec, log=lines.append)
    study = tmp_path / "e2e"

    # the trial table: one row per grid point, all finished, every metric present
    assert len(table) == 4
    assert set(table["status"]) == {"ok"}, table[["trial_id", "status", "error"]]
    assert sorted(zip(table["energy_weight"], table["seed"])) == [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)]
    for metric in ("kl_ref_model", "js_divergence", "w1", "fes_mse", "folded_fraction_model",
                   "transitions_per_replica_mean", "n_replicas_blown_up", "train_best_val_loss"):
        assert metric in table.columns, metric
        assert table[metric].notna().all(), metric

    # the report and its files
    assert (study / "results" / "report.md").is_file()
    assert (study / "results" / "trials.parquet").is_file()
    assert any("report:" in ln for ln in lines) and any(ln.startswith("verdict") for ln in lines)
    assert any(ln.startswith("trials: 4/4 done") for ln in lines)

    prepared = json.loads((study / "prepared" / "prepared.json").read_text())
    dataset_temperature = json.loads((study_dataset / "meta.json").read_text())["temperature_K"]
    assert prepared["temperature_K"] == dataset_temperature
    # the noise floor of a perfect model under the trials' protocol (4 replicas x 20 frames, 0.04 ps apart)
    from raycg.evaluate import NoiseFloor

    floor = NoiseFloor.load(study / "prepared" / "noise_floor.json")
    assert floor.n_repeats == 3 and floor.protocol.to_dict() == {
        "n_replicas": 4, "frames_per_replica": 20, "frame_interval_ps": pytest.approx(0.04),
        "start_method": "equilibrium"}
    assert floor.metrics["kl_ref_model"].n == 3 and floor.metrics["kl_ref_model"].mean > 0
    for tid in table["trial_id"]:
        tdir = study / "trials" / tid
        for f in ("config.json", "result.json", "scores.json", "fes.npz", "train_history.csv"):
            assert (tdir / f).is_file(), (tid, f)
        assert (tdir / "model").is_dir() and any((tdir / "sim").glob("replica_*.h5"))
        res = json.loads((tdir / "result.json").read_text())
        assert res["status"] == "ok" and res["attempts"] == 1
        prov = res["provenance"]
        assert prov["data_hash"] == prepared["data_hash"] and "git_commit" in prov and prov["packages"]["ray"]
        assert set(res["stage_times"]) == {"train", "simulate", "score"}
        assert {"converged", "reasons", "diagnostics"} <= set(res["convergence"])
        assert res["metrics"]["converged"] == float(res["convergence"]["converged"])
        # simulated at the dataset's temperature (the spec sets none), and replicas.json says so
        replicas = json.loads((tdir / "sim" / "replicas.json").read_text())
        assert replicas["temperature_K"] == [dataset_temperature] * 4
        # reported to Tune every epoch and every simulation chunk (each checkpoint stored first)
        rows = tune_rows(study, tid)
        assert [r["epoch"] for r in rows if r.get("phase") == "train" and "epoch" in r] == [0, 1]
        assert [r["chunk"] for r in rows if r.get("phase") == "simulate" and "chunk" in r] == [1]
        assert rows[-1]["phase"] == "done" and rows[-1]["status"] == "ok"

    # the energy weight reached the training config of the trial
    cfg = json.loads((study / "trials" / "w1_s1" / "config.json").read_text())
    assert cfg["config"]["training"]["loss"]["energy_weight"] == 1.0
    assert cfg["config"]["training"]["seed"] == 1 and cfg["config"]["simulation"]["seed"] == 1

    # the CLI views of a finished study
    from raycg.cli import main

    capsys.readouterr()
    assert main(["study", "status", "e2e", "--storage", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "trials: 4/4 done, 0 running, 0 failed" in out and "report:" in out
    (study / "results" / "report.md").unlink()
    assert main(["study", "analyze", str(study)]) == 0
    assert (study / "results" / "report.md").is_file() and "verdict:" in capsys.readouterr().out

    # running the same spec again continues the study: nothing re-runs, same table; Tune's experiment
    # folder is disposable (deleting it loses nothing) and no finished trial keeps checkpoints
    before = {tid: (study / "trials" / tid / "result.json").read_bytes() for tid in table["trial_id"]}
    assert not list(study.glob("trials/*/checkpoints"))
    shutil.rmtree(study / "tune")
    again = run_study(spec, log=lines.append)
    assert list(again["trial_id"]) == list(table["trial_id"])
    assert before == {tid: (study / "trials" / tid / "result.json").read_bytes() for tid in table["trial_id"]}


def test_diverged_and_blown_up_trials_fail_with_reason(ray_local, study_dataset, tmp_path):
    from raycg.study import run_study

    training = json.loads(json.dumps(TINY_TRAINING))
    training["optim"] = {"grad_clip_norm": None}
    spec = tiny_spec("failing", study_dataset, tmp_path, training=training)
    spec["grid"] = {"energy_weights": [0.0], "seeds": 1,
                    "sweep": {"simulation.dt_ps": [0.004, 50.0], "training.optim.lr": [3e-4, 1e30]}}
    lines: list[str] = []
    table = run_study(spec, log=lines.append).set_index("trial_id")

    assert len(table) == 4
    ok = table.loc["w0_s0_dt_ps=0.004_lr=0.0003"]
    assert ok["status"] == "ok" and ok["kl_ref_model"] == ok["kl_ref_model"]
    blown = table.loc["w0_s0_dt_ps=50_lr=0.0003"]
    assert blown["status"] == "failed" and "simulation blew up: all 4 replicas" in blown["error"]
    for tid in ("w0_s0_dt_ps=0.004_lr=1e+30", "w0_s0_dt_ps=50_lr=1e+30"):
        assert table.loc[tid, "status"] == "failed" and "training diverged" in table.loc[tid, "error"]
    # failures are deterministic: not retried
    for tid in table.index:
        res = json.loads((tmp_path / "failing" / "trials" / tid / "result.json").read_text())
        assert res["attempts"] == 1
    # one energy weight: the study still ends with its table; the report either exists or the
    # analysis said in one line why it declined (nothing to compare)
    declined = [ln for ln in lines if ln.startswith("analysis: ")]
    assert (tmp_path / "failing" / "results" / "report.md").is_file() or \
        (len(declined) == 1 and "energy_weight" in declined[0]), lines[-5:]


def test_ctrl_c_leaves_a_resumable_study(ray_local, tmp_path):
    """SIGINT mid-study (what Ctrl-C sends): Tune stops, state saved; resume_study finishes the rest."""
    import os
    import signal
    import threading
    import time

    from raycg.study import StudyIncomplete, resume_study, run_study, study_status

    spec = {"name": "ctrlc", "pipeline": "toy", "storage": str(tmp_path),
            "grid": {"energy_weights": [0.0, 1.0], "seeds": 2},
            "toy": {"epochs": 4, "epoch_s": 0.3, "chunks": 2, "chunk_s": 0.2},
            "resources": {"cpus": 1}, "concurrency": {"max_concurrent_trials": 2}}
    study = tmp_path / "ctrlc"
    fired = threading.Event()

    def interrupt_after_first_result():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if any(study.glob("trials/*/result.json")):
                fired.set()
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.1)

    threading.Thread(target=interrupt_after_first_result, daemon=True).start()
    with pytest.raises(StudyIncomplete, match="raycg study resume"):
        run_study(spec, log=lambda s: None)
    assert fired.is_set()
    st = study_status(str(study))
    assert 1 <= st["done"] < 4
    finished = {p.parent.name: p.read_bytes() for p in study.glob("trials/*/result.json")}

    table = resume_study(str(study), log=lambda s: None)
    assert len(table) == 4 and set(table["status"]) == {"ok"}
    for tid, data in finished.items():
        assert (study / "trials" / tid / "result.json").read_bytes() == data
