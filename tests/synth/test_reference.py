"""The embedded reference generator: deterministic, valid, CLI, default bounds; the cache from the resource."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from raycg.cli import main
from raycg.data.format import load
from raycg.data.validate import median_bond_length, validate_dataset
from raycg.errors import InputError
from raycg.synth import embedded_dataset, make_embedded_reference, resource
from raycg.synth import reference as ref


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """The tiny dataset made through the CLI (``raycg data synth --quick``), seed 0."""
    out = tmp_path_factory.mktemp("synth") / "tiny-seed0"
    assert main(["data", "synth", "--out", str(out), "--quick", "--seed", "0", "--no-progress"]) == 0
    return out


def test_tiny_dataset_is_valid_and_well_formed(tiny):
    ds = load(tiny)
    m = ds.meta
    n_rep = ref.SIZES["tiny"]["n_replicas"]
    frames_per = ref.SIZES["tiny"]["n_steps"] // ref.SIZES["tiny"]["save_every"]
    assert ds.n_beads == 10 and ds.n_trajectories == n_rep and ds.n_frames == n_rep * frames_per
    assert m.beads.residue_names == ["TYR", "TYR", "ASP", "PRO", "GLU", "THR", "GLY", "THR", "TRP", "TYR"]
    # bead types = residue types: equal residues share a type, different ones differ
    types = dict(zip(m.beads.residue_names, m.beads.types))
    assert len(set(types.values())) == len(types) == 7
    assert [m.beads.type_names[t] for t in m.beads.types] == m.beads.residue_names
    assert m.bonds == [(i, i + 1) for i in range(9)]
    assert m.mapping.kind == "go-model-ca-slice"
    assert m.temperature_K == pytest.approx(ref.TEMPERATURE_K)
    assert m.dt_frame_ps == pytest.approx(ref.SIZES["tiny"]["save_every"] * ref.DT_PS)
    # every CG bead has the Cα atom's mass; the Gō beads of each residue add up to it, in their atoms' ratio
    assert m.beads.masses == [pytest.approx(12.011)] * 10
    fine = np.asarray(m.provenance["simulation"]["fine_masses_amu"])
    res = np.asarray(ref.build_go_system().bead_residues)
    assert np.allclose(np.bincount(res, weights=fine), 12.011, atol=1e-3)
    trp_ca, trp_sc = fine[8], fine[list(res).index(8, 10)]
    assert trp_sc / trp_ca == pytest.approx(130.2 / 56.1, rel=0.02)         # Trp side chain C9H8N : backbone
    # physical plausibility
    assert median_bond_length(ds) == pytest.approx(3.8, abs=0.1)
    assert np.isfinite(ds.coords).all() and np.isfinite(ds.forces).all()
    assert float(np.abs(ds.forces).max()) > 1.0               # real forces, not zeros
    # arrays sit on the resource grid (so the packaged resource is lossless)
    for arr, res in ((ds.coords, resource.COORD_RESOLUTION_A), (ds.forces, resource.FORCE_RESOLUTION)):
        assert np.array_equal(resource.quantize(arr, res), np.asarray(arr))
    validate_dataset(tiny)                                    # structure, hash, units
    prov = m.provenance
    assert prov["seed"] == 0 and prov["go_model"]["parameters"]["epsilon"] == pytest.approx(ref.EPSILON)
    assert prov["simulation"]["starts"] == {"native": 2, "misfolded": 2, "unfolded": 4}
    s = prov["summary"]
    for key in ("folded_population", "misfolded_population", "n_folding", "n_unfolding", "rmsd_threshold_A",
                "generation_time_s", "transitions_per_trajectory", "landscape"):
        assert key in s
    # native-started replicas stay folded over the tiny run; misfolded-started ones do not start folded
    assert s["folded_population_native_started"] >= 0.8
    assert s["folded_population_misfolded_started"] <= 0.2
    # slice-mapped Cα forces are noisy w.r.t. the residue-summed force (DESIGN 11: tens of percent)
    assert 0.1 < s["force_noise_fraction_estimate"] < 0.9


def test_data_info_prints_the_summary_and_landscape(tiny, capsys):
    assert main(["data", "info", str(tiny)]) == 0
    out = capsys.readouterr().out
    for key in ("folded_population", "n_folding", "n_unfolding", "rmsd_threshold_A", "go-model-ca-slice",
                "reference landscape:", "basins:", "slowest ITS:", "per trajectory"):
        assert key in out


def test_dataset_arguments_accept_embedded(tmp_path, monkeypatch, capsys):
    """Every dataset argument takes "embedded", as a study spec does: the packaged reference, from the cache."""
    monkeypatch.setenv("RAYCG_CACHE", str(tmp_path / "cache"))
    assert main(["data", "info", "embedded"]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "cache" / ref.CACHE_NAME) in out and "basins:      2 in the TIC 1-2 FES" in out
    assert main(["data", "validate", "embedded", "--quiet", "--no-physics"]) == 0


def test_same_seed_same_hash_other_seed_other_hash(tmp_path):
    small = {"size": "tiny", "n_replicas": 3, "n_steps": 60, "save_every": 20, "unfold_steps": 40, "progress": False}
    a = make_embedded_reference(tmp_path / "a", seed=0, **small)
    b = make_embedded_reference(tmp_path / "b", seed=0, **small)
    c = make_embedded_reference(tmp_path / "c", seed=1, **small)
    h0 = load(a).content_hash
    assert load(b).content_hash == h0
    for name in ("coords.npy", "forces.npy", "traj_offsets.npy"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    assert load(c).content_hash != h0
    assert not np.array_equal(load(c).coords, load(a).coords)


def test_bad_input_is_one_line_exit_2(tiny, tmp_path, capsys):
    assert main(["data", "synth", "--out", str(tiny), "--quick"]) == 2           # exists, no --overwrite
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--overwrite" in err and "\n" not in err
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--quick", "--replicas", "2"]) == 2
    assert "n_replicas" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(tmp_path / "y"), "--quick", "--seed", "-3"]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    with pytest.raises(InputError, match="size"):
        make_embedded_reference(tmp_path / "z", size="huge")


def _slow_unpack(out_dir, path=None, *, overwrite=False):
    """Stand-in for the resource writer: slow, atomic, and counts its calls in a file."""
    out_dir = Path(out_dir)
    with open(out_dir.parent / "calls.txt", "a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(0.5)
    return _real_unpack(out_dir, path, overwrite=overwrite)


_real_unpack = resource.unpack_resource


def _call_embedded(cache: str, q) -> None:
    resource.unpack_resource = _slow_unpack
    q.put(str(embedded_dataset(cache, progress=False)))


def test_embedded_dataset_is_written_once_under_concurrency(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_call_embedded, args=(str(cache), q)) for _ in range(3)]
    for p in procs:
        p.start()
    paths = {q.get(timeout=120) for _ in procs}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert paths == {str(cache / ref.CACHE_NAME)}
    assert len((cache / "calls.txt").read_text().split()) == 1      # written exactly once
    want = resource.resource_meta()["content_hash"]
    assert load(cache / ref.CACHE_NAME).content_hash == want
    # the environment variable selects the cache when no directory is given; a valid cache is reused
    monkeypatch.setenv("RAYCG_CACHE", str(cache))
    monkeypatch.setattr(resource, "unpack_resource", _slow_unpack)
    assert embedded_dataset() == cache / ref.CACHE_NAME
    assert len((cache / "calls.txt").read_text().split()) == 1
    # a cached dataset with another content hash (an older version) is replaced
    stale = tmp_path / "stale" / ref.CACHE_NAME
    shutil.copytree(cache / ref.CACHE_NAME, stale)
    meta = json.loads((stale / "meta.json").read_text())
    meta["content_hash"] = "sha256:old"
    (stale / "meta.json").write_text(json.dumps(meta))
    embedded_dataset(stale.parent)
    assert len((stale.parent / "calls.txt").read_text().split()) == 1
    assert load(stale).content_hash == want


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("RAYCG_TEST_REGENERATE"),
                    reason="regenerates the default reference (~1-3 min); set RAYCG_TEST_REGENERATE=1")
def test_default_regeneration_reproduces_the_shipped_resource(tmp_path):
    """On the machine and torch build that made the resource, regenerating the default dataset gives the
    shipped arrays bit for bit (elsewhere compiled kernels may round differently: then compare recipes)."""
    path = make_embedded_reference(tmp_path / "regen", progress=False)
    ds = load(path)
    shipped = resource.resource_meta()
    assert ds.meta.provenance["recipe"]["hash"] == shipped["provenance"]["recipe"]["hash"]
    assert ds.content_hash == shipped["content_hash"]
