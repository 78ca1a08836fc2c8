"""``raycg export``: the OpenMM files, their units, and that they equal raycg's energy and forces."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from raycg.cli import main

from .helpers import HarmonicBonds, raycg_energy_forces

openmm = pytest.importorskip(
    "openmm", reason="needs the openmm extra (pip install 'raycg[openmm]')"
)
pytestmark = pytest.mark.openmm


@pytest.fixture(scope="module")
def exported(inputs):
    """The export directory written by the CLI with a 100-frame check, and what it printed."""
    root, _ = inputs
    out = root / "exported"
    argv = [
        "export",
        str(root / "model"),
        "--dataset",
        str(root / "ds"),
        "--out",
        str(out),
        "--check",
        "--check-frames",
        "100",
    ]
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    return out, rc, buf.getvalue()


def test_export_writes_the_files_and_the_check_passes(exported, inputs):
    out, rc, printed = exported
    assert rc == 0, printed
    assert {p.name for p in out.iterdir()} == {
        "topology.pdb",
        "system.xml",
        "model_openmm.pt",
        "export.json",
        "README.md",
    }
    assert "largest error:" in printed and "ok: every route equals raycg" in printed
    manifest = json.loads((out / "export.json").read_text())
    check = manifest["check"]
    assert check["n_frames"] == 100
    assert set(check["routes"]) == {"openmm-Reference", "openmm-CPU", "torchscript"}
    floor = check["float32_roundoff"]
    for name, s in check["routes"].items():
        # float32 round-off: within a few times raycg's own float32-vs-float64 difference
        assert s["force_max_rel"] < max(10 * floor["force_max_rel"], 1e-6), name
        assert s["energy_max_rel"] < max(10 * floor["energy_max_rel"], 1e-6), name
    _, ds = inputs
    assert manifest["beads"]["masses"] == [float(m) for m in ds.masses]
    readme = (out / "README.md").read_text()
    assert "XmlSerializer.deserialize" in readme and "TorchForce" in readme and "kJ/mol" in readme


def test_topology_pdb_reads_in_mdtraj_and_openmm(exported, inputs):
    import mdtraj
    from openmm import app

    out, _, _ = exported
    _, ds = inputs
    bonds = {tuple(sorted(b)) for b in ds.bonds.tolist()}
    top = mdtraj.load(str(out / "topology.pdb")).topology
    assert top.n_atoms == ds.coords.shape[1]
    assert [a.name for a in top.atoms] == ds.meta.beads.names
    assert [a.residue.name for a in top.atoms] == ds.meta.beads.residue_names
    assert {tuple(sorted((b[0].index, b[1].index))) for b in top.bonds} == bonds
    pdb = app.PDBFile(str(out / "topology.pdb"))
    assert pdb.topology.getNumAtoms() == ds.coords.shape[1]
    assert {tuple(sorted((b[0].index, b[1].index))) for b in pdb.topology.bonds()} == bonds
    xyz = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(openmm.unit.angstrom))
    assert np.abs(xyz - ds.coords[0]).max() < 1e-3  # Å written, nm read


def test_system_xml_loads_in_a_fresh_process(exported, inputs):
    """XmlSerializer.deserialize in a new interpreter (only raycg installed) gives raycg's energy."""
    from raycg.model import load_model

    out, _, _ = exported
    root, ds = inputs
    x_nm = (ds.coords[7].astype(np.float64) * 0.1).tolist()
    code = (
        "import json, sys, openmm\n"
        f"s = openmm.XmlSerializer.deserialize(open({str(out / 'system.xml')!r}).read())\n"
        "c = openmm.Context(s, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName('Reference'))\n"
        f"c.setPositions({x_nm!r})\n"
        "st = c.getState(getEnergy=True, getForces=True)\n"
        "print(json.dumps([s.getNumParticles(), [s.getParticleMass(i)._value for i in range(s.getNumParticles())],"
        " st.getPotentialEnergy()._value, st.getForces(asNumpy=True)._value.tolist()]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    n, masses, e_kj, f_kj = json.loads(proc.stdout.strip().splitlines()[-1])
    assert n == 10 and masses == pytest.approx(list(ds.masses))
    e, f = raycg_energy_forces(load_model(root / "model"), ds.coords[7:8])
    assert e_kj / 4.184 == pytest.approx(e[0], abs=1e-4 * max(1.0, abs(e[0])))
    assert np.abs(np.asarray(f_kj) / 41.84 - f[0]).max() < 1e-4 * np.abs(f[0]).max()


def test_units_on_a_known_bond():
    """One harmonic prior bond (k = 100 kcal/mol/Å², r0 = 3.8 Å) at 4.0 Å: E = 2 kcal/mol = 8.368 kJ/mol,
    |F| = 20 kcal/mol/Å = 836.8 kJ/mol/nm, the same as OpenMM's own HarmonicBondForce in its units."""
    from openmm import unit

    from raycg.export import to_openmm
    from raycg.model import EnergyModel

    ours = to_openmm(
        EnergyModel([0, 0], prior=HarmonicBonds([[0, 1]], 100.0, 3.8)),
        [12.0, 12.0],
        dtype="float64",
    )
    native = openmm.System()
    for _ in range(2):
        native.addParticle(12.0)
    bond = openmm.HarmonicBondForce()
    bond.addBond(0, 1, 0.38, 100.0 * 4.184 * 100)  # nm, kJ/mol/nm²
    native.addForce(bond)
    pos = [openmm.Vec3(0, 0, 0), openmm.Vec3(0.4, 0, 0)] * unit.nanometer
    got = []
    for system in (ours, native):
        ctx = openmm.Context(
            system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
        )
        ctx.setPositions(pos)
        st = ctx.getState(getEnergy=True, getForces=True)
        got.append(
            (
                st.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
                st.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer),
            )
        )
    assert got[0][0] == pytest.approx(8.368, rel=1e-9) and got[1][0] == pytest.approx(
        8.368, rel=1e-9
    )
    assert got[0][1][1, 0] == pytest.approx(-836.8, rel=1e-9)
    assert np.abs(got[0][1] - got[1][1]).max() < 1e-9


