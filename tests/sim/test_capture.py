"""Captured simulation steps: the control flow a CUDA graph replays (static state, noise drawn in the
step, device-side frame slots) gives the uncaptured loop's bits; on a GPU the real graphs do too."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch

import raycg.sim.engine as engine
from raycg.sim import SimulationConfig, simulate
from raycg.sim.capture import CHECK_STEPS, DISAGREES, CapturedSteps, EagerGraphs
from raycg.sim.engine import Simulation

from .sim_testlib import MASS, Chain, chain_bonds, chain_starts

N_REP, N_BEADS = 5, 4
FIELDS = ("positions", "potential_energy", "kinetic_temperature", "alive", "died_at_step", "final_positions",
          "final_velocities")


def _inputs(seed: int = 2):
    """Starts and velocities of which replica 1 is shot out of its bond envelope (dies mid-run)."""
    v0 = np.zeros((N_REP, N_BEADS, 3))
    v0[1, 3, 0] = 150.0
    return chain_starts(N_REP, N_BEADS, seed=seed), v0


def _config(**kw) -> SimulationConfig:
    base = dict(dt_ps=0.004, n_steps=60, save_every=5, seed=1, chunk_frames=4, blowup_max_bond_A=6.0)
    return SimulationConfig(**{**base, **kw})


def _captured(cfg, monkeypatch, out_dir=None, **kw):
    """A run whose steps go through CapturedSteps (EagerGraphs: the graphs' control flow on a CPU)."""
    monkeypatch.setattr(engine, "CPU_FAST_PATH", False)            # a captured step has no host check
    x0, v0 = _inputs()
    sim = Simulation(Chain(N_BEADS), np.full(N_BEADS, MASS), x0, cfg, bonds=chain_bonds(N_BEADS), velocities=v0,
                     progress=False, out_dir=out_dir, **kw)
    assert isinstance(sim.capture_steps(EagerGraphs()), CapturedSteps)
    res = sim.run()
    monkeypatch.undo()
    return res


def _uncaptured(cfg, out_dir=None):
    x0, v0 = _inputs()
    return simulate(Chain(N_BEADS), np.full(N_BEADS, MASS), x0, cfg, bonds=chain_bonds(N_BEADS), velocities=v0,
                    progress=False, out_dir=out_dir)


@pytest.mark.parametrize("integrator", ["baoab", "brownian"])
def test_captured_control_flow_gives_the_uncaptured_bits(monkeypatch, integrator):
    cfg = _config(integrator=integrator, friction_per_ps=5.0 if integrator == "brownian" else 1.0)
    ref = _uncaptured(cfg)
    cap = _captured(cfg, monkeypatch)
    assert cap.info["forces"]["captured"] is True and cap.info["forces"]["capture_backend"] == "eager_replay"
    assert cap.info["forces"]["capture_check"] == {"steps": CHECK_STEPS, "difference": 0.0,
                                                   "tolerance": 1e-3, "agrees": True}
    assert ref.info["forces"]["captured"] is False                   # a CPU never captures by itself
    assert "capture_check" not in ref.info["forces"]
    if integrator == "baoab":
        assert ref.alive.tolist() == [True, False, True, True, True] and 0 < ref.died_at_step[1] < 60
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(cap, name), getattr(ref, name), err_msg=name)


