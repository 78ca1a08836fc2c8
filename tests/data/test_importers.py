"""Importers (torchmd-cg, mdtraj, mdCATH): units at the boundary, round trip, hashes, provenance."""

from __future__ import annotations

import hashlib
import json

import h5py
import mdtraj
import numpy as np
import pytest

from raycg import units as U
from raycg.cli import main
from raycg.data import compute_content_hash, load, save
from raycg.data.importers import import_mdcath, import_mdtraj, import_torchmd_cg
from raycg.data.mapping import ca_map
from raycg.data.npy_reader import NpyArray
from raycg.errors import DatasetError, InputError

from .data_helpers import CLN025_PDB, SEQ, harmonic_chain, tree_digest


@pytest.fixture(scope="module")
def tmd(tmp_path_factory):
    """torchmd-cg style arrays: one file, and the same frames as three per-trajectory files."""
    d = tmp_path_factory.mktemp("tmd")
    x, f = harmonic_chain(3000, seed=3)
    np.save(d / "coords.npy", x)
    np.save(d / "forces.npy", f)
    np.save(d / "embeddings.npy", np.array([4, 4, 5, 8, 6, 13, 2, 13, 7, 4]))
    for k, (s, e) in enumerate([(0, 1000), (1000, 1800), (1800, 3000)]):
        np.save(d / f"c_{k}.npy", x[s:e])
        np.save(d / f"f_{k}.npy", f[s:e])
    return d, x, f


def test_torchmd_cg_import_round_trip(tmd, tmp_path):
    d, x, f = tmd
    before = tree_digest(d)
    out, rep = import_torchmd_cg(str(d / "coords.npy"), str(d / "forces.npy"), tmp_path / "ds", sequence=SEQ,
                                 embeddings=str(d / "embeddings.npy"), frames_per_traj=500, chunk_frames=700,
                                 progress=False)
    assert tree_digest(d) == before  # inputs untouched
    ds = load(out)
    np.testing.assert_array_equal(np.asarray(ds.coords), x)
    np.testing.assert_array_equal(np.asarray(ds.forces), f)
    assert ds.traj_offsets.tolist() == list(range(0, 3001, 500))
    m = ds.meta
    assert (m.temperature_K, m.dt_frame_ps, m.beads.types[3], m.mapping.kind) == (350.0, 100.0, 8, "identity")
    assert m.content_hash == compute_content_hash(ds)
    srcs = {s["path"].split("/")[-1]: s["sha256"] for s in m.provenance["sources"]}
    assert srcs["coords.npy"] == hashlib.sha256((d / "coords.npy").read_bytes()).hexdigest()
    assert srcs["forces.npy"] == hashlib.sha256((d / "forces.npy").read_bytes()).hexdigest()
    assert m.provenance["raycg_version"] and m.provenance["importer"] == "torchmd-cg"
    assert any(name == "force units" and "ratio" in det for name, det in rep.checks)
    # save(load(x)) reproduces arrays, metadata and hash exactly
    again = save(load(out), tmp_path / "again")
    ds2 = load(again)
    for a in ("coords", "forces", "traj_offsets"):
        np.testing.assert_array_equal(np.asarray(getattr(ds2, a)), np.asarray(getattr(ds, a)))
    assert ds2.meta.model_dump(exclude={"name"}) == m.model_dump(exclude={"name"})


def test_content_hash_changes_with_any_array_byte(tmd, tmp_path):
    d, _, _ = tmd
    out, _ = import_torchmd_cg(str(d / "c_0.npy"), str(d / "f_0.npy"), tmp_path / "ds", sequence=SEQ,
                               progress=False, validate=False)
    ds = load(out, mmap=False)
    h0 = compute_content_hash(ds)
    assert h0 == ds.meta.content_hash
    rng = np.random.default_rng(0)
    for name in ("coords", "forces", "traj_offsets"):
        for _ in range(3):
            arr = getattr(ds, name)
            raw = arr.view(np.uint8).reshape(-1)
            i = int(rng.integers(raw.size))
            raw[i] ^= np.uint8(1 << int(rng.integers(8)))
            assert compute_content_hash(ds) != h0, (name, i)
            ds2 = load(out, mmap=False)
            setattr(ds, name, getattr(ds2, name))
            assert compute_content_hash(ds) == h0


