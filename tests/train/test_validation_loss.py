"""Validation losses the way training computes them (issue 12, defect 3), and the trainer's device policy."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from raycg.config import validate_config
from raycg.train import TrainConfig, train
from raycg.train.validation import energy_validation_loss, sampled_energy_validation_loss

from .test_train import TINY_MODEL, cfg


def test_offset_invariant_loss_is_the_expected_loss_of_random_training_batches():
    g = torch.Generator().manual_seed(0)
    n, bs = 401, 50
    pred = torch.randn(n, generator=g, dtype=torch.float64) * 2 + 5
    drift = 3.0 * (torch.arange(n) >= 200).double()            # e.g. a second trajectory, offset by 3 kcal/mol
    target = torch.randn(n, generator=g, dtype=torch.float64) + drift
    exact = energy_validation_loss(pred, target, batch_size=bs, offset_invariant=True)
    sampled = torch.stack([sampled_energy_validation_loss(pred, target, batch_size=bs, n_batches=500, generator=g)
                           for _ in range(8)])
    se = float(sampled.std()) / 8 ** 0.5
    assert abs(float(sampled.mean()) - float(exact)) < 4 * se, (float(exact), float(sampled.mean()), se)
    # consecutive chunks of 4 x batch size (200, 200, 1) centre the drift away; the last one has loss 0
    r = pred - target
    chunked = sum(float(((c - c.mean()) ** 2).sum()) for c in r.split(4 * bs)) / n
    assert chunked < 0.8 * float(exact)
    # no offset invariance: the plain MSE over all frames; a single frame is not an error
    assert torch.isclose(energy_validation_loss(pred, target, batch_size=bs, offset_invariant=False), (r ** 2).mean())
    assert float(energy_validation_loss(pred[:1], target[:1], batch_size=bs, offset_invariant=True)) == 0.0
    whole = energy_validation_loss(pred, target, batch_size=10_000, offset_invariant=True)   # batch >= all frames
    assert torch.isclose(whole, ((r - r.mean()) ** 2).mean())


def test_trainer_validation_energy_loss_is_computed_as_in_training(dataset, priors, tica, tmp_path):
    """201 validation frames, batch 50: the trainer's val_energy_loss is the expected centred loss of a
    random batch of 50 (the old consecutive chunks of 200 + 1 frames gave another number)."""
    from raycg.cv import ReferenceTICA  # noqa: F401 - the fixture's type
    from raycg.model import load_model
    from raycg.train.targets import compute_energy_targets

    c = cfg(epochs=1, batch_size=50, max_val_frames=201, tica=dict(lag=5),
            loss=dict(energy_weight=1.0, energy_target="tica-joint", offset_invariant=True))
    res = train(c, dataset, priors, tica, tmp_path / "run", cache_dir=tmp_path / "cache")
    prov = json.loads((tmp_path / "run" / "provenance.json").read_text())
    frames = dataset.frames_of(np.asarray(prov["val_trajectories"]))
    frames = frames[np.linspace(0, len(frames) - 1, 201).round().astype(np.int64)]
    model = load_model(res.model_dir)                                      # best = the only epoch
    x = torch.as_tensor(np.asarray(dataset.coords[frames], dtype=np.float32))
    with torch.no_grad():
        e_net = model.network_energy(x).double()
    lc = c.loss
    fe = compute_energy_targets(dataset, tica, lc.energy_target, n_components=lc.n_components, density=lc.density,
                                bins=lc.bins, bandwidth=lc.kde_bandwidth, cache_dir=tmp_path / "cache").free_energy
    target = torch.as_tensor(fe[frames] - priors.energy(np.asarray(dataset.coords[frames], dtype=np.float32)))
    r = e_net - target
    expected = (49 / 50) * float(((r - r.mean()) ** 2).sum()) / 200
    assert res.history[0]["val_energy_loss"] == pytest.approx(expected, rel=1e-4)


def test_trainer_reads_the_device_policy(dataset, priors, tmp_path, monkeypatch):
    """CPU: micro-batches of ~8k bead pairs; the CUDA policy: the whole batch (same weights up to
    round-off), decided in raycg.device."""
    import raycg.train.trainer as trainer
    from raycg.device import CUDA
    from raycg.train.trainer import Trainer, prepare_data

    c = validate_config(TrainConfig, dict(seed=0, model=TINY_MODEL, epochs=1, batch_size=1024, val_fraction=0.2,
                                          progress=False, early_stopping_patience=None, dtype="float64"))
    dev = torch.device("cpu")
    data = prepare_data(c, dataset, priors, None, tmp_path, dev)
    cpu = Trainer(c, data, dev, tmp_path / "cpu")
    assert cpu.micro == 512 and cpu.compiled is None            # 15 pairs/frame: 546 fit -> 1024 / 2
    cpu.run()
    monkeypatch.setattr(trainer, "policy_for", lambda d: CUDA)
    whole = Trainer(c, data, dev, tmp_path / "cuda")
    assert whole.micro == 1024                                  # no CPU micro-batching on CUDA
    whole.run()
    for k, v in cpu.net.state_dict().items():
        assert torch.allclose(v, whole.net.state_dict()[k], rtol=1e-9, atol=1e-12), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_cuda_keeps_data_on_the_device(dataset, priors, tmp_path):
    res = train(cfg(epochs=2), dataset, priors, None, tmp_path / "gpu", device="cuda")
    prov = json.loads((tmp_path / "gpu" / "provenance.json").read_text())
    assert prov["device"].startswith("cuda") and res.history[-1]["val_force_loss"] < res.prior_only_val_force_loss
