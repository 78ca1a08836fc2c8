"""FilterTable: tabulated CGSchNet filters for simulation (frozen weights) against the exact network."""

from __future__ import annotations

import pytest
import torch

from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel, FilterTable

torch.set_num_threads(1)


def chain(r: int, b: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(r, b, 3, generator=g, dtype=dtype)
    return torch.cumsum(3.8 * steps / steps.norm(dim=-1, keepdim=True), dim=1)


def make_net(**kw) -> CGSchNet:
    torch.manual_seed(0)
    cfg = dict(num_types=6, hidden_channels=32, num_filters=24, num_interactions=3, num_rbf=20, cutoff_upper=10.0)
    cfg.update(kw)
    return CGSchNet(CGSchNetConfig(**cfg)).double().eval()


@pytest.mark.parametrize("rbf, lower", [("expnormal", 0.0), ("gaussian", 2.0)])
@pytest.mark.parametrize("method", ["dense", "blocked"])
def test_table_forces_match_exact_network(rbf, lower, method):
    net = make_net(rbf=rbf, cutoff_lower=lower, neighbour_method=method)
    table = net.filter_table(0.005)
    assert table.max_relative_error < 1e-5                      # measured at every interval midpoint
    pos, types = chain(5, 9, seed=3), torch.arange(9) % 6
    e0, f0 = net.energy_and_forces(pos, types)
    e1, f1 = net.energy_and_forces(pos, types, table=table)
    assert torch.allclose(e1, e0, atol=1e-5) and torch.allclose(f1, f0, atol=1e-4)
    # a coarse table is measurably worse: the error check is not vacuous
    coarse = net.filter_table(0.5)
    assert coarse.max_relative_error > 100 * table.max_relative_error
    assert (net.energy_and_forces(pos, types, table=coarse)[1] - f0).abs().max() > 1e-3


def test_table_forces_are_minus_the_gradient_of_the_table_energy():
    """Hermite interpolation: forces are the exact derivative of the interpolated energy (conservative)."""
    net = make_net()
    table = net.filter_table(0.05)                              # coarse on purpose: consistency, not accuracy
    pos, types = chain(1, 7, seed=5), torch.arange(7) % 6
    _, f = net.energy_and_forces(pos, types, table=table)
    eps = 1e-5
    for bead, axis in [(0, 0), (3, 1), (6, 2)]:
        dp = torch.zeros_like(pos)
        dp[0, bead, axis] = eps
        ep = net.energy_and_forces(pos + dp, types, table=table)[0]
        em = net.energy_and_forces(pos - dp, types, table=table)[0]
        assert abs(float(-(ep - em) / (2 * eps)) - float(f[0, bead, axis])) < 1e-6


def test_table_is_zero_outside_the_cutoffs():
    net = make_net(cutoff_lower=2.0, cutoff_upper=8.0)
    table = net.filter_table()
    w, dw = table(torch.tensor([0.5, 1.9, 8.0, 9.0, 30.0], dtype=torch.float64))
    assert w.abs().max() < 1e-12 and dw.abs().max() < 1e-9
    w_in, _ = table(torch.tensor([4.0], dtype=torch.float64))
    assert w_in.abs().max() > 1e-3


def test_table_is_inference_only_and_follows_the_network_dtype():
    net = make_net()
    table = net.filter_table()
    with pytest.raises(ValueError, match="create_graph"):
        net.energy_and_forces(chain(1, 5), torch.arange(5), create_graph=True, table=table)
    assert isinstance(table, FilterTable) and table.coef.dtype == torch.float64
    assert make_net().float().filter_table().coef.dtype == torch.float32


def test_energy_model_simulation_forces_report_the_table():
    net = make_net()
    model = EnergyModel(torch.arange(6) % 6, network=net)
    eaf = model.simulation_forces(table_spacing_A=0.005)
    assert eaf.info["filter_table"]["max_relative_error"] < 1e-5 and not eaf.info["compiled"]
    pos = chain(2, 6, seed=8)
    e0, f0 = model.energy_and_forces(pos)
    e1, f1 = eaf(pos)
    assert torch.allclose(f1, f0, atol=1e-4) and torch.allclose(e1, e0, atol=1e-5)
    exact = model.simulation_forces(table_spacing_A=None)
    assert exact.info["filter_table"] is None and torch.equal(exact(pos)[1], f0)


def test_replica_blocks_give_the_same_forces():
    model = EnergyModel(torch.arange(6) % 6, network=make_net())
    pos = chain(7, 6, seed=4)
    whole = model.simulation_forces(table_spacing_A=None, pair_block=None)(pos)
    blocked_fn = model.simulation_forces(table_spacing_A=None, pair_block=45)   # 15 pairs per replica
    blocked = blocked_fn(pos)                                    # blocks of 3, 2, 2
    assert blocked_fn.info["replica_block"] == 3                 # the block of the last call
    assert torch.allclose(blocked[0], whole[0], atol=1e-12) and torch.allclose(blocked[1], whole[1], atol=1e-12)


def test_micro_batches_divide_the_batch_and_hold_about_the_pair_budget():
    from raycg.model import micro_batch_frames

    assert micro_batch_frames(256, 10, pair_block=8192) == 128          # 45 pairs/frame: 182 fit -> 256/2
    assert micro_batch_frames(100, 10, pair_block=8192) == 100          # fits whole
    m = micro_batch_frames(256, 35, pair_block=8192)                    # 595 pairs/frame: 13 fit
    assert 256 % m == 0 and 7 <= m <= 13
    assert micro_batch_frames(127, 35, pair_block=8192) == 13           # prime batch: no divisor near, use the fit
