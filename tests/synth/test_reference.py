"""The embedded reference dataset: deterministic, valid, concurrency-safe cache, CLI, default bounds."""

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
from raycg.synth import embedded_dataset, make_embedded_reference
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
    # residue masses (Cα bead + side chain): Gly7 ≈ 57, Trp9 ≈ 186
    assert m.beads.masses[6] == pytest.approx(57.05, abs=0.1)
    assert m.beads.masses[8] == pytest.approx(186.2, abs=0.3)
    # physical plausibility
    assert median_bond_length(ds) == pytest.approx(3.8, abs=0.1)
    assert np.isfinite(ds.coords).all() and np.isfinite(ds.forces).all()
    assert float(np.abs(ds.forces).max()) > 1.0               # real forces, not zeros
    validate_dataset(tiny)                                    # structure, hash, units
    prov = m.provenance
    assert prov["seed"] == 0 and prov["go_model"]["parameters"]["epsilon"] == pytest.approx(ref.EPSILON)
    s = prov["summary"]
    for key in ("folded_population", "n_folding", "n_unfolding", "rmsd_threshold_A", "generation_time_s"):
        assert key in s
    # half the replicas start folded (native), half unfolded: even the tiny set holds both states
    assert s["folded_population_native_started"] >= 0.8
    assert s["folded_population_unfolded_started"] <= 0.2
    # slice-mapped Cα forces are noisy w.r.t. the residue-summed force (DESIGN 11: tens of percent)
    assert 0.1 < s["force_noise_fraction_estimate"] < 0.9


def test_data_info_prints_the_summary(tiny, capsys):
    assert main(["data", "info", str(tiny)]) == 0
    out = capsys.readouterr().out
    for key in ("folded_population", "n_folding", "n_unfolding", "rmsd_threshold_A", "go-model-ca-slice"):
        assert key in out


def test_same_seed_same_hash_other_seed_other_hash(tmp_path):
    small = {"size": "tiny", "n_replicas": 4, "n_steps": 60, "save_every": 20, "unfold_steps": 40, "progress": False}
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
    assert main(["data", "synth", "--out", str(tmp_path / "x"), "--quick", "--replicas", "1"]) == 2
    assert "n_replicas" in capsys.readouterr().err
    assert main(["data", "synth", "--out", str(tmp_path / "y"), "--quick", "--seed", "-3"]) == 2
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    with pytest.raises(InputError, match="size"):
        make_embedded_reference(tmp_path / "z", size="huge")


def _fake_make(out_dir, seed=0, overwrite=False, progress=True, **_):
    """Stand-in for the generator: slow, atomic, and counts its calls in a file."""
    out_dir = Path(out_dir)
    with open(out_dir.parent / "calls.txt", "a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(0.5)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.copytree(os.environ["RAYCG_TEST_TINY"], tmp)
    meta = json.loads((tmp / "meta.json").read_text())
    meta["provenance"]["recipe"] = ref.recipe(seed=0)          # pretend to be the default recipe
    (tmp / "meta.json").write_text(json.dumps(meta))
    if overwrite and out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def _call_embedded(cache: str, q) -> None:
    ref.make_embedded_reference = _fake_make
    q.put(str(embedded_dataset(cache, progress=False)))


def test_embedded_dataset_generates_once_under_concurrency(tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("RAYCG_TEST_TINY", str(tiny))
    cache = tmp_path / "cache"
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_call_embedded, args=(str(cache), q)) for _ in range(3)]
    for p in procs:
        p.start()
    paths = {q.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert paths == {str(cache / ref.CACHE_NAME)}
    assert len((cache / "calls.txt").read_text().split()) == 1      # generated exactly once
    assert load(cache / ref.CACHE_NAME).content_hash == load(tiny).content_hash
    # the environment variable selects the cache when no directory is given; a valid cache is reused
    monkeypatch.setenv("RAYCG_CACHE", str(cache))
    monkeypatch.setattr(ref, "make_embedded_reference", _fake_make)
    assert embedded_dataset() == cache / ref.CACHE_NAME
    assert len((cache / "calls.txt").read_text().split()) == 1
    # a cached dataset made by another recipe (e.g. older parameters) is regenerated
    stale = tmp_path / "stale"
    shutil.copytree(tiny, stale / ref.CACHE_NAME)
    embedded_dataset(stale)
    assert len((stale / "calls.txt").read_text().split()) == 1
    assert ref._cached_recipe_hash(stale / ref.CACHE_NAME) == ref.recipe(seed=0)["hash"]


@pytest.mark.slow
def test_default_dataset_meets_the_bounds():
    """The default embedded dataset (generated once into the cache if absent, a few minutes)."""
    path = embedded_dataset(progress=False)
    ds = load(path)
    s = ds.meta.provenance["summary"]
    assert 0.30 <= s["folded_population"] <= 0.70
    assert s["n_folding"] >= 10 and s["n_unfolding"] >= 10
    assert s["n_blown_up"] == 0
    assert 20_000 <= ds.n_frames <= 100_000
    assert abs(s["mean_kinetic_temperature_K"] / ds.temperature - 1) < 0.02
    # generalised equipartition holds for the noisy slice-mapped forces of (near-)equilibrium frames
    rep = validate_dataset(path)
    rho, se = rep.stats["virial_ratio"], rep.stats["virial_ratio_se"]
    assert abs(rho - 1.0) < max(0.1, 5 * se)
