import json

import mdtraj
import numpy as np
import pytest

from raycg._testing.datasets import native_ca, two_state_dataset
from raycg.errors import DatasetError, InputError
from raycg.evaluate import load_model_trajectories


@pytest.fixture(scope="module")
def small():
    ds, _ = two_state_dataset(n_traj=3, length=40, seed=2)
    return ds


def _write_h5(path, xyz_A, top):
    with mdtraj.formats.HDF5TrajectoryFile(str(path), "w") as fh:
        fh.topology = top
        fh.write(coordinates=(xyz_A * 0.1).astype(np.float32), time=np.arange(len(xyz_A), dtype=np.float32))


def _sim_dir(path, ds, blown, n_rep=3, frames=40):
    """A directory in the layout of raycg.sim.output (replica files hold frames until death)."""
    path.mkdir()
    for r in range(n_rep):
        _write_h5(path / f"replica_{r:04d}.h5", np.asarray(ds.coords[r * 40 : r * 40 + frames]), ds.topology())
    info = {"n_replicas": n_rep, "n_beads": 10, "dt_ps": 0.004, "save_every": 25,
            "blown_up": [{"replica": r, "step": 500, "time_ps": 2.0, "reason": "bond"} for r in blown]}
    (path / "replicas.json").write_text(json.dumps(info))
    return path


def test_sim_dir_blown_up_replicas_keep_their_saved_frames_and_count_the_lost_time(small, tmp_path):
    d = _sim_dir(tmp_path / "sim", small, blown=[1], frames=40)
    info = json.loads((d / "replicas.json").read_text())
    info.update(n_frames=40, frames_per_replica=[40, 10, 40])  # replica 1 died after 10 of 40 frames
    (d / "replicas.json").write_text(json.dumps(info))
    s = load_model_trajectories(d, small)
    assert s.n_replicas_total == 3 and s.n_blown_up == 1 and s.n_replicas == 3
    assert [len(r) for r in s.replicas] == [40, 10, 40] and s.planned_frames == [40, 40, 40]
    assert s.replica_time_lost_fraction == pytest.approx(30 / 120)
    assert s.dt_frame_ps == pytest.approx(0.1)
    # mdtraj stores nm; raycg works in Å
    np.testing.assert_allclose(s.replicas[2], small.coords[80:120], atol=1e-4)
    assert "blown up" in s.excluded[0]["reason"] and "10 of 40" in s.excluded[0]["reason"]


def test_non_finite_frames_end_a_replica_and_all_blown_up_before_a_frame_is_one_clear_error(small, tmp_path):
    from raycg.evaluate import ModelSamples

    x = np.asarray(small.coords[:20]).copy()
    x[15:] = np.nan
    s = ModelSamples.from_arrays([np.asarray(small.coords[:20]), x])
    assert [len(r) for r in s.replicas] == [20, 15] and s.n_blown_up == 1
    assert s.replica_time_lost_fraction == pytest.approx(5 / 40)
    d = _sim_dir(tmp_path / "sim", small, blown=[0, 1, 2])
    info = json.loads((d / "replicas.json").read_text())
    (d / "replicas.json").write_text(json.dumps({**info, "n_frames": 40, "frames_per_replica": [0, 0, 0]}))
    with pytest.raises(DatasetError, match="all 3 replicas blew up before saving a frame"):
        load_model_trajectories(d, small)


def test_unfinished_or_foreign_directory(tmp_path, small):
    (tmp_path / "x").mkdir()
    with pytest.raises(DatasetError, match="no replicas.json"):
        load_model_trajectories(tmp_path / "x", small)
    with pytest.raises(InputError, match="not found"):
        load_model_trajectories(tmp_path / "missing.h5", small)


