"""Per-replica blow-up safety: the dead replica is frozen and reported, the others carry on unchanged."""

from __future__ import annotations

import json

import h5py
import numpy as np

from raycg.sim import SimulationConfig, load_simulation, simulate

from .sim_testlib import MASS, Chain, chain_bonds, chain_starts


def test_nan_force_kills_one_replica_only(tmp_path):
    n_rep, n_beads = 6, 5
    x0 = chain_starts(n_rep, n_beads)
    cfg = SimulationConfig(dt_ps=0.004, friction_per_ps=1.0, n_steps=100, save_every=10, seed=4, chunk_frames=3)
    ref = simulate(Chain(n_beads), np.full(n_beads, MASS), x0, cfg, progress=False)
    out = tmp_path / "run"
    res = simulate(Chain(n_beads, nan_replica=2, nan_from_call=45), np.full(n_beads, MASS), x0, cfg, out_dir=out,
                   progress=False)
    # result object
    assert res.alive.tolist() == [True, True, False, True, True, True]
    assert res.died_at_step.tolist() == [-1, -1, 45, -1, -1, -1]
    assert res.reasons[2] == "non-finite forces"
    assert res.n_frames_per_replica.tolist() == [10, 10, 4, 10, 10, 10]  # frames at steps 10..40 only
    # replicas.json
    info = json.loads((out / "replicas.json").read_text())
    assert info["blown_up"] == [{"replica": 2, "step": 45, "time_ps": 45 * 0.004, "reason": "non-finite forces"}]
    # trajectory files: the dead one stops before its death, no NaN anywhere
    for r in range(n_rep):
        with h5py.File(out / f"replica_{r:04d}.h5") as fh:
            xyz = fh["coordinates"][...]
            assert np.isfinite(xyz).all()
            assert len(xyz) == (4 if r == 2 else 10)
    # thermo: NaN exactly from the first frame at/after death, finite elsewhere
    th = np.load(out / "thermo.npz")
    assert np.isfinite(th["potential_energy"][2, :4]).all() and np.isnan(th["potential_energy"][2, 4:]).all()
    assert np.isnan(th["kinetic_temperature"][2, 4:]).all()
    others = [r for r in range(n_rep) if r != 2]
    assert np.isfinite(th["potential_energy"][others]).all()
    # the survivors are bit-for-bit what they are without the injected failure; the dead one up to its death
    np.testing.assert_array_equal(res.positions[others], ref.positions[others])
    np.testing.assert_array_equal(res.positions[2, :4], ref.positions[2, :4])
    assert np.isnan(res.positions[2, 4:]).all()
    back = load_simulation(out)  # from disk (float32 nm in the .h5 files): equal to within rounding
    np.testing.assert_allclose(back.positions[others], ref.positions[others], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(back.n_frames_per_replica, res.n_frames_per_replica)
    assert np.isfinite(res.final_positions).all()


def test_bond_envelope_blowup():
    n_rep, n_beads = 4, 3
    x0 = chain_starts(n_rep, n_beads)
    v0 = np.zeros((n_rep, n_beads, 3))
    v0[1, 2, 0] = 400.0  # Å/ps: bead 2 of replica 1 is shot away from its neighbour
    cfg = SimulationConfig(dt_ps=0.002, friction_per_ps=1.0, n_steps=40, save_every=5, seed=0,
                           blowup_max_bond_A=5.0)
    res = simulate(Chain(n_beads), np.full(n_beads, MASS), x0, cfg, bonds=chain_bonds(n_beads), velocities=v0,
                   progress=False)
    assert res.alive.tolist() == [True, False, True, True]
    assert "bonded distance" in res.reasons[1]
    assert 0 < res.died_at_step[1] <= 5
    assert np.isnan(res.positions[1]).all() and np.isfinite(res.positions[[0, 2, 3]]).all()
    d = np.linalg.norm(res.final_positions[1, 2] - res.final_positions[1, 1])
    assert d <= 5.0  # frozen at the last state inside the envelope


def test_masked_path_matches_fast_path(monkeypatch):
    """The always-masked update (used on accelerators, no host sync) gives the same bits as the CPU fast path."""
    import raycg.sim.engine as engine

    n_rep, n_beads = 5, 4
    x0 = chain_starts(n_rep, n_beads, seed=2)
    cfg = SimulationConfig(dt_ps=0.004, n_steps=60, save_every=5, seed=1, blowup_max_bond_A=10.0)
    fast = simulate(Chain(n_beads, nan_replica=3, nan_from_call=22), np.full(n_beads, MASS), x0, cfg,
                    bonds=chain_bonds(n_beads), progress=False)
    monkeypatch.setattr(engine, "CPU_FAST_PATH", False)
    masked = simulate(Chain(n_beads, nan_replica=3, nan_from_call=22), np.full(n_beads, MASS), x0, cfg,
                      bonds=chain_bonds(n_beads), progress=False)
    assert masked.died_at_step.tolist() == fast.died_at_step.tolist() == [-1, -1, -1, 22, -1]
    np.testing.assert_array_equal(masked.positions, fast.positions)
    np.testing.assert_array_equal(masked.potential_energy, fast.potential_energy)
    np.testing.assert_array_equal(masked.final_velocities, fast.final_velocities)
