"""CGSchNet / EnergyModel physics and exactness: symmetry, forces, priors, paths, files."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel, load_model, save_model
from raycg.model.neighbours import blocked_pairs, cell_pairs, dense_pairs, neighbour_pairs

torch.set_num_threads(1)

SMALL = dict(num_types=6, hidden_channels=16, num_filters=12, num_interactions=2, num_rbf=8, cutoff_upper=8.0)


def chain(r: int, b: int, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    steps = torch.randn(r, b, 3, generator=g, dtype=dtype)
    return torch.cumsum(3.8 * steps / steps.norm(dim=-1, keepdim=True), dim=1)


def net(seed: int = 0, **kw) -> CGSchNet:
    torch.manual_seed(seed)
    cfg = dict(SMALL)
    cfg.update(kw)
    return CGSchNet(CGSchNetConfig(**cfg)).double()


def random_rotation(seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


class HarmonicPrior(nn.Module):
    """Stand-in for raycg.priors' PriorEnergy: harmonic bonds along the chain."""

    def __init__(self, k: float = 50.0, r0: float = 3.8):
        super().__init__()
        self.k, self.r0 = k, r0

    def forward(self, pos):
        d = (pos[:, 1:] - pos[:, :-1]).norm(dim=-1)
        return (self.k * (d - self.r0) ** 2).sum(-1)


@pytest.mark.parametrize("rbf", ["expnormal", "gaussian"])
@pytest.mark.parametrize("method", ["dense", "blocked"])
def test_invariances(rbf, method):
    m = net(rbf=rbf, neighbour_method=method, cutoff_lower=1.0 if rbf == "gaussian" else 0.0)
    types = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1, 2])
    pos = chain(4, 9)
    e = m(pos, types)
    rot = random_rotation(1)
    shift = torch.tensor([3.0, -7.0, 11.0], dtype=torch.float64)
    assert torch.allclose(m(pos @ rot.T + shift, types), e, atol=1e-10)
    mirror = pos * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    assert torch.allclose(m(mirror, types), e, atol=1e-10)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(m(pos[:, perm], types[perm]), e, atol=1e-10)
    # and the model is not trivially constant: types and geometry matter
    assert not torch.allclose(m(pos, torch.roll(types, 1)), e, atol=1e-6)
    assert not torch.allclose(m(pos * 1.1, types), e, atol=1e-6)


def test_forces_equal_minus_finite_difference_gradient():
    torch.manual_seed(0)
    model = EnergyModel([0, 1, 2, 3, 4, 5, 1], prior=HarmonicPrior(), network=net(activation="tanh", cutoff_lower=2.0))
    pos = chain(2, 7, seed=5)
    _, f = model.energy_and_forces(pos)
    h = 1e-5
    fd = torch.zeros_like(pos)
    for b in range(7):
        for a in range(3):
            dp = torch.zeros_like(pos)
            dp[:, b, a] = h
            fd[:, b, a] = -(model(pos + dp) - model(pos - dp)) / (2 * h)
    assert torch.allclose(f, fd, atol=1e-6, rtol=1e-6)
    assert f.abs().max() > 1e-3


def test_zero_network_reproduces_priors_exactly():
    network = net()
    last = network.output[-1]
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    prior = HarmonicPrior()
    model = EnergyModel(list(range(6)), prior=prior, network=network).double()
    pos = chain(3, 6, seed=2)
    e, f = model.energy_and_forces(pos)
    ep, fp = EnergyModel(list(range(6)), prior=prior).energy_and_forces(pos)
    assert torch.equal(e, ep) and torch.equal(f, fp)
    assert torch.equal(model(pos), prior(pos))


