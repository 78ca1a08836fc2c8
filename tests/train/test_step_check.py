"""The first optimiser step of a fast training path (compiled, or whole batches where the CPU
reference uses micro-batches) is checked against the eager reference step on the same batch."""

from __future__ import annotations

import dataclasses
import json

import torch

import raycg.train.trainer as trainer_mod
from raycg.config import validate_config
from raycg.device import CPU
from raycg.train import TrainConfig, train

TINY_MODEL = dict(num_types=8, hidden_channels=24, num_filters=24, num_interactions=2, num_rbf=12,
                  cutoff_upper=12.0)
LINE = "raycg.train: the compiled training step disagrees with the eager step (relative difference "


def cfg(**kw) -> TrainConfig:
    base = dict(seed=0, model=TINY_MODEL, epochs=1, batch_size=64, val_fraction=0.2, progress=False,
                optim=dict(lr=3e-3, schedule="exponential", gamma=0.9),
                early_stopping_patience=None)
    return validate_config(TrainConfig, {**base, **kw})


def weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "network.safetensors"))


def step_path(out_dir) -> dict:
    return json.loads((out_dir / "train_result.json").read_text())["step_path"]


def fake_compiler(scale: float):
    """A 'compiler' that returns the eager pass with its forces scaled (1.0: an exact compiler)."""
    def compile_private(fn, **kwargs):
        def run(*a, **k):
            e, f = fn(*a, **k)
            return e, f * scale
        return run
    return compile_private


def test_a_wrong_compiled_training_step_is_caught_and_training_goes_on_eagerly(
        dataset, priors, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(trainer_mod, "compile_private", fake_compiler(1.01))
    wrong = train(cfg(epochs=2, compile=True), dataset, priors, None, tmp_path / "wrong")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(LINE), err
    assert err[0].endswith(" in the loss or the gradients); training eagerly"), err
    path = step_path(tmp_path / "wrong")
    assert path["compiled"] is False and path["error"] == "step disagrees with eager"
    check = path["check"]
    assert check["agrees"] is False and check["difference"] > check["tolerance"] == 1e-3
    assert wrong.step_path == path
    monkeypatch.undo()
    eager = train(cfg(epochs=2, compile=False), dataset, priors, None, tmp_path / "eager")
    assert "check" not in step_path(tmp_path / "eager")         # the reference path is not checked
    ww, we = weights(wrong.model_dir), weights(eager.model_dir)
    assert all(torch.equal(ww[k], we[k]) for k in we)          # the first step was redone eagerly
    losses = ("train_force_loss", "train_loss", "val_force_loss", "val_loss")
    assert [[h[k] for k in losses] for h in wrong.history] == [[h[k] for k in losses]
                                                               for h in eager.history]


def test_a_correct_fast_step_passes_the_check_and_trains_as_eager(dataset, priors, tmp_path,
                                                                  monkeypatch, capsys):
    """The check changes nothing of the run: an exact 'compiler' passes it (difference 0) and trains
    to the eager weights bit for bit."""
    monkeypatch.setattr(trainer_mod, "compile_private", fake_compiler(1.0))
    fast = train(cfg(compile=True), dataset, priors, None, tmp_path / "fast")
    assert capsys.readouterr().err == ""
    path = step_path(tmp_path / "fast")
    assert path["compiled"] is True
    assert path["check"] == {"difference": 0.0, "tolerance": 1e-3, "agrees": True}
    monkeypatch.undo()
    eager = train(cfg(compile=False), dataset, priors, None, tmp_path / "eager")
    wf, we = weights(fast.model_dir), weights(eager.model_dir)
    assert all(torch.equal(wf[k], we[k]) for k in we)


def test_whole_batch_training_is_checked_against_the_reference_micro_batches(
        dataset, priors, tmp_path, monkeypatch, capsys):
    """A device policy of whole batches (CUDA's) against the CPU reference's micro-batches: the
    first step agrees up to round-off, and training goes on with whole batches."""
    whole = dataclasses.replace(CPU, train_pair_block=None)
    monkeypatch.setattr(trainer_mod, "policy_for", lambda dev: whole)
    res = train(cfg(batch_size=960, val_fraction=0.2), dataset, priors, None, tmp_path / "whole")
    assert capsys.readouterr().err == ""
    path = res.step_path
    assert path["micro_batch"] == 960 and path["compiled"] is False
    assert path["check"]["agrees"] is True and path["check"]["difference"] < 1e-5


def test_wrong_whole_batch_training_falls_back_to_the_reference_micro_batches(
        dataset, priors, tmp_path, monkeypatch, capsys):
    """A whole-batch pass that is wrong (here: its forces scaled) is caught the same way; training
    goes on eagerly in the reference micro-batches."""
    whole = dataclasses.replace(CPU, train_pair_block=None)
    monkeypatch.setattr(trainer_mod, "policy_for", lambda dev: whole)
    real = trainer_mod.blocked_energy_and_forces

    def wrong_when_whole(fn, pos, *a, block=None, **k):
        e, f = real(fn, pos, *a, block=block, **k)
        return (e, f * 1.01) if block == pos.shape[0] else (e, f)

    monkeypatch.setattr(trainer_mod, "blocked_energy_and_forces", wrong_when_whole)
    res = train(cfg(batch_size=960), dataset, priors, None, tmp_path / "whole")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert err[0].startswith("raycg.train: the training step disagrees with the eager step"), err
    assert err[0].endswith("; training eagerly in micro-batches of 480 frames"), err
    assert res.step_path["micro_batch"] == 480 and res.step_path["check"]["agrees"] is False