def test_captured_run_checkpoints_and_resumes_bit_for_bit(monkeypatch, tmp_path):
    """Checkpoints read the static state and the generator between replays: a captured run with
    checkpoints writes the files of an uncaptured one, and a captured resume of a crashed run too."""
    cfg = _config(checkpoint_every=20)
    ref = _uncaptured(cfg, tmp_path / "ref")
    seen = []
    _captured(cfg, monkeypatch, out_dir=tmp_path / "cap", on_checkpoint=lambda step, d: seen.append(step))
    assert seen == [20, 40]
    with np.load(tmp_path / "ref" / "thermo.npz") as a, np.load(tmp_path / "cap" / "thermo.npz") as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    ck_ref = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    ck_cap = torch.load(tmp_path / "cap" / "checkpoint.pt", weights_only=True)
    for key in ("x", "v", "f", "e", "alive", "died", "reason", "rng_state"):
        assert torch.equal(ck_ref[key], ck_cap[key]), key
    info = json.loads((tmp_path / "cap" / "replicas.json").read_text())
    check = info["forces"]["capture_check"]
    assert check["agrees"] is True and check["difference"] == 0
    assert info["forces"]["captured"] is True and info["blown_up"] == json.loads(
        (tmp_path / "ref" / "replicas.json").read_text())["blown_up"]
    np.testing.assert_array_equal(ref.final_positions, ck_cap["x"].numpy())
    x0, v0 = _inputs()
    with pytest.raises(RuntimeError, match="simulated crash"):          # uncaptured, crashes after step 40
        simulate(Chain(N_BEADS, raise_at_call=50), np.full(N_BEADS, MASS), x0, cfg, bonds=chain_bonds(N_BEADS),
                 velocities=v0, progress=False, out_dir=tmp_path / "part")
    resumed = _captured(cfg, monkeypatch, out_dir=tmp_path / "part")
    assert json.loads((tmp_path / "part" / "replicas.json").read_text())["resumed_from_step"] == 40
    for name in ("final_positions", "final_velocities", "alive", "died_at_step"):
        np.testing.assert_array_equal(getattr(resumed, name), getattr(ref, name), err_msg=name)
    with np.load(tmp_path / "ref" / "thermo.npz") as a, np.load(tmp_path / "part" / "thermo.npz") as b:
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    names = sorted(p.name for p in (tmp_path / "ref").glob("replica_*.h5"))
    assert names == sorted(p.name for p in (tmp_path / "part").glob("replica_*.h5")) and len(names) >= N_REP - 1
    for name in names:                                              # the trajectory files, as written
        with h5py.File(tmp_path / "ref" / name) as a, h5py.File(tmp_path / "part" / name) as b:
            np.testing.assert_array_equal(a["coordinates"][...], b["coordinates"][...])


def test_step_with_pregenerated_noise_is_the_simulate_step():
    """The step function fed noise drawn beforehand (one draw per step from the run's seed) is
    exactly what simulate does: what a captured step with pre-generated noise would replay."""
    cfg = _config(n_steps=30, save_every=30)
    x0, v0 = _inputs()
    ref = _uncaptured(cfg)
    sim = Simulation(Chain(N_BEADS), np.full(N_BEADS, MASS), x0, cfg, bonds=chain_bonds(N_BEADS), velocities=v0,
                     progress=False)
    gen = torch.Generator().manual_seed(cfg.seed)
    noise = [torch.randn((N_REP, N_BEADS, 3), generator=gen) for _ in range(cfg.n_steps)]
    state = sim.state
    for k in range(cfg.n_steps):
        state = sim.stepper(state, noise[k])
    assert int(state.step) == cfg.n_steps
    np.testing.assert_array_equal(state.x.numpy(), ref.final_positions)
    np.testing.assert_array_equal(state.v.numpy(), ref.final_velocities)
    np.testing.assert_array_equal(state.alive.numpy(), ref.alive)


def test_a_failed_capture_runs_uncaptured_with_the_same_numbers(monkeypatch, capsys):
    class Broken(EagerGraphs):
        def capture(self, fn, generator):
            raise RuntimeError("operation not permitted when stream is capturing")

    cfg = _config()
    ref = _uncaptured(cfg)
    monkeypatch.setattr(engine, "CPU_FAST_PATH", False)
    x0, v0 = _inputs()
    sim = Simulation(Chain(N_BEADS), np.full(N_BEADS, MASS), x0, cfg, bonds=chain_bonds(N_BEADS), velocities=v0,
                     progress=False)
    assert sim.capture_steps(Broken()) is None
    assert capsys.readouterr().err.splitlines() == [
        "raycg.sim: CUDA graph capture failed (RuntimeError: operation not permitted when stream "
        "is capturing); running uncaptured"]
    res = sim.run()
    assert res.info["forces"]["capture_error"] == "RuntimeError"
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(res, name), getattr(ref, name), err_msg=name)


class WrongReplay(EagerGraphs):
    """A stand-in whose replays are wrong the ways a graph can be: the step launched twice, a graph
    that recorded nothing, the recording step without its frame write, noise from the wrong offset,
    or a replay that raises."""

    def __init__(self, how: str) -> None:
        self.how, self.captured = how, []

    def capture(self, fn, generator):
        self.captured.append(fn)
        if self.how == "twice":
            return lambda: (fn(), fn())
        if self.how == "stale":
            return lambda: None
        if self.how == "no_frame_write":
            return self.captured[0]                  # the recording step replays the plain step
        if self.how == "noise_offset":
            return lambda: (torch.randn(1, generator=generator), fn())

        def fails():
            raise RuntimeError("CUDA error: an illegal memory access was encountered")

        return fails