@pytest.mark.parametrize("lower", [0.0, 3.0])
def test_dense_and_messagepassing_paths_agree(lower):
    """Dense all-pairs path == torch-geometric MessagePassing path (some pairs beyond cutoff)."""
    pos = chain(3, 12, seed=7)
    types = torch.arange(12) % 6
    m = net(cutoff_upper=7.0, cutoff_lower=lower)
    i, j = dense_pairs(pos)
    d = (pos.reshape(-1, 3)[j] - pos.reshape(-1, 3)[i]).norm(dim=-1)
    assert (d > 7.0).any() and (d < 7.0).any()
    m.neighbour_method = "dense"
    e_dense = m(pos, types)
    for method in ("blocked", "cell"):
        m.neighbour_method = method
        assert not m.use_dense(12)
        assert torch.allclose(m(pos, types), e_dense, atol=1e-12, rtol=1e-12)
    # auto picks dense for small systems
    m.neighbour_method = "auto"
    assert m.use_dense(12) and torch.equal(m(pos, types), e_dense)


def test_types_per_structure_and_single_structure():
    m = net()
    pos = chain(2, 5)
    t = torch.tensor([0, 1, 2, 3, 4])
    e = m(pos, t)
    assert torch.allclose(m(pos, t.expand(2, 5)), e)
    assert torch.allclose(m(pos[0], t), e[:1])


def _brute(pos, cutoff):
    r, b, _ = pos.shape
    out = set()
    for s in range(r):
        for i in range(b):
            for j in range(i + 1, b):
                if float((pos[s, i] - pos[s, j]).norm()) < cutoff:
                    out.add((s * b + i, s * b + j))
    return out


def test_neighbour_lists_exact_and_uncapped():
    g = torch.Generator().manual_seed(0)
    # a dense blob: every bead has ~all others (>32) within range, plus a spread-out system
    blob = torch.rand(2, 60, 3, generator=g, dtype=torch.float64) * 4.0
    spread = torch.rand(2, 150, 3, generator=g, dtype=torch.float64) * 30.0
    for pos, cutoff in ((blob, 5.0), (spread, 6.0)):
        want = _brute(pos, cutoff)
        for fn in (lambda p, c: blocked_pairs(p, c), cell_pairs,
                   lambda p, c: blocked_pairs(p, c, max_block_elements=7)):
            i, j = fn(pos, cutoff)
            got = set(zip(i.tolist(), j.tolist(), strict=True))
            assert got == want
    i, j = neighbour_pairs(blob, 5.0)
    counts = torch.bincount(torch.cat([i, j]), minlength=120)
    assert counts.max() > 32                                       # no silent cap
    assert len(dense_pairs(blob)[0]) == 2 * 60 * 59 // 2


def test_save_load_roundtrip(tmp_path):
    network = net(seed=3).float()
    model = EnergyModel([5, 4, 3, 2, 1, 0], network=network)
    pos = chain(2, 6).float()
    save_model(tmp_path / "m", model, extra={"note": "x"})
    loaded = load_model(tmp_path / "m")
    assert not loaded.training
    assert torch.equal(loaded(pos), model(pos))
    assert torch.equal(loaded.bead_types, model.bead_types)
    assert loaded.network.config == network.config
    e, f = loaded.energy_and_forces(pos)
    assert f.shape == pos.shape and torch.isfinite(f).all()


def test_bad_type_and_shape_errors():
    from raycg.errors import InputError

    with pytest.raises(InputError, match="num_types"):
        EnergyModel([0, 99], network=net())
    with pytest.raises(ValueError, match=r"\[R, 3, 3\]"):
        EnergyModel([0, 1, 2], network=net())(torch.zeros(2, 4, 3, dtype=torch.float64))
    with pytest.raises(ValueError):
        CGSchNetConfig(cutoff_lower=5.0, cutoff_upper=4.0)