def test_torchscript_module_equals_raycg_in_plain_torch(exported, inputs):
    from raycg.export import load_torchscript
    from raycg.model import load_model

    out, _, _ = exported
    root, ds = inputs
    ts = load_torchscript(out / "model_openmm.pt")
    frames = ds.coords[::80][:20]
    e_ref, f_ref = raycg_energy_forces(load_model(root / "model"), frames)
    for dtype in (torch.float32, torch.float64):  # OpenMM-Torch passes either
        for k, x in enumerate(frames):
            p = torch.as_tensor(x * 0.1, dtype=dtype).requires_grad_(True)
            e = ts(p)
            (g,) = torch.autograd.grad(e, p)
            assert g.dtype == dtype and e.dim() == 0
            assert float(e.detach()) / 4.184 == pytest.approx(
                e_ref[k], abs=2e-5 * max(1.0, abs(e_ref[k]))
            )
            assert (
                np.abs(-g.double().numpy() / 41.84 - f_ref[k]).max() < 2e-5 * np.abs(f_ref[k]).max()
            )


def test_torchforce_in_openmm_equals_raycg(exported, inputs):
    """OpenMM-Torch's TorchForce loads model_openmm.pt; its forces are raycg's. Runs where openmmtorch
    imports (its CPU builds need torch < 2.13; a GPU machine with a matching build runs it)."""
    try:
        import openmmtorch
    except Exception as exc:  # noqa: BLE001 - ImportError, or a plugin that fails to load
        pytest.skip(f"openmmtorch does not import here ({type(exc).__name__}: {str(exc)[:120]})")
    from raycg.model import load_model

    out, _, _ = exported
    root, ds = inputs
    system = openmm.System()
    for m in ds.masses:
        system.addParticle(float(m))
    system.addForce(openmmtorch.TorchForce(str(out / "model_openmm.pt")))
    ctx = openmm.Context(
        system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference")
    )
    frames = ds.coords[::200]
    e_ref, f_ref = raycg_energy_forces(load_model(root / "model"), frames)
    for k, x in enumerate(frames):
        ctx.setPositions(x.astype(np.float64) * 0.1)
        st = ctx.getState(getEnergy=True, getForces=True)
        assert st.getPotentialEnergy()._value / 4.184 == pytest.approx(
            e_ref[k], abs=2e-5 * max(1, abs(e_ref[k]))
        )
        assert (
            np.abs(st.getForces(asNumpy=True)._value / 41.84 - f_ref[k]).max()
            < 2e-5 * np.abs(f_ref[k]).max()
        )


def _one_line_exit_2(capsys, argv, needle):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    return err


def test_bad_input_is_one_line_exit_2(inputs, tmp_path, capsys, monkeypatch):
    import shutil

    from raycg._testing.datasets import two_state_dataset
    from raycg.data.format import save

    root, _ = inputs
    model, ds = str(root / "model"), str(root / "ds")
    small, _ = two_state_dataset(n_traj=2, length=50, seed=1, n_beads=6)
    save(small, tmp_path / "ds6")
    _one_line_exit_2(
        capsys,
        ["export", model, "--dataset", str(tmp_path / "ds6"), "--out", str(tmp_path / "a")],
        "the model has 10 beads but the dataset's topology has 6",
    )
    newer = tmp_path / "newer"
    shutil.copytree(root / "model", newer)
    meta = json.loads((newer / "model.json").read_text())
    meta["format_version"] = 99
    (newer / "model.json").write_text(json.dumps(meta))
    _one_line_exit_2(
        capsys,
        ["export", str(newer), "--dataset", ds, "--out", str(tmp_path / "b")],
        "model format version 99 is newer",
    )
    (tmp_path / "taken").mkdir()
    _one_line_exit_2(
        capsys, ["export", model, "--dataset", ds, "--out", str(tmp_path / "taken")], "exists"
    )
    monkeypatch.delattr(openmm, "PythonForce")
    _one_line_exit_2(
        capsys,
        ["export", model, "--dataset", ds, "--out", str(tmp_path / "c")],
        "has no openmm.PythonForce",
    )
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_torchforce_check_needs_openmmtorch(inputs, tmp_path, capsys):
    """``--check --torchforce`` runs the TorchForce route where openmmtorch imports, else one line, exit 2."""
    root, _ = inputs
    argv = [
        "export",
        str(root / "model"),
        "--dataset",
        str(root / "ds"),
        "--out",
        str(tmp_path / "tf"),
        "--check",
        "--check-frames",
        "20",
        "--torchforce",
    ]
    try:
        import openmmtorch  # noqa: F401
    except Exception:  # noqa: BLE001
        _one_line_exit_2(capsys, argv, "openmmtorch does not import")
        assert not (tmp_path / "tf").exists()
        return
    assert main(argv) == 0
    assert "openmm-TorchForce-Reference" in capsys.readouterr().out