def test_mdtraj_files_h5_xtc_and_all_atom_pdb(small, tmp_path):
    x = np.asarray(small.coords[:40])
    _write_h5(tmp_path / "a.h5", x, small.topology())
    mdtraj.Trajectory(x * 0.1, small.topology()).save_xtc(str(tmp_path / "a.xtc"))
    s = load_model_trajectories([tmp_path / "a.h5", tmp_path / "a.xtc"], small)
    assert s.n_replicas == 2 and s.n_beads == 10
    np.testing.assert_allclose(s.replicas[0], x, atol=1e-4)
    np.testing.assert_allclose(s.replicas[1], x, atol=0.011)  # xtc precision 0.001 nm
    with pytest.raises(InputError, match="carry no topology"):
        load_model_trajectories(tmp_path / "a.xtc", 10)
    # an all-atom structure is reduced to its Cα atoms when they match the reference beads
    from raycg.evaluate.score import PACKAGED_NATIVE

    pdb = tmp_path / PACKAGED_NATIVE
    from importlib import resources

    pdb.write_bytes(resources.files("raycg").joinpath("resources", PACKAGED_NATIVE).read_bytes())
    s = load_model_trajectories(pdb, small)
    got = s.replicas[0][0]
    np.testing.assert_allclose(got - got.mean(0), native_ca(), atol=1e-3)


def test_wrong_bead_count_and_empty_file(small, tmp_path):
    ds12, _ = two_state_dataset(n_traj=1, length=5, n_beads=12)
    _write_h5(tmp_path / "b12.h5", np.asarray(ds12.coords), ds12.topology())
    with pytest.raises(DatasetError, match="12 beads but the reference has 10"):
        load_model_trajectories(tmp_path / "b12.h5", small)
    np.save(tmp_path / "empty.npy", np.zeros((0, 10, 3), np.float32))
    with pytest.raises(DatasetError, match="no frames"):
        load_model_trajectories(tmp_path / "empty.npy", small)
    np.save(tmp_path / "r.npy", np.zeros((2, 7, 10, 3), np.float32))
    s = load_model_trajectories(tmp_path / "r.npy", 10)
    assert s.n_replicas == 2 and s.n_frames == 14


def test_real_simulation_output_directory(small, tmp_path):
    """The directory written by raycg.sim.simulate, with one replica that blows up."""
    sim = pytest.importorskip("raycg.sim")
    import torch

    native = torch.tensor(np.asarray(small.coords[0]), dtype=torch.float32)

    def potential(pos):
        return 2.0 * ((pos - native) ** 2).sum(dim=(-1, -2))

    start = np.repeat(np.asarray(small.coords[:1]), 3, axis=0).copy()
    start[2, -1] += 40.0  # a stretched bond: replica 2 must blow up
    cfg = sim.SimulationConfig(n_steps=200, save_every=20, dt_ps=0.002, temperature_K=300.0,
                               blowup_max_bond_A=10.0, seed=1)
    sim.simulate(potential, small.masses, start, cfg, out_dir=tmp_path / "run", topology=small.topology(),
                 progress=False)
    s = load_model_trajectories(tmp_path / "run", small)
    assert s.n_replicas_total == 3 and s.n_blown_up == 1 and s.n_replicas == 2
    assert all(len(r) == 10 for r in s.replicas)
    assert s.dt_frame_ps == pytest.approx(0.04)
    assert np.all(np.abs(s.replicas[0] - small.coords[0]).max() < 5.0)  # Å, not nm


def test_start_frames_come_from_the_starts_by_replica_index():
    """The convergence check classifies start basins by the structures the replicas started from, not
    by their first saved frame (which a model that leaves its basin within one save interval has left)."""
    from raycg.evaluate.samples import ModelSamples
    from raycg.evaluate.score import _select

    reps = [np.full((5, 3, 3), float(k)) for k in (0, 2)]          # replicas 0 and 2 saved frames; 1 did not
    s = ModelSamples(replicas=reps, n_beads=3, n_replicas_total=3,
                     replica_sources=["sim/replica_0000.h5", "sim/replica_0002.h5"], planned_frames=[5, 5])
    starts = np.stack([np.full((3, 3), 10.0 + k) for k in range(3)])
    s.set_start_frames(starts)
    assert [float(f[0, 0]) for f in s.start_frames] == [10.0, 12.0]
    sel = _select(s, 0.2)
    assert [float(f[0, 0]) for f in sel.first_frames] == [10.0, 12.0]
    plain = ModelSamples(replicas=reps, n_beads=3, n_replicas_total=2, planned_frames=[5, 5])
    assert [float(f[0, 0]) for f in _select(plain, 0.2).first_frames] == [0.0, 2.0]
    with pytest.raises(ValueError, match="no start position"):
        s.set_start_frames(starts[:2])
