"""The packaged embedded reference: lossless pack/unpack, hash check, and the landscape the issue asks for."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from raycg.data.format import load
from raycg.errors import DatasetError
from raycg.synth import make_embedded_reference, resource
from raycg.synth import reference as ref
from raycg.synth.landscape import landscape_summary


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """The packaged resource written out as a dataset directory."""
    return resource.unpack_resource(tmp_path_factory.mktemp("res") / "embedded")


@pytest.fixture(scope="module")
def shipped_landscape(shipped) -> dict:
    """The landscape recomputed from the shipped arrays (not read from the recorded summary)."""
    return landscape_summary(load(shipped), ref.TICA_LAG_FRAMES)


def test_pack_unpack_is_lossless(tmp_path):
    small = {"size": "tiny", "n_replicas": 3, "n_steps": 60, "save_every": 20, "unfold_steps": 40, "progress": False}
    src = make_embedded_reference(tmp_path / "src", seed=2, **small)
    packed = resource.pack_resource(src, tmp_path / "r.npz")
    out = resource.unpack_resource(tmp_path / "out", packed)
    a, b = load(src), load(out)
    assert b.content_hash == a.content_hash
    for name in ("coords.npy", "forces.npy", "traj_offsets.npy", "meta.json"):
        assert (src / name).read_bytes() == (out / name).read_bytes()
    assert resource.resource_meta(packed)["content_hash"] == a.content_hash
    # rounding never leaves a -0.0 (an integer grid cannot carry the sign of zero)
    assert not np.signbit(resource.quantize(np.array([-1e-4, -0.004]), 0.01)).any()


def test_a_damaged_resource_is_refused(tmp_path, shipped):
    src = resource.packaged_resource_path()
    bad = tmp_path / "bad.npz"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_LZMA) as zout:
        for item in zin.namelist():
            data = zin.read(item)
            if item == "meta.json":                       # claim other content than the arrays hold
                doc = json.loads(data)
                doc["meta"]["content_hash"] = "sha256:" + "0" * 64
                data = json.dumps(doc).encode()
            zout.writestr(item, data)
    with pytest.raises(DatasetError, match="content hash"):
        resource.unpack_resource(tmp_path / "x", bad)
    assert not (tmp_path / "x").exists()
    # arrays that are not on the grid cannot be packed losslessly
    ds = load(shipped, mmap=False)
    ds.coords = ds.coords + np.float32(1e-4)
    from raycg.data.format import save

    off_grid = save(ds, tmp_path / "off")
    with pytest.raises(DatasetError, match="grid"):
        resource.pack_resource(off_grid, tmp_path / "off.npz")


def test_shipped_resource_is_small_and_matches_its_recipe(shipped):
    size = resource.packaged_resource_path().stat().st_size
    assert size < 4_000_000
    ds = load(shipped)
    prov = ds.meta.provenance
    assert prov["generator_version"] == ref.GENERATOR_VERSION
    assert prov["recipe"]["hash"] == ref.recipe(seed=0)["hash"]       # made by today's default recipe
    assert ds.n_trajectories == ref.SIZES["default"]["n_replicas"]
    assert ds.meta.dt_frame_ps == pytest.approx(ref.SIZES["default"]["save_every"] * ref.DT_PS)


def test_shipped_landscape_has_two_basins_a_barrier_and_a_cln025_like_folded_population(shipped_landscape):
    land = shipped_landscape
    assert land["n_basins"] >= 2
    assert land["lowest_barrier_kT"] >= 2.0
    assert 0.65 <= land["folded_population"] <= 0.85
    assert land["basin_populations"][0] >= 0.5                   # the deepest well holds the folded majority


def test_shipped_reference_is_converged_against_its_slowest_timescale(shipped, shipped_landscape):
    land = shipped_landscape
    s = load(shipped).meta.provenance["summary"]
    assert land["slowest_timescale_over_trajectory"] < 0.1      # trajectories are many relaxation times long
    assert land["folding_transitions_per_trajectory"] >= 5
    # the native-, misfolded- and unfolded-started thirds agree: the starts are forgotten
    pops = [s[f"folded_population_{k}_started"] for k in ("native", "misfolded", "unfolded")]
    assert max(pops) - min(pops) < 0.12
    # the recorded summary is what the arrays give
    assert s["landscape"]["n_basins"] == land["n_basins"]
    assert s["landscape"]["folded_population"] == pytest.approx(land["folded_population"], abs=1e-3)