@pytest.mark.parametrize("how", ["twice", "stale", "no_frame_write", "noise_offset", "raises"])
def test_a_wrong_captured_step_is_caught_and_the_run_goes_on_uncaptured(
        monkeypatch, capsys, tmp_path, how):
    """Before the run the captured step and the uncaptured one advance the start state by a few
    steps with the same noise: any wrong replay is caught, one line says so, and the run gives the
    bits of an uncaptured run (the check moved neither the start state nor the random stream);
    replicas.json records the path that ran and the measured difference."""
    cfg = _config()
    ref = _uncaptured(cfg)
    monkeypatch.setattr(engine, "CPU_FAST_PATH", False)
    x0, v0 = _inputs()
    sim = Simulation(Chain(N_BEADS), np.full(N_BEADS, MASS), x0, cfg, bonds=chain_bonds(N_BEADS),
                     velocities=v0, progress=False, out_dir=tmp_path / "run")
    assert sim.capture_steps(WrongReplay(how)) is None and sim.captured is None
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1, err
    forces = json.loads(json.dumps(sim.force_info))
    if how == "raises":
        assert err[0] == ("raycg.sim: CUDA graph check failed (RuntimeError: CUDA error: an "
                          "illegal memory access was encountered); running uncaptured")
        assert forces["capture_error"] == "RuntimeError" and "capture_check" not in forces
    else:
        assert err[0].startswith("raycg.sim: the captured step disagrees with the uncaptured "
                                 "step (relative difference "), err
        assert err[0].endswith("); running uncaptured"), err
        check = forces["capture_check"]
        assert forces["capture_error"] == DISAGREES and check["agrees"] is False
        assert check["difference"] > check["tolerance"] == 1e-3 and check["steps"] == CHECK_STEPS
    res = sim.run()
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(res, name), getattr(ref, name), err_msg=name)
    report = json.loads((tmp_path / "run" / "replicas.json").read_text())["forces"]
    assert report["captured"] is False and report == forces


def test_the_check_leaves_the_start_state_and_the_random_stream_as_they_were(monkeypatch):
    """After a passing check the static state is the start state and the generator has not moved,
    even though the check replayed and recorded steps."""
    monkeypatch.setattr(engine, "CPU_FAST_PATH", False)
    x0, v0 = _inputs()
    sim = Simulation(Chain(N_BEADS), np.full(N_BEADS, MASS), x0, _config(),
                     bonds=chain_bonds(N_BEADS), velocities=v0, progress=False)
    start, rng = sim.state.clone(), sim.gen.get_state()
    captured = sim.capture_steps(EagerGraphs())
    assert captured is not None and captured.state is sim.state
    for name in ("x", "v", "f", "e", "alive", "died", "reason", "step"):
        assert torch.equal(getattr(sim.state, name), getattr(start, name)), name
    assert torch.equal(sim.gen.get_state(), rng) and int(sim.frames.slot) == 0
    check = captured.check(start, n_steps=2)                        # a second check: same again
    assert check["agrees"] and torch.equal(sim.state.x, start.x)
    assert torch.equal(sim.gen.get_state(), rng)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_steps_are_bit_identical_to_uncaptured():
    from raycg.model import CGSchNet, CGSchNetConfig, EnergyModel

    torch.manual_seed(0)
    net = CGSchNet(CGSchNetConfig(num_types=6, hidden_channels=32, num_filters=32, num_interactions=2, num_rbf=16))
    with torch.no_grad():
        net.output[-1].weight.mul_(0.1)
    model = EnergyModel(np.arange(6) % 6, network=net)
    x0 = chain_starts(64, 6, seed=5)
    runs = {}
    for capture in (False, True):
        cfg = SimulationConfig(device="cuda", n_steps=50, save_every=5, dt_ps=0.002, seed=3, capture=capture,
                               compile=False, blowup_max_bond_A=6.0)
        runs[capture] = simulate(model, np.full(6, MASS), x0, cfg, bonds=chain_bonds(6), progress=False)
    assert runs[True].info["forces"]["captured"] is True, runs[True].info
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(runs[True], name), getattr(runs[False], name), err_msg=name)
