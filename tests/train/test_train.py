"""Trainer: learning, energy matching, determinism, exact resume, config errors, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from raycg.config import validate_config
from raycg.errors import ConfigError, DatasetError
from raycg.model import load_model
from raycg.train import TrainConfig, TrainRunConfig, train

torch.set_num_threads(1)

TINY_MODEL = dict(num_types=8, hidden_channels=24, num_filters=24, num_interactions=2, num_rbf=12,
                  cutoff_upper=12.0)


def cfg(**kw) -> TrainConfig:
    base = dict(seed=0, model=TINY_MODEL, epochs=3, batch_size=64, val_fraction=0.2, progress=False,
                optim=dict(lr=3e-3, schedule="exponential", gamma=0.9), early_stopping_patience=None)
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return validate_config(TrainConfig, base)


def weights(model_dir):
    from safetensors.torch import load_file

    return load_file(str(model_dir / "network.safetensors"))


def test_force_matching_beats_prior_only(dataset, priors, tmp_path):
    reports = []
    res = train(cfg(epochs=12, optim=dict(lr=5e-3, schedule="plateau", plateau_patience=2)), dataset, priors,
                None, tmp_path / "run", report=lambda m, d: reports.append((m, d)))
    base = res.prior_only_val_force_loss
    first, best = res.history[0]["val_force_loss"], min(h["val_force_loss"] for h in res.history)
    assert base > 0.5
    assert best < 0.5 * base, (base, best)
    assert len(reports) == 12 and (reports[-1][1] / "state.pt").is_file()
    assert best < first
    for key in ("train_force_loss", "val_force_loss", "lr", "frames_per_s"):
        assert np.isfinite(res.history[-1][key])
    # the saved model = prior + network, and it predicts the data forces better than the prior alone
    model = load_model(res.model_dir)
    x = torch.as_tensor(np.asarray(dataset.coords[:200]))
    _, f = model.energy_and_forces(x)
    pm = priors.to_module().float()
    p = x.clone().requires_grad_(True)
    (gp,) = torch.autograd.grad(pm(p).sum(), p)
    ref = torch.as_tensor(np.asarray(dataset.forces[:200]))
    assert ((f - ref) ** 2).mean() < 0.7 * ((-gp - ref) ** 2).mean()
    assert (tmp_path / "run" / "train_history.csv").is_file()
    prov = json.loads((tmp_path / "run" / "provenance.json").read_text())
    assert prov["data_hash"] == dataset.content_hash


@pytest.mark.parametrize("mode", ["tica-marginal", "tica-joint"])
def test_energy_matching_loss_falls(dataset, priors, tica, tmp_path, mode):
    def run(w):
        c = cfg(epochs=5, loss=dict(energy_weight=w, energy_target=mode, offset_invariant=mode == "tica-joint"),
                tica=dict(lag=5))
        return train(c, dataset, priors, tica, tmp_path / f"{mode}-{w}", cache_dir=tmp_path / "cache")

    res = run(2.0)
    e = [h["train_energy_loss"] for h in res.history]
    v = [h["val_energy_loss"] for h in res.history]
    assert all(np.isfinite(e)) and all(np.isfinite(v))
    assert e[-1] < 0.8 * e[0], e
    assert min(v[1:]) < v[0], v
    assert res.target_info["mode"] == mode
    from raycg.train.targets import choose_components

    expected = choose_components(mode, "slow", np.asarray(tica.eigenvalues)[: tica.dim]).k
    assert res.target_info["components"]["rule"] == "slow"
    assert res.target_info["n_components"] == expected
    if mode == "tica-marginal":                   # the energy term is what lowers the energy loss
        ref = run(0.0)
        assert res.history[-1]["train_energy_loss"] < ref.history[-1]["train_energy_loss"]


def test_same_seed_same_weights_and_different_seed_differs(dataset, priors, tmp_path):
    a = train(cfg(epochs=2), dataset, priors, None, tmp_path / "a")
    b = train(cfg(epochs=2), dataset, priors, None, tmp_path / "b")
    c = train(cfg(epochs=2, seed=1), dataset, priors, None, tmp_path / "c")
    wa, wb, wc = weights(a.model_dir), weights(b.model_dir), weights(c.model_dir)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)


@pytest.mark.parametrize("schedule", ["plateau", "exponential"])
def test_resume_is_exact(dataset, priors, tmp_path, schedule):
    full = train(cfg(epochs=4, optim=dict(schedule=schedule)), dataset, priors, None, tmp_path / "full")
    part = train(cfg(epochs=2, optim=dict(schedule=schedule)), dataset, priors, None, tmp_path / "part")
    assert part.epochs_run == 2
    torch.manual_seed(12345)                       # global RNG disturbed between runs: must not matter
    resumed = train(cfg(epochs=4, optim=dict(schedule=schedule)), dataset, priors, None, tmp_path / "part")
    assert resumed.epochs_run == 4
    wf, wr = weights(full.model_dir), weights(resumed.model_dir)
    assert all(torch.equal(wf[k], wr[k]) for k in wf)
    st_f = torch.load(tmp_path / "full" / "checkpoint" / "state.pt", weights_only=True)
    st_r = torch.load(tmp_path / "part" / "checkpoint" / "state.pt", weights_only=True)
    assert all(torch.equal(st_f["model"][k], st_r["model"][k]) for k in st_f["model"])
    assert [h["val_loss"] for h in full.history] == [h["val_loss"] for h in resumed.history]
    # a different config in the same directory is refused
    with pytest.raises(ConfigError, match="different training config"):
        train(cfg(epochs=4, seed=5), dataset, priors, None, tmp_path / "part")


def test_early_stopping(dataset, priors, tmp_path):
    res = train(cfg(epochs=30, optim=dict(lr=1e-9, schedule="none"), early_stopping_patience=2,
                    early_stopping_min_delta=1.0), dataset, priors, None, tmp_path / "es")
    assert res.stopped_early and res.epochs_run == 3 and res.best_epoch == 0


@pytest.mark.parametrize("monitor, column", [("val_loss", "val_loss"), ("val_force_loss", "val_force_loss")])
def test_early_stopping_watches_the_monitored_validation_loss(dataset, priors, tica, tmp_path, monitor, column):
    """With an energy term the total and the force loss differ: the model kept, its best loss and
    the stop follow the monitored one (w_E = 0: the two are the same loss)."""
    c = cfg(epochs=6, loss=dict(energy_weight=5.0, energy_target="tica-marginal"), tica=dict(lag=5),
            optim=dict(schedule="none"), early_stopping_patience=2, early_stopping_monitor=monitor)
    res = train(c, dataset, priors, tica, tmp_path / monitor, cache_dir=tmp_path / "cache")
    watched = [h[column] for h in res.history]
    assert res.best_epoch == int(np.argmin(watched)) and res.best_val_loss == pytest.approx(min(watched))
    assert res.stopped_early == (len(watched) - 1 - res.best_epoch >= 2)
    other = [h["val_force_loss" if column == "val_loss" else "val_loss"] for h in res.history]
    assert res.best_val_loss not in other
    if monitor == "val_loss":  # the default is left out of the dump: older configs hash the same
        assert "early_stopping_monitor" not in c.model_dump()
    else:
        assert c.model_dump()["early_stopping_monitor"] == "val_force_loss"
        assert validate_config(TrainConfig, c.model_dump()) == c


def test_dataset_without_forces_fails_clearly(dataset, priors, tmp_path):
    from dataclasses import replace

    no_forces = replace(dataset, forces=None)
    with pytest.raises(DatasetError, match=r"dataset.*no forces.*force_weight"):
        train(cfg(), no_forces, priors, None, tmp_path / "x")


@pytest.mark.parametrize("data, field, pattern", [
    ({"lossx": {}}, "lossx", "unknown field"),
    ({"loss": {"energy_weight": -1.0, "energy_target": "tica-marginal"}, "tica": {"lag": 2}},
     "loss.energy_weight", "greater than or equal to 0"),
    ({"loss": {"force_weight": -0.5}}, "loss.force_weight", "greater than or equal"),
    ({"loss": {"energy_weight": 1.0, "energy_target": "tica-marginal"}}, "tica", "needs TICA settings"),
    ({"loss": {"energy_weight": 1.0}}, "loss", "needs an energy_target"),
    ({"model": {"hidden_chanels": 3}}, "model.hidden_chanels", "unknown field"),
])
def test_config_errors_name_the_field(tmp_path, data, field, pattern):
    from raycg.config import load_config

    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(TrainConfig, p)
    msg = str(err.value)
    assert "\n" not in msg and pattern in msg and (field in msg), msg
    assert msg.startswith(f"{p}:"), msg


def test_cli_train_end_to_end(dataset, tmp_path, capsys):
    from raycg.cli import main
    from raycg.data.format import save

    save(dataset, tmp_path / "ds")
    conf = {"dataset": "ds", "priors": "fit", "prior_config": {"bins": 60}, "out": "run", "epochs": 1,
            "batch_size": 128, "progress": False, "model": TINY_MODEL}
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(conf))
    assert main(["train", str(tmp_path / "t.yaml")]) == 0
    out = json.loads(capsys.readouterr().out)
    model = load_model(out["model"])
    x = torch.as_tensor(np.asarray(dataset.coords[:4]))
    assert model(x).shape == (4,) and model.prior is not None
    # bad configs exit 2 with one line naming the field
    bad = dict(conf, loss={"energy_weight": -1})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    assert main(["train", str(tmp_path / "bad.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "loss.energy_weight" in err
    from dataclasses import replace

    from raycg.data.format import save as save_ds
    save_ds(replace(dataset, forces=None), tmp_path / "nof")
    (tmp_path / "nof.yaml").write_text(yaml.safe_dump(dict(conf, dataset="nof", priors="none", out="r2")))
    assert main(["train", str(tmp_path / "nof.yaml")]) == 2
    assert "no forces" in capsys.readouterr().err


def test_run_config_requires_paths():
    with pytest.raises(ConfigError, match="dataset: required field is missing"):
        validate_config(TrainRunConfig, {"out": "x"})


def test_zero_network_reproduces_fitted_priors_exactly(dataset, priors, tmp_path):
    from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel, save_model

    net = CGSchNet(CGSchNetConfig(**TINY_MODEL)).double()
    torch.nn.init.zeros_(net.output[-1].weight)
    torch.nn.init.zeros_(net.output[-1].bias)
    model = EnergyModel(dataset.bead_types, prior=priors.to_module(), network=net)
    x = torch.as_tensor(np.asarray(dataset.coords[:50], dtype=np.float64))
    e, f = model.energy_and_forces(x)
    assert np.array_equal(e.numpy(), priors.energy(np.asarray(dataset.coords[:50])))
    _, fp = EnergyModel(dataset.bead_types, prior=priors.to_module()).energy_and_forces(x)
    assert torch.equal(f, fp)
    save_model(tmp_path / "m", model, priors=priors)
    loaded = load_model(tmp_path / "m", dtype=torch.float64)
    assert torch.equal(loaded(x), model(x).detach())


def test_divergence_check_names_the_loss_and_epoch():
    from raycg.train import TrainingDiverged, check_divergence

    ok = {"epoch": 3, "train_loss": 1.0, "train_force_loss": 1.0, "val_loss": float("nan"),
          "prior_only_train_force_loss": 2.0}
    check_divergence(ok)  # NaN validation (no energy term) is not divergence
    with pytest.raises(TrainingDiverged, match="epoch 3: train_loss=inf"):
        check_divergence(dict(ok, train_loss=float("inf")))
    with pytest.raises(TrainingDiverged, match="more than 10000 x the prior-only loss"):
        check_divergence(dict(ok, train_force_loss=3e4))


def test_compile_auto_follows_run_length():
    from raycg.train.config import COMPILE_AUTO_MIN_STEPS

    assert not cfg(epochs=2).use_compile(COMPILE_AUTO_MIN_STEPS // 2 - 1)
    assert cfg(epochs=2).use_compile(COMPILE_AUTO_MIN_STEPS // 2)
    assert not cfg(epochs=100, compile=False).use_compile(100)
    assert cfg(epochs=1, compile=True).use_compile(1)


def test_compiled_training_matches_eager(dataset, priors, tmp_path):
    """compile=True (band layout, inductor) trains to the same weights as eager, up to float32 round-off."""
    eager = train(cfg(epochs=2, compile=False), dataset, priors, None, tmp_path / "eager")
    compiled = train(cfg(epochs=2, compile=True), dataset, priors, None, tmp_path / "compiled")
    torch._dynamo.reset()
    we, wc = weights(eager.model_dir), weights(compiled.model_dir)
    moved = max(float((we[k] - wc[k]).abs().max()) for k in we)
    assert moved < 1e-3
    assert abs(eager.history[-1]["val_loss"] - compiled.history[-1]["val_loss"]) < 1e-3 * eager.history[-1]["val_loss"]


def test_failed_compilation_trains_eagerly(dataset, priors, tmp_path, monkeypatch, capsys):
    def broken_compile(fn, **kwargs):
        def run_it(*a, **k):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return run_it

    monkeypatch.setattr(torch, "compile", broken_compile)
    broken = train(cfg(epochs=1, compile=True), dataset, priors, None, tmp_path / "broken")
    assert "torch.compile failed (RuntimeError); training eagerly" in capsys.readouterr().err
    monkeypatch.undo()
    eager = train(cfg(epochs=1, compile=False), dataset, priors, None, tmp_path / "eager")
    wb, we = weights(broken.model_dir), weights(eager.model_dir)
    assert all(torch.equal(wb[k], we[k]) for k in wb)