def test_cutoff_and_basis_shapes():
    from raycg.model.schnet import CosineCutoff, ExpNormalBasis, GaussianBasis

    d = torch.linspace(0, 12, 121, dtype=torch.float64)
    c = CosineCutoff(0.0, 10.0)(d)
    assert c[0] == 1.0 and torch.all(c[d >= 10.0] == 0) and torch.all(torch.diff(c) <= 1e-15)
    c2 = CosineCutoff(2.0, 10.0)(d)
    assert torch.all(c2[d <= 2.0] == 0) and torch.all(c2[d >= 10.0] == 0)
    assert math.isclose(float(c2[60]), 1.0, abs_tol=1e-12)         # peak at the window centre (6 Å)
    for basis in (ExpNormalBasis(16, 0.0, 10.0), GaussianBasis(16, 0.0, 10.0)):
        out = basis(d.float())
        assert out.shape == (121, 16) and torch.all(out > 0 - 1e-12) and torch.all(out <= 1.0 + 1e-6)
        assert np.argmax(out[:, 0].numpy()) != np.argmax(out[:, -1].numpy())


@pytest.mark.parametrize("activation", ["tanh", "ssp", "silu"])
@pytest.mark.parametrize("rbf, lower", [("expnormal", 0.0), ("gaussian", 2.5)])
@pytest.mark.parametrize("method", ["dense", "blocked"])
def test_fused_forces_equal_autograd_and_train_identically(activation, rbf, lower, method):
    """The hand-written reverse pass gives autograd's forces and autograd's weight gradients."""
    m = net(activation=activation, rbf=rbf, cutoff_lower=lower, cutoff_upper=7.0, num_interactions=3,
            neighbour_method=method)
    assert m.use_dense(9) == (method == "dense")
    pos = chain(3, 9, seed=11)
    types = torch.arange(9) % 6
    e1, f1 = m.energy_and_forces(pos, types, create_graph=True)
    p = pos.clone().requires_grad_(True)
    e2 = m(p, types)
    (g,) = torch.autograd.grad(e2.sum(), p, create_graph=True)
    assert torch.allclose(e1, e2, atol=1e-12) and torch.allclose(f1, -g, atol=1e-12, rtol=1e-10)
    target = torch.randn(pos.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    params = [q for q in m.parameters() if q.requires_grad]
    ga = torch.autograd.grad(((f1 - target) ** 2).mean() + e1.pow(2).mean(), params)
    gb = torch.autograd.grad(((-g - target) ** 2).mean() + e2.pow(2).mean(), params)
    for a, b in zip(ga, gb, strict=True):
        assert torch.allclose(a, b, atol=1e-11, rtol=1e-9)
    # without create_graph: no graph, same numbers
    e3, f3 = m.energy_and_forces(pos, types)
    assert not f3.requires_grad and torch.allclose(f3, f1.detach(), atol=1e-12)


def test_energy_model_forces_with_prior_match_autograd():
    model = EnergyModel([0, 1, 2, 3, 4, 5, 1], prior=HarmonicPrior(), network=net(seed=4))
    pos = chain(2, 7, seed=9)
    e, f = model.energy_and_forces(pos)
    p = pos.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(p).sum(), p)
    assert torch.allclose(f, -g, atol=1e-11) and torch.allclose(e, model(pos).detach(), atol=1e-12)


@pytest.mark.parametrize("layout", ["gather", "band"])
@pytest.mark.parametrize("b", [2, 3, 9])
def test_dense_pair_operations_match_their_definitions(layout, b):
    """Each pair <-> bead operation of both layouts equals a brute-force loop over pairs."""
    from raycg.model.dense import DensePairs

    ops = DensePairs(b, "cpu", layout)
    i, j = ops.i.tolist(), ops.j.tolist()
    assert sorted(zip(i, j)) == [(a, c) for a in range(b) for c in range(a + 1, b)]  # every pair once
    assert [c - a for a, c in zip(i, j)] == sorted(c - a for a, c in zip(i, j))      # band order
    g = torch.Generator().manual_seed(b)
    r, f = 2, 5
    pos = torch.randn(r, b, 3, generator=g, dtype=torch.float64)
    w = torch.randn(r, ops.n_pairs, f, generator=g, dtype=torch.float64)
    x = torch.randn(r, b, f, generator=g, dtype=torch.float64)
    y = torch.randn(r, b, f, generator=g, dtype=torch.float64)
    diffs = torch.stack([pos[:, c] - pos[:, a] for a, c in zip(i, j)], 1)
    wfull = torch.zeros(r, b, b, f, dtype=torch.float64)
    for p, (a, c) in enumerate(zip(i, j)):
        wfull[:, a, c] = wfull[:, c, a] = w[:, p]
    contract = torch.einsum("rabf,rbf->raf", wfull, x)
    products = torch.stack([y[:, a] * x[:, c] + y[:, c] * x[:, a] for a, c in zip(i, j)], 1)
    to_bead = torch.zeros(r, b, f, dtype=torch.float64)
    for p, (a, c) in enumerate(zip(i, j)):
        to_bead[:, a] += w[:, p]
        to_bead[:, c] -= w[:, p]
    assert torch.allclose(ops.diffs(pos), diffs, atol=1e-14)
    assert torch.allclose(ops.contract(w, x), contract, atol=1e-12)
    assert torch.allclose(ops.pair_products(y, x), products, atol=1e-12)
    assert torch.allclose(ops.pair_to_bead(w), to_bead, atol=1e-12)


