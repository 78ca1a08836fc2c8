"""Output layout, mdtraj compatibility, and checkpoint -> resume reproducing a run bit for bit."""

from __future__ import annotations

import json

import h5py
import mdtraj
import numpy as np
import pytest
import torch

from raycg import units as U
from raycg.errors import InputError
from raycg.sim import SimulationConfig, load_simulation, simulate

from .sim_testlib import MASS, Chain, chain_bonds, chain_starts


def test_mdtraj_reads_trajectories_and_frames_match(tmp_path):
    n_rep, n_beads = 3, 5
    x0 = chain_starts(n_rep, n_beads)
    cfg = SimulationConfig(dt_ps=0.004, n_steps=60, save_every=6, seed=1, chunk_frames=4)
    out = tmp_path / "sim"
    res = simulate(Chain(n_beads), np.full(n_beads, MASS), x0, cfg, out_dir=out, bonds=chain_bonds(n_beads),
                   progress=False)
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt", "replica_0000.h5", "replica_0001.h5", "replica_0002.h5", "replicas.json", "thermo.npz",
        "topology.pdb"]
    top = mdtraj.load_topology(str(out / "topology.pdb"))
    assert top.n_atoms == n_beads and top.n_bonds == n_beads - 1
    for r in range(n_rep):
        traj = mdtraj.load(str(out / f"replica_{r:04d}.h5"))
        assert traj.n_frames == 10 and traj.topology.n_bonds == n_beads - 1
        np.testing.assert_array_equal(traj.xyz, res.positions[r] * np.float32(U.ANGSTROM_TO_NM))
        np.testing.assert_allclose(traj.time, np.arange(1, 11) * 6 * 0.004, rtol=1e-6)
    th = np.load(out / "thermo.npz")
    assert th["potential_energy"].shape == (n_rep, 10) and th["kinetic_temperature"].shape == (n_rep, 10)
    np.testing.assert_array_equal(th["step"], np.arange(1, 11) * 6)
    np.testing.assert_allclose(th["potential_energy"], res.potential_energy)
    # the saved energies are those of the saved frames
    e = Chain(n_beads).energy(torch.as_tensor(res.positions[:, -1], dtype=torch.float64)).numpy()
    np.testing.assert_allclose(th["potential_energy"][:, -1], e, rtol=1e-4, atol=1e-4)
    info = json.loads((out / "replicas.json").read_text())
    assert info["n_replicas"] == n_rep and info["blown_up"] == [] and info["complete"] is True
    back = load_simulation(out)
    np.testing.assert_allclose(back.positions, res.positions, rtol=1e-6, atol=1e-6)
    with pytest.raises(InputError, match="finished simulation"):
        simulate(Chain(n_beads), np.full(n_beads, MASS), x0, cfg, out_dir=out, progress=False)
    res2 = simulate(Chain(n_beads), np.full(n_beads, MASS), x0, cfg, out_dir=out, progress=False, overwrite=True)
    np.testing.assert_array_equal(res2.positions, res.positions)


def _read_all(out):
    data = {}
    for p in sorted(out.glob("replica_*.h5")):
        with h5py.File(p) as fh:
            data[p.name] = fh["coordinates"][...]
            data[p.name + ":time"] = fh["time"][...]
    with np.load(out / "thermo.npz") as th:
        data.update({k: th[k] for k in th.files})
    return data


def test_checkpoint_resume_is_bit_for_bit(tmp_path):
    n_rep, n_beads = 4, 5
    x0 = chain_starts(n_rep, n_beads, seed=3)
    cfg = SimulationConfig(dt_ps=0.004, friction_per_ps=1.0, n_steps=120, save_every=5, seed=9, chunk_frames=7,
                           checkpoint_every=40)
    full = tmp_path / "full"
    seen = []
    simulate(Chain(n_beads, nan_replica=1, nan_from_call=100), np.full(n_beads, MASS), x0, cfg, out_dir=full,
             progress=False, on_checkpoint=lambda step, d: seen.append((step, (d / "checkpoint.pt").exists())))
    assert seen == [(40, True), (80, True)]
    part = tmp_path / "part"
    with pytest.raises(RuntimeError, match="simulated crash"):  # crash at step 95: last checkpoint at 80
        simulate(Chain(n_beads, raise_at_call=95), np.full(n_beads, MASS), x0, cfg, out_dir=part, progress=False)
    assert (part / "checkpoint.pt").exists() and not (part / "replicas.json").exists()
    with pytest.raises(InputError, match="did not finish"):
        load_simulation(part)
    # the replica-1 failure comes after the crash: it must also happen in the resumed run
    pot = Chain(n_beads, nan_replica=1, nan_from_call=100 - 81)  # no initial force call on resume
    with pytest.raises(InputError, match="dt_ps"):  # resuming with another physics config is refused
        simulate(pot, np.full(n_beads, MASS), x0, cfg.model_copy(update={"dt_ps": 0.002}), out_dir=part,
                 progress=False)
    res = simulate(pot, np.full(n_beads, MASS), x0, cfg, out_dir=part, progress=False)
    info = json.loads((part / "replicas.json").read_text())
    assert info["resumed_from_step"] == 80
    assert res.died_at_step.tolist() == [-1, 100, -1, -1]
    a, b = _read_all(full), _read_all(part)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert len(a["replica_0001.h5"]) == 19  # frames at steps 5..95
