"""A small raycg model (fitted priors + a small CGSchNet) on a 10-bead two-state dataset."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def inputs(tmp_path_factory):
    """(root, dataset): ROOT/ds (dataset), ROOT/model (model directory written by save_model)."""
    from raycg._testing.datasets import two_state_dataset
    from raycg.data.format import load, save
    from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel, save_model
    from raycg.priors import fit_priors

    root = tmp_path_factory.mktemp("export")
    ds, _ = two_state_dataset(n_traj=4, length=400, seed=0)
    save(ds, root / "ds")
    ds = load(root / "ds")
    priors = fit_priors(ds)
    torch.manual_seed(0)
    net = CGSchNet(
        CGSchNetConfig(
            num_types=8,
            hidden_channels=8,
            num_filters=8,
            num_interactions=1,
            num_rbf=8,
            cutoff_upper=10.0,
        )
    )
    with torch.no_grad():  # a network term of a few kcal/mol, not a random wall
        net.output[-1].weight.mul_(0.3)
    save_model(root / "model", EnergyModel(ds.bead_types, priors.to_module(), net), priors=priors)
    return root, ds
