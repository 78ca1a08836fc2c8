"""``raycg sim run`` on a priors JSON and a small synthetic dataset; bad input -> exit 2, one line."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raycg._testing.datasets import two_state_dataset
from raycg.cli import main
from raycg.data.format import save
from raycg.sim import load_simulation


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from raycg.priors import fit_priors

    root = tmp_path_factory.mktemp("simcli")
    ds, _ = two_state_dataset(n_traj=4, length=400, seed=0)
    save(ds, root / "ds")
    fit_priors(ds).save(root / "priors.json")
    return root


def test_sim_run_priors(inputs, capsys):
    out = inputs / "run"
    rc = main(["sim", "run", str(inputs / "priors.json"), "--dataset", str(inputs / "ds"), "--out", str(out),
               "--n-replicas", "3", "--n-steps", "40", "--save-every", "10", "--dt-ps", "0.002", "--no-progress"])
    assert rc == 0
    assert "simulated 3 replicas x 40 steps" in capsys.readouterr().out
    res = load_simulation(out)
    assert res.positions.shape == (3, 4, 10, 3) and res.alive.all()
    info = json.loads((out / "replicas.json").read_text())
    assert info["temperature_K"] == [300.0] * 3 and info["dt_ps"] == 0.002
    starts = json.loads((out / "starts.json").read_text())
    assert starts["method"] == "kcenters" and len(starts["frames"]) == 3
    # bonds stay near the data's 3.8 Å: the priors hold the chain together
    d = np.linalg.norm(np.diff(res.positions, axis=2), axis=-1)
    assert 3.0 < d.mean() < 4.6
    assert main(["sim", "run", str(inputs / "priors.json"), "--dataset", str(inputs / "ds"), "--out", str(out),
                 "--n-steps", "40", "--no-progress"]) == 2
    assert "already holds a finished simulation" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "needle"), [
    (["--dt-ps", "-1"], "dt_ps: Input should be greater than 0"),
    (["--starts", "stratified"], "'stratified' needs features"),
    (["--n-replicas", "0"], "--n-replicas must be >= 1"),
])
def test_sim_run_bad_input(inputs, capsys, extra, needle):
    rc = main(["sim", "run", str(inputs / "priors.json"), "--dataset", str(inputs / "ds"), "--out",
               str(inputs / "bad"), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and needle in err and err.startswith("error: ") and err.count("\n") == 1


def test_sim_run_missing_model(inputs, capsys):
    rc = main(["sim", "run", str(inputs / "nope.json"), "--dataset", str(inputs / "ds"), "--out", str(inputs / "x")])
    assert rc == 2 and "model or priors not found" in capsys.readouterr().err


def test_sim_run_saved_model(inputs, capsys):
    """A model directory from raycg.model.save_model (small CGSchNet + priors) runs through load_model."""
    import torch

    from raycg.data.format import load
    from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel, save_model
    from raycg.priors import PriorSet

    ds = load(inputs / "ds")
    priors = PriorSet.load(inputs / "priors.json")
    torch.manual_seed(0)
    net = CGSchNet(CGSchNetConfig(num_types=8, hidden_channels=8, num_filters=8, num_interactions=1, num_rbf=8))
    save_model(inputs / "model", EnergyModel(ds.bead_types, priors.to_module(), net), priors=priors)
    out = inputs / "run_model"
    rc = main(["sim", "run", str(inputs / "model"), "--dataset", str(inputs / "ds"), "--out", str(out),
               "--n-replicas", "2", "--n-steps", "20", "--save-every", "10", "--starts", "random", "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    res = load_simulation(out)
    assert res.positions.shape == (2, 2, 10, 3) and np.isfinite(res.potential_energy).all()
    import json

    assert json.loads((out / "replicas.json").read_text())["forces"]["filter_table"]["spacing_A"] <= 0.005
    exact = inputs / "run_model_exact"
    assert main(["sim", "run", str(inputs / "model"), "--dataset", str(inputs / "ds"), "--out", str(exact),
                 "--n-replicas", "2", "--n-steps", "20", "--save-every", "10", "--starts", "random", "--no-progress",
                 "--filter-table-spacing", "0"]) == 0
    assert json.loads((exact / "replicas.json").read_text())["forces"]["filter_table"] is None
    assert np.allclose(load_simulation(exact).positions, res.positions, atol=1e-3)
