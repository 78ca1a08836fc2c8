"""The engine with raycg's EnergyModel: tabulated filters, compilation, and what the run reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel
from raycg.sim import SimulationConfig, simulate
from raycg.sim.config import COMPILE_AUTO_MIN_STEPS

from .sim_testlib import MASS, chain_starts

torch.set_num_threads(1)
N_BEADS = 6


def small_model() -> EnergyModel:
    torch.manual_seed(0)
    net = CGSchNet(CGSchNetConfig(num_types=6, hidden_channels=16, num_filters=16, num_interactions=2, num_rbf=12,
                                  cutoff_upper=10.0))
    with torch.no_grad():
        net.output[-1].weight.mul_(0.1)

    class Bonds(torch.nn.Module):
        def forward(self, x):
            d = (x[:, 1:] - x[:, :-1]).norm(dim=-1)
            return (20.0 * (d - 3.8) ** 2).sum(-1)

    return EnergyModel(np.arange(N_BEADS) % 6, prior=Bonds(), network=net)


def run(model, tmp_path=None, *, compile=False, **kw):
    cfg = SimulationConfig(n_steps=20, save_every=5, dt_ps=0.002, dtype="float64", seed=3, compile=compile, **kw)
    return simulate(model, np.full(N_BEADS, MASS), chain_starts(4, N_BEADS), cfg, out_dir=tmp_path, progress=False)


def test_compile_auto_follows_run_length():
    assert not SimulationConfig(n_steps=COMPILE_AUTO_MIN_STEPS - 1).use_compile()
    assert SimulationConfig(n_steps=COMPILE_AUTO_MIN_STEPS).use_compile()
    assert not SimulationConfig(n_steps=10**6, compile=False).use_compile()
    assert SimulationConfig(n_steps=1, compile=True).use_compile()


def test_table_and_exact_filters_give_the_same_trajectory_and_the_run_says_which(tmp_path):
    model = small_model()
    exact = run(model, filter_table_spacing_A=None)
    table = run(model, tmp_path / "table")
    assert exact.info["forces"]["filter_table"] is None
    assert table.info["forces"]["filter_table"]["max_relative_error"] < 1e-5
    assert np.abs(table.positions - exact.positions).max() < 1e-6            # Å, after 20 steps
    report = json.loads((tmp_path / "table" / "replicas.json").read_text())
    assert report["forces"]["filter_table"]["spacing_A"] <= 0.005 and report["forces"]["compiled"] is False


@pytest.mark.parametrize("integrator", ["baoab", "brownian"])
def test_compiled_simulation_matches_eager(integrator):
    model = small_model()
    eager = run(model, integrator=integrator)
    compiled = run(model, compile=True, integrator=integrator)
    torch._dynamo.reset()
    assert compiled.info["forces"]["compiled"] is True
    assert np.abs(compiled.positions - eager.positions).max() < 1e-8


def test_compiled_step_scope_reports_itself_and_each_model_keeps_its_own_graph():
    """The CPU policy compiles the whole integrator step (forces inside). Two models of one architecture
    simulated one after the other in one process (a Tune worker runs trial after trial) each follow their
    own eager trajectory: the second never runs on the first one's compiled weights."""
    first = small_model()
    second = small_model()
    with torch.no_grad():
        for p in second.network.parameters():
            p.mul_(1.5)
    runs = [run(m, compile=True) for m in (first, second, first)]
    torch._dynamo.reset()
    assert runs[0].info["forces"]["compile_scope"] == "step"
    eager = [run(first), run(second)]
    assert np.abs(eager[0].positions - eager[1].positions).max() > 1e-6       # the models differ
    for res, ref in zip(runs, (eager[0], eager[1], eager[0])):
        assert res.info["forces"]["compiled"] is True
        assert np.abs(res.positions - ref.positions).max() < 1e-8


