"""The ``fes-corrected`` energy target in a CGSchNet study, run in-process (no Ray).

``base_model: priors``: prepare simulates the prior-only model once and caches the corrected targets;
a trial trains on exactly those. ``base_model: force-matched``: a trial waits for its seed's
energy-weight-0 trial and builds its correction inputs from that trial's model and trajectories.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from raycg.errors import ConfigError
from raycg.study.driver import create_study
from raycg.study.pipelines.base import TrialContext, TrialFailed
from raycg.study.pipelines.cgschnet import correction
from raycg.study.pipelines.cgschnet.prepare import prepare_inputs
from raycg.study.spec import spec_from_any
from raycg.study.trial import run_trial

TRAINING = {
    "epochs": 1, "batch_size": 64, "progress": False, "compile": False,
    "model": {"hidden_channels": 8, "num_filters": 8, "num_interactions": 1, "num_rbf": 8, "num_types": 32},
    "loss": {"energy_target": "fes-corrected", "bins": 12},
}


def spec_dict(dataset: Path, storage: Path, name: str = "fes", **loss) -> dict:
    training = json.loads(json.dumps(TRAINING))
    training["loss"].update(loss)
    return {
        "name": name, "dataset": str(dataset), "storage": str(storage),
        "priors": {"bins": 24, "min_bin_count": 2, "dihedral_order": 1},
        "training": training,
        "simulation": {"replicas": 4, "n_steps": 200, "save_every": 10, "dt_ps": 0.004, "chunks": 2},
        "evaluation": {"tica_lag": 2, "bins": 20, "noise_floor_repeats": 0, "gate_power_repeats": 0},
        "grid": {"energy_weights": [0.0, 1.0], "seeds": 1},
        "resources": {"cpus": 1},
    }


def make_study(dataset: Path, tmp_path: Path, **loss) -> Path:
    uri = tmp_path / "fes"
    create_study(spec_from_any(spec_dict(dataset, tmp_path, **loss)), str(uri), log=lambda s: None)
    return uri


def read(path: Path):
    return json.loads(path.read_text())


def trial_context(study: Path, point: dict, work: Path) -> TrialContext:
    from raycg.study.grid import make_trial
    from raycg.study.storage import Store
    from raycg.study.trial.run import study_spec

    store = Store(str(study))
    trial = make_trial(study_spec(store.read_json("study.json")), point)
    return TrialContext(trial_id=trial.trial_id, config=trial.config, point=trial.point, store=store, work=work,
                        state={}, reporter=lambda *a, **k: None)


def test_priors_base_is_prepared_once_and_the_trial_trains_on_its_targets(study_dataset, tmp_path):
    from raycg.cv import ReferenceTICA
    from raycg.data import format as dfmt
    from raycg.priors import PriorSet
    from raycg.train import fes_correction
    from raycg.train.trainer import reference_prior_energies

    study = make_study(study_dataset, tmp_path)
    prep = study / "prepared"
    record = read(prep / correction.BASE_RECORD)
    assert record["base_model"] == "priors" and record["replicas"] == 4 and record["n_steps"] == 200
    assert record["simulation"]["seed"] == 0 and record["wall_s"] > 0 and record["n_blown_up"] == 0
    planned = 200 // 10
    assert record["n_frames"] == 4 * (planned - math.floor(0.1 * planned))
    with np.load(prep / correction.BASE_FILE) as z:
        y_base, e0 = z["y_base"], z["base_energy"]
    ds = dfmt.load(study_dataset)
    assert y_base.shape == (record["n_frames"], record["n_components"]) and e0.shape == (ds.n_frames,)
    cached = sorted(p.name for p in (prep / "targets").iterdir())
    info = read(prep / "prepared.json")["energy_targets"]
    assert info["mode"] == "fes-corrected" and info["base_file"] == correction.BASE_FILE

    final = run_trial({"study": str(study), "energy_weight": 1.0, "seed": 0, "phases": ["train"]})
    assert final["status"] == "ok", final["error"]
    assert sorted(p.name for p in (prep / "targets").iterdir()) == cached  # the trial found prepare's targets
    used = read(study / "trials" / "w1_s0" / "train_result.json")["target_info"]
    assert used["cached"] is True and used["mode"] == "fes-corrected" and used["base_model"] == "priors"

    # the targets are U_prior + F_ref − F₀ + c with F₀ from the prepared base run
    target = np.load(next((prep / "targets").glob("*.npy")))
    tica = ReferenceTICA.load(prep / "tica.npz")
    y_ref = tica.transform(ds.coords, n_components=record["n_components"])
    u_prior = reference_prior_energies(PriorSet.load(prep / "priors.json"), ds)
    corr = fes_correction(y_ref, y_base, float(used["kbt_kcal_per_mol"]), bins=12)
    rest = target - u_prior - corr.delta_at(y_ref)
    np.testing.assert_allclose(rest, used["offset_kcal"], atol=1e-8)
    assert np.ptp(corr.delta_at(y_ref)) > 0.1            # F₀ is not F_ref: the correction does something


def test_prepare_key_changes_with_the_corrected_target_only(study_dataset, tmp_path):
    def key(**loss):
        return prepare_inputs(spec_from_any(spec_dict(study_dataset, tmp_path, **loss)), "hash")

    marginal, joint = key(energy_target="tica-marginal"), key(energy_target="tica-joint")
    assert marginal == joint and "correction" not in marginal
    priors = key()
    assert priors["correction"]["base_model"] == "priors" and priors["correction"]["base_steps"] == 200
    assert {k: v for k, v in priors.items() if k != "correction"} == marginal
    assert key(base_steps=100)["correction"] != priors["correction"]
    assert key(base_model="force-matched")["correction"] != priors["correction"]


def test_force_matched_base_needs_weight_zero_in_the_grid(study_dataset, tmp_path):
    from raycg.study.pipelines import get_pipeline

    d = spec_dict(study_dataset, tmp_path, base_model="force-matched")
    d["grid"]["energy_weights"] = [0.5, 1.0]
    with pytest.raises(ConfigError, match=r"grid\.energy_weights: .*force-matched.*add 0"):
        get_pipeline("cgschnet").validate(spec_from_any(d), source="spec")


def test_a_failed_base_trial_fails_the_waiting_one():
    with pytest.raises(TrialFailed, match=r"^base trial w0_s3 failed \(training diverged\)"):
        correction.wait_for_result(lambda: {"status": "failed", "error": "training diverged"}, "w0_s3", 10.0)


def test_force_matched_trial_without_its_base_fails_after_the_wait(study_dataset, tmp_path):
    study = make_study(study_dataset, tmp_path, base_model="force-matched", base_wait_s=0.2)
    assert not (study / "prepared" / correction.BASE_FILE).exists()
    final = run_trial({"study": str(study), "energy_weight": 1.0, "seed": 0, "phases": ["train"]})
    res = read(study / "trials" / "w1_s0" / "result.json")
    assert res["status"] == "failed" and res["failed_phase"] == "train" and final["status"] == "failed"
    assert res["error"].startswith("base trial w0_s0 has no final result after 0.2 s (training.loss.base_wait_s)")
    assert "\n" not in res["error"]


def test_force_matched_inputs_come_from_the_base_trial(study_dataset, tmp_path):
    from raycg.data import format as dfmt
    from raycg.model.io import load_model

    study = make_study(study_dataset, tmp_path, base_model="force-matched", base_wait_s=5.0)
    base = run_trial({"study": str(study), "energy_weight": 0.0, "seed": 0})
    assert base["status"] == "ok", base["error"]
    ctx = trial_context(study, {"energy_weight": 1.0, "seed": 0}, tmp_path / "work")
    ds = dfmt.load(study_dataset)
    from raycg.cv import ReferenceTICA

    tica = ReferenceTICA.load(study / "prepared" / "tica.npz")
    inputs = correction.trial_correction(ctx, ds, tica)
    assert inputs.base_model == "force-matched" and inputs.label == "w0_s0"
    model = load_model(study / "trials" / "w0_s0" / "model")
    np.testing.assert_allclose(inputs.base_energy, correction.model_energies(model, ds.coords))
    planned = 200 // 10
    alive = 4 - int(base["n_replicas_blown_up"])
    assert inputs.y_base.shape[0] <= alive * (planned - math.floor(0.1 * planned)) and inputs.y_base.shape[0] > 0

    final = run_trial({"study": str(study), "energy_weight": 1.0, "seed": 0, "phases": ["train"]})
    assert final["status"] == "ok", final["error"]
    used = read(study / "trials" / "w1_s0" / "train_result.json")["target_info"]
    assert used["base_model"] == "force-matched" and used["base_label"] == "w0_s0"


def test_an_arm_with_a_force_matched_base_uses_the_baseline_arms_trial(study_dataset, tmp_path):
    """grid.arms: the corrected arm's base is the force-matching arm's trial of the same seed (found by
    its id and the config hash made from the study's spec, not from the corrected trial's config)."""
    data = spec_dict(study_dataset, tmp_path, name="arms", energy_target="tica-marginal", base_wait_s=5.0)
    data["grid"] = {"seeds": 1, "baseline": "fm", "arms": {
        "fm": {"energy_weight": 0.0},
        "cor": {"energy_weight": 1.0, "training.loss.energy_target": "fes-corrected",
                "training.loss.base_model": "force-matched"}}}
    uri = tmp_path / "arms"
    create_study(spec_from_any(data), str(uri), log=lambda s: None)
    assert "correction" not in read(uri / "prepared" / "prepared.json")["inputs"]  # nothing prepared for it
    base = run_trial({"study": str(uri), "point": {"arm": "fm", "energy_weight": 0.0, "seed": 0}})
    assert base["status"] == "ok", base["error"]
    final = run_trial({"study": str(uri), "point": {"arm": "cor", "energy_weight": 1.0, "seed": 0},
                       "phases": ["train"]})
    assert final["status"] == "ok", final["error"]
    used = read(uri / "trials" / "cor_w1_s0" / "train_result.json")["target_info"]
    assert used["mode"] == "fes-corrected" and used["base_model"] == "force-matched"
    assert used["base_label"] == "fm_w0_s0"
