"""``--engine openmm``: raycg's protocol and output files run by OpenMM (one Context per replica)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raycg.cli import main

openmm = pytest.importorskip(
    "openmm", reason="needs the openmm extra (pip install 'raycg[openmm]')"
)
pytestmark = pytest.mark.openmm


def _cfg(**kw):
    from raycg.sim import SimulationConfig

    base = dict(
        n_steps=60,
        save_every=10,
        dt_ps=0.004,
        temperature_K=300.0,
        friction_per_ps=2.0,
        seed=4,
        engine="openmm",
        filter_table_spacing_A=None,
    )
    base.update(kw)
    return SimulationConfig(**base)


def test_output_files_resume_and_worker_processes(inputs, tmp_path):
    """The same files as raycg's engine; an interrupted run resumes to the uninterrupted one bit for bit;
    two worker processes give the replicas the same trajectories as one process (seeds per replica)."""
    from raycg.model import load_model
    from raycg.sim import load_simulation
    from raycg.sim.openmm_engine import run_simulation

    root, ds = inputs
    model = load_model(root / "model")
    starts = ds.coords[[0, 500, 1000]].astype(np.float64)
    kw = dict(topology=ds.topology(), bonds=ds.bonds, progress=False, platform="CPU")
    cfg = _cfg(checkpoint_every=30)
    full = run_simulation(model, ds.masses, starts, cfg, out_dir=tmp_path / "full", workers=1, **kw)
    names = {p.name for p in (tmp_path / "full").iterdir()}
    assert names == {
        "topology.pdb",
        "thermo.npz",
        "replicas.json",
        "checkpoint.pt",
        "replica_0000.h5",
        "replica_0001.h5",
        "replica_0002.h5",
    }
    rep = json.loads((tmp_path / "full" / "replicas.json").read_text())
    assert rep["engine"] == "openmm" and rep["openmm"]["integrator"] == "LangevinMiddleIntegrator"
    assert (
        rep["n_replicas"] == 3 and rep["frames_per_replica"] == [6, 6, 6] and rep["dt_ps"] == 0.004
    )
    back = load_simulation(tmp_path / "full")
    assert back.positions.shape == (3, 6, 10, 3) and np.allclose(
        back.positions, full.positions, atol=1e-5
    )
    assert np.isfinite(back.potential_energy).all() and np.isfinite(back.kinetic_temperature).all()

    calls = []

    def stop(step, out_dir):
        calls.append(step)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_simulation(
            model,
            ds.masses,
            starts,
            cfg,
            out_dir=tmp_path / "cut",
            workers=1,
            on_checkpoint=stop,
            **kw,
        )
    assert calls == [30] and not (tmp_path / "cut" / "replicas.json").exists()
    resumed = run_simulation(
        model, ds.masses, starts, cfg, out_dir=tmp_path / "cut", workers=1, **kw
    )
    assert json.loads((tmp_path / "cut" / "replicas.json").read_text())["resumed_from_step"] == 30
    assert np.array_equal(resumed.positions, back.positions)  # both read from the files
    assert np.array_equal(resumed.potential_energy, back.potential_energy)
    assert np.array_equal(resumed.final_velocities, full.final_velocities)

    two = run_simulation(
        model, ds.masses, starts, cfg.model_copy(update={"checkpoint_every": None}), workers=2, **kw
    )
    assert two.info["forces"]["openmm"]["workers"] == 2
    assert np.array_equal(two.positions, full.positions)

    from raycg.errors import InputError

    with pytest.raises(InputError, match="already holds a finished simulation"):
        run_simulation(model, ds.masses, starts, cfg, out_dir=tmp_path / "full", workers=1, **kw)


def test_blow_up_is_reported_per_replica(inputs):
    """A step far too large kills replicas; each is reported with its step and reason, and keeps only the
    frames saved before it died."""
    from raycg.model import load_model
    from raycg.sim.openmm_engine import simulate_openmm

    root, ds = inputs
    starts = ds.coords[[0, 700]].astype(np.float64)
    res = simulate_openmm(
        load_model(root / "model"),
        ds.masses,
        starts,
        _cfg(dt_ps=0.5, n_steps=40, save_every=5, blowup_max_bond_A=12.0),
        bonds=ds.bonds,
        progress=False,
        workers=1,
        platform="Reference",
    )
    assert not res.alive.any()
    for b in res.blown_up:
        assert b["step"] % 5 == 0 and b["reason"] in (
            "non-finite positions",
            "non-finite forces",
            "non-finite potential energy",
            "bonded distance beyond the envelope (blowup_max_bond_A)",
        )
        r = b["replica"]
        assert res.n_frames_per_replica[r] == b["step"] // 5 - 1 + (b["step"] == 0)
        assert np.isnan(res.potential_energy[r, res.n_frames_per_replica[r] :]).all()


def test_cli_engine_option_and_spec_field(inputs, tmp_path, capsys):
    """``raycg sim run --engine openmm`` and ``engine: openmm`` in the config YAML run OpenMM; a study's
    simulation section carries the field to the engine config."""
    root, _ = inputs
    base = [
        "sim",
        "run",
        str(root / "model"),
        "--dataset",
        str(root / "ds"),
        "--n-replicas",
        "2",
        "--n-steps",
        "20",
        "--save-every",
        "10",
        "--no-progress",
    ]
    assert main([*base, "--out", str(tmp_path / "a"), "--engine", "openmm"]) == 0
    assert "simulated 2 replicas x 20 steps" in capsys.readouterr().out
    assert json.loads((tmp_path / "a" / "replicas.json").read_text())["engine"] == "openmm"
    (tmp_path / "sim.yaml").write_text("engine: openmm\ndt_ps: 0.004\n")
    assert main([*base, "--out", str(tmp_path / "b"), "--config", str(tmp_path / "sim.yaml")]) == 0
    rep = json.loads((tmp_path / "b" / "replicas.json").read_text())
    assert rep["engine"] == "openmm" and rep["dt_ps"] == 0.004
    assert "engine" not in json.loads((tmp_path / "a" / "starts.json").read_text())
    assert main([*base, "--out", str(tmp_path / "c"), "--engine", "raycg"]) == 0
    assert "engine" not in json.loads(
        (tmp_path / "c" / "replicas.json").read_text()
    )  # raycg's own report

    from raycg.study.spec.sections import SimulationSection

    sec = SimulationSection(engine="openmm")
    assert sec.engine_config(temperature_K=300.0).engine == "openmm"


def test_bad_input(inputs, tmp_path, capsys, monkeypatch):
    from raycg._testing.datasets import two_state_dataset
    from raycg.errors import InputError
    from raycg.model import load_model
    from raycg.sim.openmm_engine import simulate_openmm

    root, ds = inputs
    six, _ = two_state_dataset(n_traj=1, length=10, seed=1, n_beads=6)
    with pytest.raises(InputError, match="the model has 10 beads but the start positions have 6"):
        simulate_openmm(
            load_model(root / "model"), six.masses, six.coords[:2], _cfg(), progress=False
        )
    with pytest.raises(InputError, match="OpenMM platform 'Nope' is not available"):
        simulate_openmm(
            load_model(root / "model"), ds.masses, ds.coords[:2], _cfg(), platform="Nope"
        )
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "sim",
                "run",
                str(root / "model"),
                "--dataset",
                str(root / "ds"),
                "--out",
                str(tmp_path / "x"),
                "--engine",
                "vmd",
            ]
        )
    assert exc.value.code == 2 and "invalid choice: 'vmd'" in capsys.readouterr().err
    monkeypatch.delattr(openmm, "PythonForce")
    rc = main(
        [
            "sim",
            "run",
            str(root / "model"),
            "--dataset",
            str(root / "ds"),
            "--out",
            str(tmp_path / "y"),
            "--engine",
            "openmm",
            "--n-steps",
            "10",
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert (
        rc == 2
        and err.startswith("error: ")
        and err.count("\n") == 1
        and "has no openmm.PythonForce" in err
    )
