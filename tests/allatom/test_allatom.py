"""All-atom reference MD: forces as OpenMM computes them, checkpointed segments, CG mapping, bad inputs."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from raycg import units as U
from raycg.allatom import (
    AllAtomConfig,
    assemble_dataset,
    build_system,
    read_progress,
    run_replica,
    write_run_manifest,
)
from raycg.cli import main


def _frames(rdir):
    prog = read_progress(rdir)
    return [np.load(rdir / f"seg_{k:05d}.npz") for k in range(prog["segments_done"])]


def test_config_derived_step_counts():
    cfg = AllAtomConfig(duration_ns=1.0, save_every_ps=10.0, segment_ps=100.0)
    assert cfg.dt_fs == 4.0 and cfg.save_every_steps == 2500
    assert cfg.n_frames == 100 and cfg.frames_per_segment == 10 and cfg.n_segments == 10
    assert AllAtomConfig(hmr=False).dt_fs == 2.0
    with pytest.raises(ValueError, match="needs hmr"):
        AllAtomConfig(hmr=False, timestep_fs=4.0)


def test_saved_forces_equal_openmm_getforces(tmp_path, cln025_pdb, tiny_cfg):
    import openmm as mm
    import openmm.app as app
    import openmm.unit as u

    cfg = tiny_cfg.model_copy(update={"n_replicas": 1, "duration_ns": 0.0002, "segment_ps": 0.2})
    run_replica(cln025_pdb, cfg, 0, tmp_path)
    seg = _frames(tmp_path / "replica_0000")[-1]
    pos_A, frc_saved = seg["positions"][-1], seg["forces"][-1]
    built = build_system(cln025_pdb, cfg)
    ctx = mm.Context(built.system, mm.VerletIntegrator(1e-3), mm.Platform.getPlatformByName("CPU"))
    ctx.setPositions(pos_A.astype(np.float64) * U.ANGSTROM_TO_NM)
    f_kj_nm = ctx.getState(getForces=True).getForces(asNumpy=True).value_in_unit(u.kilojoule_per_mole / u.nanometer)
    f_kcal_A = f_kj_nm * U.force_factor("kJ/mol/nm")
    assert np.abs(frc_saved).max() > 1.0  # real forces, not zeros
    np.testing.assert_allclose(frc_saved, f_kcal_A, rtol=2e-3, atol=2e-2)
    # the unit conversion really happened: kJ/mol/nm values would be ~41.84x larger
    assert np.abs(frc_saved).mean() < 0.1 * np.abs(f_kj_nm).mean()
    assert app  # noqa


def test_tiny_generate_maps_to_a_valid_dataset(tmp_path, cln025_pdb, tiny_cfg):
    out = tmp_path / "gen"
    write_run_manifest(out, cln025_pdb, tiny_cfg)
    for i in range(2):
        run_replica(cln025_pdb, tiny_cfg, i, out)
    ds_path = assemble_dataset(out, tmp_path / "cg", progress=False)
    assert main(["data", "validate", str(ds_path)]) == 0
    import raycg.data as D

    ds = D.load(ds_path)
    assert ds.n_beads == 10 and ds.n_trajectories == 2 and ds.n_frames == 2 * tiny_cfg.n_frames
    prov = ds.meta.provenance
    assert prov["forcefield"] == "amber14-all.xml" and prov["solvent"] == "implicit-gbn2"
    assert prov["temperature_K"] == 350.0 and prov["platforms"] == ["CPU"] and prov["openmm_version"]
    # constraint-aware: each Cα bead sums its CA and the hydrogen(s) constrained to it
    assert all(len(a) >= 2 for a in ds.meta.mapping.force_atoms_per_bead[:6])
    # bead forces = sum of the saved all-atom forces over those atoms
    seg = np.load(out / "replica_0000" / "seg_00000.npz")
    atoms = ds.meta.mapping.force_atoms_per_bead[3]
    np.testing.assert_allclose(ds.forces[0, 3], seg["forces"][0, atoms].sum(0), rtol=1e-4, atol=1e-4)


_KILL_SCRIPT = """
import sys
from raycg.allatom import AllAtomConfig, run_replica
cfg = AllAtomConfig.model_validate_json(sys.argv[1])
run_replica(sys.argv[2], cfg, 0, sys.argv[3])
"""


def test_killed_replica_resumes_without_duplicated_or_missing_frames(tmp_path, cln025_pdb, tiny_cfg):
    cfg = tiny_cfg.model_copy(update={"n_replicas": 1, "duration_ns": 0.0016, "segment_ps": 0.2})  # 8 segments
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, cfg.model_dump_json(), str(cln025_pdb), str(tmp_path)])
    rdir = tmp_path / "replica_0000"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            p = read_progress(rdir)
            if p and p["segments_done"] >= 2:
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        killed_at = read_progress(rdir)["segments_done"]
    finally:
        proc.kill()
        proc.wait()
    assert 1 <= killed_at < cfg.n_segments, "the replica must be killed mid-run"
    final = run_replica(cln025_pdb, cfg, 0, tmp_path)
    assert final["finished"] and final["segments_done"] == cfg.n_segments
    steps = np.concatenate([s["step"] for s in _frames(rdir)])
    expected = np.arange(1, cfg.n_frames + 1) * cfg.save_every_steps
    np.testing.assert_array_equal(steps, expected)
    assert not [p for p in os.listdir(rdir) if ".tmp-" in p]


def test_bad_inputs_exit_2_with_one_line(tmp_path, cln025_pdb, capsys):
    broken = tmp_path / "broken.pdb"
    lines = [ln for ln in cln025_pdb.read_text().splitlines() if not (ln.startswith("ATOM") and " CB " in ln)]
    broken.write_text("\n".join(lines) + "\n")
    before = broken.read_bytes()
    assert main(["data", "generate-aa", str(broken), "--out", str(tmp_path / "o"), "--ns", "0.001",
                 "--save-every-ps", "0.1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "template" in err and len(err.splitlines()) == 1
    assert broken.read_bytes() == before

    assert main(["data", "generate-aa", str(cln025_pdb), "--out", str(tmp_path / "o2"), "--ns", "-1"]) == 2
    assert "duration_ns" in capsys.readouterr().err

    cfg = tmp_path / "aa.yaml"
    cfg.write_text("platform: TPU\nduration_ns: 0.001\nsave_every_ps: 0.1\n")
    assert main(["data", "generate-aa", str(cln025_pdb), "--out", str(tmp_path / "o3"), "--config", str(cfg)]) == 2
    assert "aa.yaml:1: platform" in capsys.readouterr().err

    from raycg.allatom.system import choose_platform
    from raycg.errors import InputError

    with pytest.raises(InputError, match="platform 'CUDA' is not available"):
        choose_platform("CUDA")


@pytest.mark.ray
def test_more_replicas_than_slots_queue_and_complete(tmp_path, cln025_pdb, tiny_cfg, ray_local):
    from raycg.allatom.distributed import generate_allatom

    cfg = tiny_cfg.model_copy(update={"n_replicas": 3, "duration_ns": 0.0004, "segment_ps": 0.2, "unfold_ps": 0.0})
    ds_path = generate_allatom(cln025_pdb, tmp_path / "gen", cfg, cpus_per_replica=2, poll_s=1.0, verbose=False)
    for i in range(3):
        assert read_progress(tmp_path / "gen" / f"replica_{i:04d}")["finished"]
    run = json.loads((tmp_path / "gen" / "run.json").read_text())
    assert run["config"]["n_replicas"] == 3
    import raycg.data as D

    assert D.load(ds_path).n_trajectories == 3
