"""`raycg data validate`: every rejection is one line, exit 2, and leaves the dataset untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest

from raycg.cli import main
from raycg.data import load, save
from raycg.data.validate import first_nonfinite, traj_ids_to_offsets, validate_dataset, virial_ratio
from raycg.errors import DatasetError

from .data_helpers import make_dataset, tree_digest


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "good"
    save(make_dataset(), path)
    return path


def _saved(tmp_path, name="ds", **changes):
    ds = make_dataset()
    for k, v in changes.items():
        setattr(ds, k, v(getattr(ds, k)))
    return save(ds, tmp_path / name)


def _reject(path, capsys, *needles):
    """Run the CLI validator; assert exit 2, one 'error:' line containing every needle, files untouched."""
    before = tree_digest(path)
    rc = main(["data", "validate", str(path)])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for n in needles:
        assert n in err, (n, err)
    assert tree_digest(path) == before
    return err


def test_valid_dataset_passes_and_virial_ratio_is_one(good, capsys):
    assert main(["data", "validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert "force units" in out and "valid:" in out
    rep = validate_dataset(good)
    assert abs(rep.stats["virial_ratio"] - 1.0) < 4 * rep.stats["virial_ratio_se"] + 0.05
    assert abs(rep.stats["median_bond_A"] - 3.8) < 0.05


def test_rejects_shape_mismatch(tmp_path, capsys):
    path = _saved(tmp_path)
    np.save(path / "forces.npy", np.zeros((4000, 9, 3), np.float32))
    _reject(path, capsys, "shape mismatch", "forces.npy", "(4000, 9, 3)")


def test_rejects_nan_naming_frame_and_bead(tmp_path, capsys):
    def poison(x):
        x = x.copy()
        x[1234, 6, 2] = np.nan
        x[2000, 1, 0] = np.inf
        return x
    path = _saved(tmp_path, coords=poison)
    _reject(path, capsys, "NaN or inf", "frame 1234", "bead 6", "coords.npy", "trajectory 1")


def test_rejects_inf_in_forces(tmp_path, capsys):
    def poison(f):
        f = f.copy()
        f[3999, 9, 1] = -np.inf
        return f
    path = _saved(tmp_path, forces=poison)
    _reject(path, capsys, "frame 3999", "bead 9", "forces.npy")


def test_rejects_lengths_in_nm(tmp_path, capsys):
    path = _saved(tmp_path, coords=lambda x: x * np.float32(0.1))
    _reject(path, capsys, "0.38", "far from 3.8", "nm")


@pytest.mark.parametrize("factor,needle", [(4.184, "kJ/mol/Å"), (41.84, "kJ/mol/nm"), (-1.0, "gradients")])
def test_rejects_forces_in_wrong_units(tmp_path, capsys, factor, needle):
    path = _saved(tmp_path, forces=lambda f: f * np.float32(factor))
    _reject(path, capsys, "contradict", needle)


def test_force_unit_check_is_inconclusive_not_failing_on_few_frames(tmp_path):
    ds = make_dataset(n_frames=40, n_traj=2, noise=30.0)
    ds.forces = ds.forces * np.float32(4.184)
    rep = validate_dataset(save(ds, tmp_path / "small"))
    assert any(name == "force units" and "inconclusive" in d for name, d in rep.checks)


def test_virial_ratio_known_answer():
    """The generalised-equipartition ratio of exact Boltzmann samples is 1 and scales with the force unit."""
    ds = make_dataset(n_frames=8000, noise=0.0)
    rho, se, _ = virial_ratio(ds.coords, ds.forces, 350.0)
    assert abs(rho - 1) < 5 * se + 0.02 and se < 0.05
    rho2, _, _ = virial_ratio(ds.coords, ds.forces * 4.184, 350.0)
    assert rho2 == pytest.approx(4.184 * rho, rel=1e-4)
    rho_t, _, _ = virial_ratio(ds.coords, ds.forces, 700.0)  # wrong temperature halves it
    assert rho_t == pytest.approx(rho / 2, rel=1e-6)


def test_rejects_non_contiguous_offsets(tmp_path, capsys):
    path = _saved(tmp_path)
    np.save(path / "traj_offsets.npy", np.array([0, 2000, 1000, 3000, 4000], np.int64))
    _reject(path, capsys, "not contiguous", "traj_offsets.npy")


def test_traj_ids_must_be_contiguous():
    assert traj_ids_to_offsets(np.array([5, 5, 2, 2, 2, 9])).tolist() == [0, 2, 5, 6]
    with pytest.raises(DatasetError, match="not contiguous.*frame 4"):
        traj_ids_to_offsets(np.array([0, 0, 1, 1, 0, 2]))


def test_rejects_topology_bead_count(tmp_path, capsys):
    path = _saved(tmp_path)
    lines = (path / "topology.pdb").read_text().splitlines()
    kept = [ln for ln in lines if not ln.startswith(("ATOM", "CONECT")) or " 10 " not in ln[:12]]
    (path / "topology.pdb").write_text("\n".join(ln for ln in kept if not ln.startswith("CONECT")) + "\n")
    _reject(path, capsys, "topology has 9 beads", "10")


@pytest.mark.parametrize("cut", [100, 2_000_000])
def test_rejects_truncated_array(tmp_path, capsys, cut):
    path = _saved(tmp_path)
    data = (path / "coords.npy").read_bytes()
    (path / "coords.npy").write_bytes(data[: min(cut, len(data) - 12)])
    _reject(path, capsys, "coords.npy", "truncated")


def test_rejects_garbage_array(tmp_path, capsys):
    path = _saved(tmp_path)
    (path / "forces.npy").write_bytes(b"not a numpy file at all")
    _reject(path, capsys, "forces.npy", "unreadable")


def test_rejects_unknown_residue_in_mapping(tmp_path, capsys):
    ds = make_dataset()
    ds.meta.mapping.kind = "ca-slice"
    ds.meta.beads.residue_names[4] = "XYZ"
    path = save(ds, tmp_path / "ds")
    _reject(path, capsys, "unknown residue 'XYZ'", "bead 4")


def test_rejects_changed_bytes_by_hash(tmp_path, capsys):
    path = _saved(tmp_path)
    raw = bytearray((path / "forces.npy").read_bytes())
    raw[-5] ^= 0x01
    (path / "forces.npy").write_bytes(bytes(raw))
    _reject(path, capsys, "content hash mismatch")


def test_rejects_meta_count_disagreement(tmp_path, capsys):
    path = _saved(tmp_path)
    meta = json.loads((path / "meta.json").read_text())
    meta["n_frames"] = 3999
    (path / "meta.json").write_text(json.dumps(meta))
    _reject(path, capsys, "n_frames")


def test_first_nonfinite_scans_in_chunks():
    a = np.zeros((1000, 4, 3), np.float32)
    assert first_nonfinite(a, chunk=64) is None
    a[700, 3, 0] = np.nan
    a[900, 0, 0] = np.nan
    assert first_nonfinite(a, chunk=64) == (700, 3)


def test_load_gives_memmap_and_validate_does_not_need_writes(good):
    ds = load(good)
    assert isinstance(ds.coords, np.memmap) and not ds.coords.flags.writeable
    validate_dataset(ds)