def test_torchmd_cg_glob_one_file_per_trajectory_and_units(tmd, tmp_path):
    d, x, f = tmd
    # the same data stated in nm and kJ/mol/nm comes back in Å and kcal/mol/Å
    for k in range(3):
        np.save(tmp_path / f"nm_c_{k}.npy", np.load(d / f"c_{k}.npy") / 10)
        np.save(tmp_path / f"nm_f_{k}.npy", np.load(d / f"f_{k}.npy") * 41.84)
    rc = main(["data", "import", "torchmd-cg", "--coords", str(tmp_path / "nm_c_*.npy"), "--forces",
               str(tmp_path / "nm_f_*.npy"), "--sequence", SEQ, "--length-units", "nm", "--force-units",
               "kJ/mol/nm", "--out", str(tmp_path / "ds"), "--quiet"])
    assert rc == 0
    ds = load(tmp_path / "ds")
    assert ds.traj_offsets.tolist() == [0, 1000, 1800, 3000]
    np.testing.assert_allclose(np.asarray(ds.coords), x, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ds.forces), f, rtol=1e-5, atol=1e-4)
    assert 41.84 * U.KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A == pytest.approx(1.0)


def _cli_error(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_torchmd_cg_import_rejections(tmd, tmp_path, capsys):
    d, x, f = tmd
    base = ["data", "import", "torchmd-cg", "--sequence", SEQ, "--quiet"]
    np.save(tmp_path / "ids.npy", np.repeat([0, 1, 0], 1000))
    err = _cli_error(capsys, base + ["--coords", str(d / "coords.npy"), "--forces", str(d / "forces.npy"),
                                     "--traj-ids", str(tmp_path / "ids.npy"), "--out", str(tmp_path / "o1")])
    assert "not contiguous" in err and "frame 2000" in err
    np.save(tmp_path / "f_short.npy", f[:, :9])
    err = _cli_error(capsys, base + ["--coords", str(d / "coords.npy"), "--forces", str(tmp_path / "f_short.npy"),
                                     "--out", str(tmp_path / "o2")])
    assert "shape mismatch" in err
    raw = (d / "coords.npy").read_bytes()
    (tmp_path / "trunc.npy").write_bytes(raw[: len(raw) // 2])
    err = _cli_error(capsys, base + ["--coords", str(tmp_path / "trunc.npy"), "--forces", str(d / "forces.npy"),
                                     "--out", str(tmp_path / "o3")])
    assert "truncated" in err and "trunc.npy" in err
    err = _cli_error(capsys, ["data", "import", "torchmd-cg", "--sequence", "YYDPETGTW", "--coords",
                              str(d / "coords.npy"), "--forces", str(d / "forces.npy"), "--out", str(tmp_path / "o4")])
    assert "topology bead count 9 != array bead count 10" in err
    np.save(tmp_path / "fkj.npy", f * np.float32(4.184))  # kJ/mol/Å stated as kcal/mol/Å
    err = _cli_error(capsys, base + ["--coords", str(d / "coords.npy"), "--forces", str(tmp_path / "fkj.npy"),
                                     "--out", str(tmp_path / "o5")])
    assert "contradict" in err and "kJ/mol" in err
    assert not any((tmp_path / f"o{i}").exists() for i in range(1, 6))  # nothing half-written
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".o")]


def test_npy_reader_reads_rows_and_detects_truncation(tmp_path):
    a = np.arange(5 * 4 * 3, dtype=np.float64).reshape(5, 4, 3)
    np.save(tmp_path / "a.npy", a)
    h = hashlib.sha256()
    with NpyArray(tmp_path / "a.npy") as r:
        np.testing.assert_array_equal(np.concatenate(list(r.iter_chunks(2, h))), a)
        np.testing.assert_array_equal(r.read(3, 5), a[3:5])
    assert h.hexdigest() == hashlib.sha256((tmp_path / "a.npy").read_bytes()).hexdigest()
    (tmp_path / "b.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:-8])
    with pytest.raises(DatasetError, match="truncated"):
        NpyArray(tmp_path / "b.npy")


def _aa_frames(n, seed):
    aa = mdtraj.load(str(CLN025_PDB))
    rng = np.random.default_rng(seed)
    xyz = aa.xyz + rng.normal(0, 0.003, (n, aa.n_atoms, 3)).astype(np.float32)
    return mdtraj.Trajectory(xyz, aa.topology, time=np.arange(n) * 20.0), rng.normal(0, 300, (n, aa.n_atoms, 3))


def test_mdtraj_import_maps_and_converts(tmp_path):
    t1, f1 = _aa_frames(7, 1)
    t2, f2 = _aa_frames(5, 2)
    t1.save_xtc(str(tmp_path / "a.xtc"))
    t2.save_hdf5(str(tmp_path / "b.h5"))
    np.save(tmp_path / "a_f.npy", f1)
    np.savez(tmp_path / "b_f.npz", forces=f2)
    before = tree_digest(tmp_path)
    out, _ = import_mdtraj([str(tmp_path / "a.xtc"), str(tmp_path / "b.h5")],
                           [str(tmp_path / "a_f.npy"), str(tmp_path / "b_f.npz")], tmp_path / "ds",
                           topology=str(CLN025_PDB), force_units="kJ/mol/nm", temperature=300.0, chunk_frames=3,
                           progress=False)
    ds = load(out)
    cg = ca_map(t1.topology)
    assert ds.traj_offsets.tolist() == [0, 7, 12] and ds.meta.dt_frame_ps == pytest.approx(20.0)
    xyz = np.concatenate([t1.xyz, t2.xyz]) * 10
    np.testing.assert_allclose(np.asarray(ds.coords), cg.map_coords(xyz), atol=6e-3)  # xtc: 0.001 nm grid
    np.testing.assert_allclose(np.asarray(ds.forces),
                               cg.map_forces(np.concatenate([f1, f2])) * U.KJ_PER_MOL_NM_TO_KCAL_PER_MOL_A,
                               rtol=1e-5, atol=1e-4)
    assert ds.meta.mapping.kind == "ca-slice" and ds.meta.mapping.force_aggregation == "constraint-aware"
    assert len(ds.meta.provenance["sources"]) == 5
    # a custom map (two beads per residue 1-2) through the same importer
    (tmp_path / "map.yaml").write_text("beads:\n" + "".join(
        f"  - {{selection: 'resSeq {r} and backbone'}}\n  - {{selection: 'resSeq {r} and sidechain', type: {20 + r}}}\n"
        for r in (1, 2)))
    digest = tree_digest(tmp_path)
    assert {k: v for k, v in digest.items() if k in before} == before  # inputs untouched
    out2, _ = import_mdtraj(str(tmp_path / "a.xtc"), str(tmp_path / "a_f.npy"), tmp_path / "custom",
                            topology=str(CLN025_PDB), force_units="kJ/mol/nm", temperature=300.0,
                            map_file=str(tmp_path / "map.yaml"), progress=False)
    ds2 = load(out2)
    assert ds2.n_beads == 4 and ds2.meta.mapping.kind == "custom" and ds2.meta.beads.types[1] == 21
    assert ds2.bonds.tolist() == [[0, 1], [1, 2], [2, 3]]


def test_mdtraj_stride_and_torchmd_weights(tmp_path, tmd):
    t1, f1 = _aa_frames(7, 1)
    t1.save_hdf5(str(tmp_path / "a.h5"))
    np.save(tmp_path / "f.npy", f1)
    out, _ = import_mdtraj(str(tmp_path / "a.h5"), str(tmp_path / "f.npy"), tmp_path / "ds", force_units="kcal/mol/A",
                           temperature=300.0, stride=2, chunk_frames=2, progress=False)
    ds = load(out)
    m = ca_map(t1.topology)
    assert ds.n_frames == 4 and ds.meta.dt_frame_ps == pytest.approx(40.0)
    np.testing.assert_allclose(np.asarray(ds.forces), m.map_forces(f1[::2]), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(np.asarray(ds.coords), m.map_coords(t1.xyz[::2] * 10), atol=1e-4)
    d = tmd[0]
    np.save(tmp_path / "w.npy", np.linspace(0.5, 1.5, 1000))
    out2, _ = import_torchmd_cg(str(d / "c_0.npy"), str(d / "f_0.npy"), tmp_path / "w", sequence=SEQ,
                                weights=str(tmp_path / "w.npy"), progress=False)
    ds2 = load(out2)
    assert ds2.meta.has_weights and np.allclose(ds2.weights, np.linspace(0.5, 1.5, 1000))


def test_mdtraj_import_frame_count_mismatch(tmp_path, capsys):
    t1, f1 = _aa_frames(4, 1)
    t1.save_dcd(str(tmp_path / "a.dcd"))
    np.save(tmp_path / "f.npy", f1[:3])
    err = _cli_error(capsys, ["data", "import", "mdtraj", str(tmp_path / "a.dcd"), "--top", str(CLN025_PDB),
                              "--forces", str(tmp_path / "f.npy"), "--force-units", "kJ/mol/nm", "--temperature",
                              "300", "--out", str(tmp_path / "ds"), "--quiet"])
    assert "4 frames in a.dcd but 3" in err


def _write_mdcath(path, n_frames=(6, 4), resname=None):
    aa = mdtraj.load(str(CLN025_PDB))
    pdb_text = CLN025_PDB.read_text()
    if resname:
        pdb_text = pdb_text.replace(" PRO ", f" {resname} ")
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as h5:
        dom = h5.create_group("cln025A00")
        dom.create_dataset("pdbProteinAtoms", data=np.bytes_(pdb_text))
        temp = dom.create_group("320")
        for r, n in enumerate(n_frames):
            g = temp.create_group(str(r))
            g.create_dataset("coords", data=(aa.xyz * 10 + rng.normal(0, 0.05, (n, aa.n_atoms, 3))).astype(np.float32))
            g.create_dataset("forces", data=rng.normal(0, 10, (n, aa.n_atoms, 3)).astype(np.float32))
            g.attrs["numFrames"] = n
    return aa


def test_mdcath_import(tmp_path):
    aa = _write_mdcath(tmp_path / "mdcath_dataset_cln025A00.h5")
    before = tree_digest(tmp_path)
    out, _ = import_mdcath(tmp_path / "mdcath_dataset_cln025A00.h5", tmp_path / "ds", chunk_frames=4, progress=False)
    ds = load(out)
    assert ds.traj_offsets.tolist() == [0, 6, 10]
    assert (ds.meta.temperature_K, ds.meta.dt_frame_ps) == (320.0, 1000.0)
    with h5py.File(tmp_path / "mdcath_dataset_cln025A00.h5", "r") as h5:
        c = np.concatenate([h5["cln025A00/320/0/coords"][:], h5["cln025A00/320/1/coords"][:]])
        f = np.concatenate([h5["cln025A00/320/0/forces"][:], h5["cln025A00/320/1/forces"][:]])
    m = ca_map(aa.topology)
    np.testing.assert_allclose(np.asarray(ds.coords), m.map_coords(c), atol=1e-5)
    np.testing.assert_allclose(np.asarray(ds.forces), m.map_forces(f), atol=1e-4)
    assert {k: v for k, v in tree_digest(tmp_path).items() if k in before} == before
    only1, _ = import_mdcath(tmp_path / "mdcath_dataset_cln025A00.h5", tmp_path / "ds1", replicas=["1"],
                             temperature=320, progress=False)
    assert load(only1).n_frames == 4


def test_mdcath_unknown_residue_and_missing_temperature(tmp_path, capsys):
    _write_mdcath(tmp_path / "x.h5", resname="XYZ")
    err = _cli_error(capsys, ["data", "import", "mdcath", str(tmp_path / "x.h5"), "--out", str(tmp_path / "ds"),
                              "--quiet"])
    assert "unknown residue 'XYZ'" in err
    _write_mdcath(tmp_path / "y.h5")
    with pytest.raises(InputError, match="no 350 K group"):
        import_mdcath(tmp_path / "y.h5", tmp_path / "ds", temperature=350, progress=False)


def test_info_prints_summary(tmp_path, capsys):
    from .data_helpers import make_dataset

    ds = make_dataset(n_frames=200, n_traj=2)
    ds.meta.provenance["summary"] = {"folded_population": 0.6123, "transitions": {"folding": 12, "unfolding": 11}}
    save(ds, tmp_path / "ds")
    assert main(["data", "info", str(tmp_path / "ds")]) == 0
    out = capsys.readouterr().out
    for needle in ("frames:", "200", "trajectories:", "2 (", "total time:", "20 ns", "350 K", "sha256:",
                   "summary:", "folded_population:", "0.6123", "folding:", "12"):
        assert needle in out, (needle, out)
    meta = json.loads((tmp_path / "ds" / "meta.json").read_text())
    assert meta["provenance"]["summary"]["transitions"]["unfolding"] == 11


@pytest.mark.parametrize("argv", [["data", "import", "torchmd-cg"], ["data", "import", "mdcath"],
                                  ["data", "import", "mdtraj"], ["data", "validate"], ["data", "info"]])
def test_cli_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--help"])
    assert exc.value.code == 0 and "usage: raycg " in capsys.readouterr().out