def test_band_and_gather_layouts_give_the_same_forces_and_weight_gradients():
    m = net(num_interactions=3, cutoff_upper=9.0)
    pos = chain(4, 8, seed=5)
    types = torch.arange(8) % 6
    h = m._embed(types, 4, 8).double()
    target = torch.randn(pos.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    params = [q for q in m.parameters() if q.requires_grad]
    out = {}
    for layout in ("gather", "band"):
        e, f = m._dense_energy_forces(pos, h, layout=layout)
        grads = torch.autograd.grad(((f - target) ** 2).mean() + e.pow(2).mean(), params, retain_graph=True)
        out[layout] = (e, f, grads, m._dense(pos, h, layout=layout))
    (e1, f1, g1, h1), (e2, f2, g2, h2) = out["gather"], out["band"]
    assert torch.allclose(e1, e2, atol=1e-12) and torch.allclose(f1, f2, atol=1e-12)
    assert torch.allclose(h1, h2, atol=1e-12)
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b, atol=1e-11, rtol=1e-9)


def test_layout_choice_outside_compile():
    from raycg.model.dense import choose_layout

    assert choose_layout("auto", weight_grads=True, n_beads=10) == "gather"   # eager training, small: gather
    assert choose_layout("auto", weight_grads=True, n_beads=35) == "band"     # larger: band stays in cache
    assert choose_layout("auto", weight_grads=False, n_beads=35) == "gather"  # simulation
    assert choose_layout("band", weight_grads=False) == "band"


_SEEN_LAYOUTS: list[str] = []


def test_compiled_training_pass_uses_band_layout_and_matches_eager(monkeypatch):
    """torch.compile of the fused pass with weight gradients traces the band layout; same numbers."""
    from raycg.model import dense

    seen = _SEEN_LAYOUTS        # a module global: dynamo replays a traced append to it
    seen.clear()
    init = dense.DensePairs.__init__

    def spy(self, n_beads, device, layout):
        _SEEN_LAYOUTS.append(layout)
        init(self, n_beads, device, layout)

    monkeypatch.setattr(dense.DensePairs, "__init__", spy)
    torch._dynamo.reset()
    m = net(num_interactions=2, cutoff_upper=9.0).float()
    pos, types = chain(4, 6, seed=2, dtype=torch.float32), torch.arange(6) % 6
    target = torch.randn(pos.shape, generator=torch.Generator().manual_seed(3))
    params = [q for q in m.parameters() if q.requires_grad]
    compiled = torch.compile(m.energy_and_forces, dynamic=False)
    results = []
    for fn in (m.energy_and_forces, compiled):
        e, f = fn(pos, types, create_graph=True)
        results.append((f.detach(), torch.autograd.grad(((f - target) ** 2).mean() + e.pow(2).mean(), params)))
    torch._dynamo.reset()
    assert "band" in seen and seen[0] == "gather"     # eager first, then the traced pass
    (f1, g1), (f2, g2) = results
    assert torch.allclose(f1, f2, atol=1e-5, rtol=1e-4)
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-3)