def test_a_long_lived_process_keeps_compiling_every_simulation():
    """A Tune worker runs simulation after simulation: each must compile its step as one graph (no
    graph break, no second graph for a grad-mode change), and the 9th must not hit dynamo's recompile
    limit and silently run eagerly (it did when every run shared one code object)."""
    from torch._dynamo.utils import counters

    cfg = SimulationConfig(n_steps=3, save_every=1, dt_ps=0.002, dtype="float64", seed=3, compile=True)
    before = dict(counters["frames"])
    for i in range(1, 11):
        simulate(small_model(), np.full(N_BEADS, MASS), chain_starts(4, N_BEADS), cfg, progress=False)
        assert counters["frames"]["ok"] - before.get("ok", 0) == i
    assert not counters["graph_break"] and not counters["recompile_limit"]
    torch._dynamo.reset()


def test_a_miscompiled_step_is_caught_before_it_runs(monkeypatch, capsys):
    """A compiler that returns wrong forces (inductor did, for a step that also reduced over them): the
    compiled step is checked against the eager one on the start state, and the run goes on eagerly."""
    import raycg.sim.stepper as stepper_mod

    def wrong_forces(fn, **kwargs):
        def run_it(*a, **k):
            x, v, f, e = fn(*a, **k)
            return x, v, f * 1.01, e
        return run_it

    monkeypatch.setattr(stepper_mod, "compile_private", wrong_forces)
    model = small_model()
    res = run(model, compile=True)
    assert "the compiled step disagrees with the eager step" in capsys.readouterr().err
    assert res.info["forces"]["compiled"] is False
    assert res.info["forces"]["compile_error"] == "compiled step disagrees with eager"
    check = res.info["forces"]["compile_check"]
    assert check["agrees"] is False and check["difference"] > check["tolerance"] == 1e-9
    assert np.abs(res.positions - run(model).positions).max() < 1e-12


class Harmonic(torch.nn.Module):
    """A plain module potential: the engine compiles it as a force pass (not the whole step)."""

    def forward(self, x):
        return (20.0 * ((x[:, 1:] - x[:, :-1]).norm(dim=-1) - 3.8) ** 2).sum(-1)


@pytest.mark.parametrize("scale", [1.0, 1.01])
def test_a_compiled_force_pass_is_checked_against_the_eager_pass(monkeypatch, capsys, scale):
    """A compiled force pass (a potential compiled on its own, as on CUDA) is compared with the
    eager pass on the start positions: an exact compiler passes, a wrong one is caught with one
    line and the run goes on eagerly with the eager numbers."""
    import raycg.sim.engine as engine

    def compiler(fn, **kwargs):
        return lambda *a, **k: fn(*a, **k) * scale

    monkeypatch.setattr(engine, "compile_private", compiler)
    res = run(Harmonic(), compile=True)
    err = capsys.readouterr().err.splitlines()
    forces = res.info["forces"]
    if scale == 1.0:
        assert err == [] and forces["compiled"] is True and forces["compile_scope"] == "forces"
        assert forces["compile_check"] == {"difference": 0.0, "tolerance": 1e-9, "agrees": True}
    else:
        assert len(err) == 1 and err[0].startswith(
            "raycg.sim: the compiled force pass disagrees with the eager pass (relative difference"), err
        assert forces["compiled"] is False and forces["compile_check"]["agrees"] is False
        assert forces["compile_error"] == "compiled forces disagree with eager"
    monkeypatch.undo()
    np.testing.assert_array_equal(res.positions, run(Harmonic()).positions)


def test_failed_compilation_falls_back_to_eager(monkeypatch, capsys):
    """A node without a working compiler: one line on stderr, the run goes on eagerly, same numbers."""
    def broken_compile(fn, **kwargs):
        def run_it(*a, **k):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found")
        return run_it

    monkeypatch.setattr(torch, "compile", broken_compile)
    model = small_model()
    res = run(model, compile=True)
    assert "torch.compile failed (RuntimeError: InvalidCxxCompiler" in capsys.readouterr().err
    assert res.info["forces"]["compiled"] is False and res.info["forces"]["compile_error"] == "RuntimeError"
    monkeypatch.undo()
    assert np.abs(res.positions - run(model).positions).max() < 1e-12
